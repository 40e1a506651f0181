"""Queue visits on a call's CDR: the summary billing reads, and the spool format, old lines included."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.core.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit, RatedCdr, rate_record
from rating.storage.spool import Spool
from rating.core.tariff import DEFAULT_RATES, NumberType

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def visit(queue: str, waited: str, outcome: QueueOutcome, *, after: float = 5) -> QueueVisit:
    return QueueVisit(queue, START + timedelta(seconds=after), Decimal(waited), outcome)


def call(*visits: QueueVisit, answered: bool = True) -> CallRecord:
    answer = START + timedelta(seconds=90) if answered else None
    return CallRecord("c1", "+31201234567", "+31612345678", START, answer, START + timedelta(seconds=150),
                      Disposition.ANSWERED if answered else Disposition.ABANDONED, 16, queue_visits=visits)


class TestSummary:
    def test_a_call_that_never_queued_has_no_queue_figures(self) -> None:
        c = call()
        assert (c.queue, c.queue_wait_seconds, c.queue_overflows, c.queue_disposition) == (None, None, 0, None)

    def test_a_caller_answered_in_the_first_queue(self) -> None:
        c = call(visit("support", "42.5", QueueOutcome.ANSWERED))
        assert (c.queue, c.queue_wait_seconds, c.queue_overflows, c.queue_disposition) == (
            "support", Decimal("42.500"), 0, QueueOutcome.ANSWERED)

    def test_an_overflow_into_a_second_queue_adds_up_the_waits_and_keeps_the_first_queue_name(self) -> None:
        """The caller's whole wait across hops is what they lived through."""
        c = call(visit("support", "60.004", QueueOutcome.OVERFLOWED),
                 visit("desk", "12.25", QueueOutcome.ABANDONED, after=70), answered=False)
        assert (c.queue, c.queue_wait_seconds, c.queue_overflows, c.queue_disposition) == (
            "support", Decimal("72.254"), 1, QueueOutcome.ABANDONED)

    def test_an_overflow_to_a_number_whose_phones_answer_ends_as_overflowed(self) -> None:
        c = call(visit("support", "60", QueueOutcome.OVERFLOWED))
        assert (c.queue_overflows, c.queue_disposition) == (1, QueueOutcome.OVERFLOWED)

    def test_only_an_overflow_leads_to_another_visit(self) -> None:
        with pytest.raises(ValueError, match="every visit but the last must have overflowed"):
            call(visit("support", "10", QueueOutcome.ANSWERED), visit("desk", "5", QueueOutcome.ANSWERED))


class TestVisit:
    def test_the_wait_is_kept_to_the_millisecond_as_stored(self) -> None:
        assert visit("support", "59.99951", QueueOutcome.ANSWERED).waited_seconds == Decimal("60.000")
        assert str(visit("support", "7", QueueOutcome.ANSWERED).waited_seconds) == "7.000"

    @pytest.mark.parametrize(("queue", "entered_at", "waited", "message"), [
        ("", START, "1", "queue must be a queue name"),
        ("support", datetime(2026, 11, 3, 10, 0), "1", "entered_at must be timezone-aware"),
        ("support", START, "-0.5", "waited_seconds must be 0 or more"),
        ("support", START, "NaN", "waited_seconds must be 0 or more"),
    ])
    def test_a_visit_that_cannot_have_happened_is_refused(self, queue: str, entered_at: datetime, waited: str,
                                                          message: str) -> None:
        with pytest.raises(ValueError, match=message):
            QueueVisit(queue, entered_at, Decimal(waited), QueueOutcome.ABANDONED)


waits = st.decimals(min_value=0, max_value=999, places=3, allow_nan=False, allow_infinity=False)
queue_names = st.sampled_from(["support", "sales", "desk-2"])


@st.composite
def visit_chains(draw: st.DrawFn) -> tuple[QueueVisit, ...]:
    """Zero or more overflows, then any outcome: the visits a real call can have."""
    if draw(st.booleans()):
        return ()
    hops = draw(st.integers(0, 4))
    outcomes = [QueueOutcome.OVERFLOWED] * hops + [draw(st.sampled_from(list(QueueOutcome)))]
    return tuple(QueueVisit(draw(queue_names), START + timedelta(seconds=61 * i), draw(waits), outcome)
                 for i, outcome in enumerate(outcomes))


class TestSpoolFormat:
    @given(visits=visit_chains())
    def test_queue_visits_survive_the_spool_format_unchanged(self, visits: tuple[QueueVisit, ...]) -> None:
        rated = rate_record(call(*visits), "acme", NumberType.LOCAL, DEFAULT_RATES)
        line = json.dumps(rated.to_json())
        assert RatedCdr.from_json(json.loads(line)) == rated

    def test_a_spool_line_written_before_queues_reads_as_a_call_that_never_queued(self, tmp_path: Path) -> None:
        """CDRs spooled by the previous version while PostgreSQL was down must still reach the database."""
        spool = Spool(tmp_path)
        spool.path.write_text(OLD_SPOOL_LINE + "\n")
        today = rate_record(call(), "acme", NumberType.LOCAL, DEFAULT_RATES)
        # The same CDR, but for the rating basis (tariff, zone) that lines from before issue 16 lack.
        assert [e.cdr for e in spool.read_segment(0, limit=100).entries] == [dataclasses.replace(today, price=dataclasses.replace(today.price, tariff=None),
                                                    rating_zone=None)]
        assert not spool.rejected_path.exists()


# A line as fairline wrote it before queues (the call of call()), verbatim.
OLD_SPOOL_LINE = (
    '{"call_id": "c1", "did": "+31201234567", "caller": "+31612345678", "started_at": "2026-11-03T10:00:00+00:00", '
    '"ended_at": "2026-11-03T10:02:30+00:00", "answered_at": "2026-11-03T10:01:30+00:00", "disposition": '
    '"answered", "hangup_cause": 16, "answered_target": null, "target_kind": null, "customer_id": "acme", '
    '"number_type": "local", "billable_seconds": 60, "peak_seconds": 60, "offpeak_seconds": 0, "setup_eur": '
    '"0.0400", "usage_eur": "0.0700", "list_price_eur": "0.1100", "fair_use_eligible": true, "billing_month": '
    '"2026-11-01", "rating_error": null, "source": "live"}'
)
