"""Which calls fair use counts: the handled ones, those a person of the customer's took (decision 0028).

Its own module, apart from fair_use.py: it reads CDRs (rating/core/cdr.py, which brings in the
tariff's holiday and numbering data), and the command line parses months with fair_use.py
without loading those (tests/unit/test_startup.py).
"""

from __future__ import annotations

from rating.core.cdr import CallRecord, QueueOutcome


def handled(call: CallRecord, source: str) -> bool:
    """Whether fair use counts the call: a person of the customer's took it (decision 0028).

    Taken: a target phone or a queue agent was connected, or the caller left a voicemail message. Not taken, though the line may
    have been answered: fairline answered only to queue the caller, ask for consent or
    play an announcement, and nobody of the customer's came on. Never answered calls
    (no answer, busy, unreachable, abandoned, not in service, failed) are not handled.
    A CDR that does not say who answered (source "import", a file from an earlier
    system; "asterisk", built from Asterisk's own record) counts when it was answered:
    that is all it tells. The same rule, in SQL, backfilled rows stored before it
    (migration 0016_cdr_handled.sql).
    """
    if call.answered_at is None:
        return False
    if source != "live":
        return True
    if call.voicemail is not None:  # a message left: the caller's request reached the customer
        return True
    return call.answered_target is not None or call.queue_disposition is QueueOutcome.ANSWERED
