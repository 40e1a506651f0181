"""Reconciliation: Asterisk's own call records against fairline's rated CDRs (pure; no I/O).

Asterisk writes one CDR line per channel and per change of party (cdr_custom.conf,
format ASTERISK_CDR_FORMAT), all lines of a channel together when it hangs up. The
calls that are fairline's are the inbound channels (carrier-in, context from-carrier);
a call's id is that channel's uniqueid, which is also fairline's `cdrs.call_id`.

`reconcile` lists the calls of a time window that one side has and the other lacks,
each with the likely reason; calls that ended less than a settle margin ago are left
for the next run, since either side may still be writing them. `asterisk_cdr` turns
a call only Asterisk has into a rated CDR for `fairline reconcile --import`, and
`not_importable_yet` keeps it from doing so while fairline's own CDR may still come.
With asterisk.conf's systemname set, a call id starts with its node's name
(rating/core/cdr.py node_of): `nodes` tells which nodes an Asterisk file speaks for.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation


from rating.core import numbering
from rating.core.cdr import CallRecord, Disposition, RatedCdr, node_of, rate_record
from rating.errors import RatingError
from rating.core.tariff import NumberType, RateTable

# The first field of every line of cdr_custom.conf's mapping; the fields in their order.
ASTERISK_CDR_FORMAT = "fairline-cdr-1"
ASTERISK_CDR_FIELDS = ("format", "uniqueid", "linkedid", "sequence", "channel", "dstchannel", "dcontext", "dst",
                       "src", "lastapp", "did", "start", "answer", "end", "disposition")

# dialplan/pjsip.conf and dialplan/extensions.conf: where the carrier's calls come in, and
# the contexts a call passes through afterwards.
INBOUND_CHANNEL_PREFIX = "PJSIP/carrier-in-"
INBOUND_CONTEXT = "from-carrier"
FALLBACK_CONTEXT = "fairline-fallback"  # generated; serves calls while fairline is not connected
DIAL_CONTEXT = "fairline-dial"  # entered only by fairline (ARI continue)
LIMITED_CONTEXT = "fairline-limited"  # a call over a concurrent-call limit, refused before fairline (decision 0026)
BLOCKED_CONTEXT = "fairline-blocked"  # a blocked caller the fallback refused (decision 0030)
# from-carrier's pattern _[+0-9].: what the carrier sends there is a DID, anything else is refused.
_DID = re.compile(r"[+0-9].+", re.DOTALL)

SETTLE = timedelta(seconds=10)
SOURCE = "asterisk"  # cdrs.source of the CDRs `reconcile --import` stores


class AsteriskCdrError(RatingError, ValueError):
    """A line of Asterisk's CDR file is not in the format cdr_custom.conf writes."""

    def __init__(self, line_number: int, reason: str) -> None:
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"line {line_number}: {reason}")


class NotImportable(RatingError, ValueError):
    """Asterisk's record of a call lacks what a CDR needs."""


@dataclasses.dataclass(frozen=True, slots=True)
class AsteriskRecord:
    """One line of Asterisk's CDR file: one channel between two changes of party; times aware, UTC."""

    uniqueid: str
    linkedid: str
    sequence: int
    channel: str
    dstchannel: str
    dcontext: str
    dst: str
    src: str
    lastapp: str
    did: str  # CDR(did) when the dialplan sets it; '' otherwise
    start: datetime
    answer: datetime | None
    end: datetime
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION


def parse_asterisk_cdr(lines: Iterable[str]) -> Iterator[AsteriskRecord]:
    """The records of Asterisk's CDR file, read line by line (lines keep their line ends).

    A last line without its line end is still being written: it is left for the next
    read. Blank lines are skipped; any other line that is not in the format raises
    AsteriskCdrError with its line number.
    """
    ended = True  # whether the last physical line read so far was complete

    def physical() -> Iterator[str]:
        nonlocal ended
        for line in lines:
            ended = line.endswith("\n")
            yield line

    reader = csv.reader(physical())
    line_number = 1
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as problem:
            raise AsteriskCdrError(reader.line_num, f"not CSV ({problem})") from None
        if fields is None or not ended:
            return
        first, line_number = line_number, reader.line_num + 1
        if not fields:
            continue
        yield _record(first, fields)


def _record(line_number: int, fields: list[str]) -> AsteriskRecord:
    # Another mapping, or another backend's file: comparing with it would report nonsense.
    if fields[0] != ASTERISK_CDR_FORMAT or len(fields) != len(ASTERISK_CDR_FIELDS):
        raise AsteriskCdrError(line_number, f"expected {len(ASTERISK_CDR_FIELDS)} fields starting with "
                                            f"{ASTERISK_CDR_FORMAT!r} (dialplan/cdr_custom.conf), got {len(fields)} "
                                            f"starting with {fields[0][:40]!r}")
    f = dict(zip(ASTERISK_CDR_FIELDS, fields))
    if not f["uniqueid"]:
        raise AsteriskCdrError(line_number, "uniqueid: empty")
    if not f["sequence"].isdigit():
        raise AsteriskCdrError(line_number, f"sequence: expected a whole number, got {f['sequence']!r}")
    start = _epoch(line_number, "start", f["start"])
    end = _epoch(line_number, "end", f["end"])
    answer = _epoch(line_number, "answer", f["answer"]) if f["answer"] else None  # 0: not answered
    if start is None or end is None:
        raise AsteriskCdrError(line_number, "start and end: expected times, got 0")
    return AsteriskRecord(
        uniqueid=f["uniqueid"], linkedid=f["linkedid"], sequence=int(f["sequence"]), channel=f["channel"],
        dstchannel=f["dstchannel"], dcontext=f["dcontext"], dst=f["dst"], src=f["src"], lastapp=f["lastapp"],
        did=f["did"], start=start, answer=answer, end=end, disposition=f["disposition"],
    )


def _epoch(line_number: int, name: str, text: str) -> datetime | None:
    """Unix time with microseconds, as start(double) writes it; None for 0."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0 or value > 253402300799:  # 9999-12-31
        raise AsteriskCdrError(line_number, f"{name}: expected Unix time in seconds, got {text!r}")
    if value == 0:
        return None
    seconds = int(value)
    micro = int((value - seconds) * 1_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micro)


# ------------------------------------------------------------------ calls


class CallPath(str, enum.Enum):
    """Who served an inbound call, as far as Asterisk's records tell."""

    FAIRLINE = "fairline"  # it reached the Stasis app (or fairline sent it to fairline-dial)
    FALLBACK = "fallback"  # fairline was not connected; fairline-fallback rang a target or announced
    REFUSED = "refused"  # fairline was not connected and the dialplan released it (announcement, 503)
    LIMITED = "limited"  # over a concurrent-call limit: the dialplan refused it (busy) before fairline
    BLOCKED = "blocked"  # a blocked caller the fallback refused, while fairline was not connected or shed the call


@dataclasses.dataclass(frozen=True, slots=True)
class AsteriskCall:
    """An inbound call as Asterisk recorded it: the records of its carrier-in channel, together."""

    call_id: str  # the channel's uniqueid: fairline's call id
    linkedid: str
    channel: str
    did: str | None  # the number dialled; None when the records do not show it
    caller: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    disposition: str  # Asterisk's: ANSWERED when any record was answered, else the last record's
    path: CallPath
    dialled: bool  # Dial() rang a target at least once

    @property
    def for_fairline(self) -> bool:
        """A call fairline serves (or would have): not one the dialplan refused for a DID that is none,
        nor one over a concurrent-call limit (fairline never sees those, by design)."""
        return (self.path not in (CallPath.LIMITED, CallPath.BLOCKED)
                and (self.path is not CallPath.REFUSED or self.did is not None))


def inbound_calls(records: Iterable[AsteriskRecord]) -> dict[str, AsteriskCall]:
    """Asterisk's inbound calls by call id, from the records of every channel in any order.

    Outbound legs (carrier-out, queue agents, recorder and snoop channels) are left out.
    """
    by_call: dict[str, list[AsteriskRecord]] = {}
    for r in records:
        if r.channel.startswith(INBOUND_CHANNEL_PREFIX) or r.dcontext == INBOUND_CONTEXT:
            by_call.setdefault(r.uniqueid, []).append(r)
    return {call_id: _call(rs) for call_id, rs in by_call.items()}


def _call(records: list[AsteriskRecord]) -> AsteriskCall:
    records = sorted(records, key=lambda r: (r.start, r.sequence))
    last = max(records, key=lambda r: (r.end, r.sequence))
    answers = [r.answer for r in records if r.answer is not None]
    contexts = {r.dcontext for r in records}
    if LIMITED_CONTEXT in contexts:
        path = CallPath.LIMITED
    elif BLOCKED_CONTEXT in contexts:
        path = CallPath.BLOCKED
    elif FALLBACK_CONTEXT in contexts:
        path = CallPath.FALLBACK
    elif DIAL_CONTEXT in contexts or any(r.lastapp == "Stasis" for r in records):
        path = CallPath.FAIRLINE
    else:
        path = CallPath.REFUSED
    return AsteriskCall(
        call_id=records[0].uniqueid, linkedid=records[0].linkedid, channel=records[0].channel,
        did=_did(records), caller=records[0].src or None,
        started_at=records[0].start, answered_at=min(answers) if answers else None,
        ended_at=max(r.end for r in records),
        disposition="ANSWERED" if any(r.disposition == "ANSWERED" for r in records) else last.disposition,
        path=path, dialled=any(r.lastapp == "Dial" for r in records),
    )


def _did(records: list[AsteriskRecord]) -> str | None:
    """CDR(did) when set; else the extension dialled in from-carrier or fairline-fallback.

    Once fairline sends a call to fairline-dial, Asterisk's record shows that context's
    extension `s` instead: the number dialled is then known only from CDR(did).
    """
    for r in records:
        if r.did:
            return r.did
    for r in records:
        if r.dcontext in (INBOUND_CONTEXT, FALLBACK_CONTEXT) and _DID.fullmatch(r.dst):
            return r.dst
    return None


# ------------------------------------------------------------- reconcile


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """The calls that started at or after `since` and before `until` (open-ended without)."""

    since: datetime
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"Window.{name} must be timezone-aware, got {value!r}")
        if self.until is not None and self.until <= self.since:
            raise ValueError(f"--until {self.until.isoformat()} must be after --since {self.since.isoformat()}")

    def __contains__(self, at: object) -> bool:
        return isinstance(at, datetime) and self.since <= at and (self.until is None or at < self.until)


@dataclasses.dataclass(frozen=True, slots=True)
class FairlineCdr:
    """What reconciliation needs of a row of `cdrs`."""

    call_id: str
    did: str
    started_at: datetime
    ended_at: datetime
    source: str  # live, import (historic: not expected in Asterisk's file), asterisk
    end_estimated: bool = False  # ended while fairline was away and Asterisk had no record of its end


@dataclasses.dataclass(frozen=True, slots=True)
class MissingInFairline:
    call: AsteriskCall
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class MissingInAsterisk:
    cdr: FairlineCdr
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reconciliation:
    """The outcome for one window; calls on one side only that ended after settled_before are not judged yet."""

    window: Window
    settled_before: datetime
    asterisk_calls: int  # fairline's calls in Asterisk's records, in the window
    fairline_cdrs: int  # CDRs in the window that Asterisk should have (not historic imports)
    matched: int
    missing_in_fairline: tuple[MissingInFairline, ...]  # by start
    missing_in_asterisk: tuple[MissingInAsterisk, ...]  # by start
    unsettled: tuple[str, ...]  # call ids, sorted
    not_for_fairline: int  # inbound channels the dialplan refused before fairline (no DID)
    limited: int = 0  # calls the dialplan refused before fairline: over a concurrent-call limit
    blocked: int = 0  # blocked callers the fallback refused (fairline's own refusals have their CDR, disposition blocked)
    lost_with_asterisk: int = 0  # fairline's CDRs of calls Asterisk died with, before writing its record

    @property
    def differences(self) -> int:
        return len(self.missing_in_fairline) + len(self.missing_in_asterisk)


FALLBACK_REASON = "fairline was not connected: the dialplan fallback (fairline-fallback) served the call"
REFUSED_REASON = "fairline was not connected: the dialplan announced all-circuits-busy and released the call (503)"
UNWRITTEN_REASON = ("fairline took the call but has no CDR of it: it stopped before the call ended, "
                    "or the CDR still waits in its spool for PostgreSQL")
NO_RECORD_REASON = "Asterisk's CDR file has no record of this channel"
EMPTY_FILE_REASON = "Asterisk's CDR file has no inbound calls at all: is cdr_custom loaded with dialplan/cdr_custom.conf?"


def reconcile(asterisk: Iterable[AsteriskCall], fairline: Iterable[FairlineCdr], window: Window, *,
              now: datetime, settle: timedelta = SETTLE) -> Reconciliation:
    """Compare the calls of `window` on both sides, by call id.

    `asterisk`: every inbound call of Asterisk's file, whenever it started (a call is
    in the window when either side says it started there; the first call of the file
    tells whether Asterisk was recording yet). `fairline`: the CDRs of the file's `nodes`
    that started in the window, plus any whose id is among Asterisk's calls in it (another
    node's CDRs are another file's business). Historic imports
    (source `import`) count as present but are never missed in Asterisk's file.
    """
    if settle < timedelta(0):
        raise ValueError(f"settle must be 0 or more, got {settle}")
    settled_before = now - settle
    on_asterisk = {c.call_id: c for c in asterisk}
    on_fairline = {c.call_id: c for c in fairline}
    file_begins = min((c.started_at for c in on_asterisk.values()), default=None)
    matched = asterisk_calls = fairline_cdrs = not_for_fairline = limited = blocked = lost_with_asterisk = 0
    missing_f: list[MissingInFairline] = []
    missing_a: list[MissingInAsterisk] = []
    unsettled: list[str] = []
    for call_id in on_asterisk.keys() | on_fairline.keys():
        a, f = on_asterisk.get(call_id), on_fairline.get(call_id)
        if not ((a is not None and a.started_at in window) or (f is not None and f.started_at in window)):
            continue
        if a is not None and a.for_fairline:
            asterisk_calls += 1
        if f is not None and f.source != "import":
            fairline_cdrs += 1
        if a is not None and f is not None:
            matched += 1
        elif a is not None:
            if a.path is CallPath.LIMITED:
                limited += 1
            elif a.path is CallPath.BLOCKED:
                blocked += 1
            elif not a.for_fairline:
                not_for_fairline += 1
            elif a.ended_at > settled_before:
                unsettled.append(call_id)
            else:
                missing_f.append(MissingInFairline(a, _why_not_in_fairline(a)))
        elif f is not None and f.source != "import":
            if f.end_estimated:  # its end was estimated because Asterisk had no record of it: it died (issue 17)
                lost_with_asterisk += 1
            elif f.ended_at > settled_before:
                unsettled.append(call_id)
            else:
                missing_a.append(MissingInAsterisk(f, _why_not_in_asterisk(f, file_begins)))
    return Reconciliation(
        window=window, settled_before=settled_before, asterisk_calls=asterisk_calls, fairline_cdrs=fairline_cdrs,
        matched=matched,
        missing_in_fairline=tuple(sorted(missing_f, key=lambda m: (m.call.started_at, m.call.call_id))),
        missing_in_asterisk=tuple(sorted(missing_a, key=lambda m: (m.cdr.started_at, m.cdr.call_id))),
        unsettled=tuple(sorted(unsettled)), not_for_fairline=not_for_fairline, limited=limited, blocked=blocked,
        lost_with_asterisk=lost_with_asterisk,
    )


def nodes(calls: Iterable[AsteriskCall]) -> frozenset[str]:
    """The nodes whose CDRs an Asterisk CDR file is compared with: those its call ids name, and always ''.

    A CDR whose call id names no node (from before systemname was set, or stored by hand)
    could be any node's, so every file is compared with it.
    """
    return frozenset({""} | {node_of(c.call_id) for c in calls})


def _why_not_in_fairline(call: AsteriskCall) -> str:
    if call.path is CallPath.FALLBACK:
        return FALLBACK_REASON
    if call.path is CallPath.REFUSED:
        return REFUSED_REASON
    return UNWRITTEN_REASON


def _why_not_in_asterisk(cdr: FairlineCdr, file_begins: datetime | None) -> str:
    if file_begins is None:
        return EMPTY_FILE_REASON
    if cdr.started_at < file_begins:
        return (f"started before the first call in Asterisk's CDR file ({file_begins.isoformat()}): "
                "the file was rotated, or Asterisk was not recording yet")
    return NO_RECORD_REASON


# ----------------------------------------------------------------- import


@dataclasses.dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """Who owns a number and its type (the `numbers` table)."""

    customer_id: str
    number_type: NumberType


def e164(did: str) -> str | None:
    """The E.164 form of a dialled number ("+31201234567", "31201234567"), as fairline keys its numbers."""
    return numbering.to_e164(did)


def asterisk_cdr(call: AsteriskCall, directory: Mapping[str, DirectoryEntry], rates: RateTable) -> RatedCdr:
    """The rated CDR of a call only Asterisk recorded, priced as `fairline cdr import` prices.

    The number's customer and type come from `directory` (keyed by E.164); a number not in
    it is not in service (unallocated, no price), as for a live call. What Asterisk's
    record does not tell stays empty: the Q.850 cause, the target that answered, queue
    visits, recording. Raises NotImportable when the record does not show the number.
    """
    if call.did is None:
        raise NotImportable(f"call {call.call_id}: Asterisk's record does not show the number dialled "
                            f"(fairline had sent the call to {DIAL_CONTEXT})")
    key = e164(call.did)
    entry = directory.get(key) if key is not None else None
    record = CallRecord(
        call_id=call.call_id, did=key if entry is not None and key is not None else call.did, caller=call.caller,
        started_at=call.started_at, answered_at=call.answered_at, ended_at=call.ended_at,
        disposition=_disposition(call, in_service=entry is not None), hangup_cause=None,
    )
    if entry is None:
        return rate_record(record, None, None, rates, source=SOURCE)
    return rate_record(record, entry.customer_id, entry.number_type, rates, source=SOURCE)


def not_importable_yet(call: AsteriskCall, waiting: Mapping[str, str] | None) -> str | None:
    """Why Asterisk's record of `call` must not be imported now, or None when it may be.

    A call fairline took has fairline's own CDR, richer than Asterisk's record (the cause,
    the target, queue visits, the recording); when it is missing in PostgreSQL it may still
    wait in fairline's spool directory. `waiting`: the call ids found there, each with its
    file (rating/storage/spool.py waiting_call_ids); None when the directory cannot be read.
    Calls the dialplan served while fairline was not connected (or shed) have no such CDR.
    """
    if call.path is not CallPath.FAIRLINE:
        return None
    if waiting is None:
        return ("fairline took this call, so its own CDR may still wait in fairline's spool, which reconcile "
                "cannot read: run it with --spool-dir (FAIRLINE_SPOOL_DIR) of the fairline that took the call")
    where = waiting.get(call.call_id)
    if where is None:
        return None
    return (f"fairline's own CDR of this call is in its spool directory ({where}), not in PostgreSQL yet: it is "
            "stored from there (cdrs.jsonl: when PostgreSQL takes it; rejected.jsonl, dead-letter.jsonl: once a "
            "person has dealt with it)")


def _disposition(call: AsteriskCall, *, in_service: bool) -> Disposition:
    """fairline's disposition from Asterisk's. Asterisk says NO ANSWER both when targets rang out and when
    the caller gave up first; a call that rang a target counts as no_answer."""
    if call.answered_at is not None:
        return Disposition.ANSWERED
    if not in_service:
        return Disposition.UNALLOCATED
    if call.disposition == "BUSY":
        return Disposition.BUSY
    if call.disposition in ("FAILED", "CONGESTION"):
        return Disposition.UNREACHABLE if call.dialled else Disposition.FAILED
    return Disposition.NO_ANSWER if call.dialled else Disposition.ABANDONED
