"""The call detail records fairline writes: what happened on a call, and what it costs."""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import re
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


from rating.core import numbering
from rating.errors import InvalidCall
from rating.core.tariff import CallTimes, NumberType, RatedPrice, RateTable, number_zone, rate_call


class Disposition(str, enum.Enum):
    """How an inbound call ended, as billing reads it."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"  # every target rang out
    BUSY = "busy"  # the last target tried was busy
    UNREACHABLE = "unreachable"  # the last target could not be reached (congestion, unavailable)
    UNALLOCATED = "unallocated"  # the number is not in service
    ABANDONED = "abandoned"  # the caller hung up before anyone answered
    FAILED = "failed"  # fairline or Asterisk could not serve the call
    BLOCKED = "blocked"  # the caller is on the number's or customer's blocked list: refused, nothing rang


class QueueOutcome(str, enum.Enum):
    """How one wait in a queue ended."""

    ANSWERED = "answered"  # an agent answered
    OVERFLOWED = "overflowed"  # the wait cap was reached; the caller went on to the queue's overflow destination
    QUEUE_TIMEOUT = "queue_timeout"  # the wait cap was reached, no overflow configured: announcement, call ended
    ABANDONED = "abandoned"  # the caller hung up while waiting


_MILLISECOND = Decimal("0.001")
# Asterisk's channel ids: NODE-EPOCH.SEQ with asterisk.conf's systemname set, EPOCH.SEQ without.
_NODE_IN_CALL_ID = re.compile(r"(.+)-[0-9]+\.[0-9]+", re.DOTALL)  # PostgreSQL's . matches a newline too


def node_of(call_id: str) -> str:
    """The node (Asterisk's systemname) a call id names; '' for a call id without one.

    The same rule as the cdrs.node column (migration 0012_cdr_node.sql).
    """
    found = _NODE_IN_CALL_ID.fullmatch(call_id)
    return found.group(1) if found else ""


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True, slots=True)
class QueueVisit:
    """One wait of a caller in one queue; waited_seconds is kept to the millisecond, as stored."""

    queue: str
    entered_at: datetime
    waited_seconds: Decimal
    outcome: QueueOutcome

    def __post_init__(self) -> None:
        if not self.queue:
            raise ValueError("QueueVisit.queue must be a queue name, got ''")
        if self.entered_at.tzinfo is None:
            raise ValueError(f"QueueVisit.entered_at must be timezone-aware, got {self.entered_at!r}")
        if not self.waited_seconds.is_finite() or self.waited_seconds < 0:
            raise ValueError(f"QueueVisit.waited_seconds must be 0 or more, got {self.waited_seconds!r}")
        # Frozen: set through object. Milliseconds: what cdrs.queue_visits and queue_wait_seconds hold.
        object.__setattr__(self, "waited_seconds", self.waited_seconds.quantize(_MILLISECOND, ROUND_HALF_UP))

    def to_json(self) -> dict[str, str]:
        """The visit as in cdrs.queue_visits and the spool: seconds as a string, exact."""
        return {"queue": self.queue, "entered_at": self.entered_at.isoformat(),
                "waited_seconds": str(self.waited_seconds), "outcome": self.outcome.value}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> QueueVisit:
        """The visit to_json wrote as d."""
        return cls(d["queue"], datetime.fromisoformat(d["entered_at"]), Decimal(d["waited_seconds"]),
                   QueueOutcome(d["outcome"]))


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingFile:
    """A call's recording as stored by fairline: the WAV file, its SHA-256, when it ran."""

    path: str  # absolute path of the WAV file in fairline's recordings directory
    sha256: str  # hex digest of the file as stored
    started_at: datetime  # aware
    ended_at: datetime  # aware
    duration_seconds: Decimal  # of audio in the file, to the millisecond

    def __post_init__(self) -> None:
        if not os.path.isabs(self.path):
            raise ValueError(f"RecordingFile.path must be an absolute path, got {self.path!r}")
        if not isinstance(self.sha256, str) or _SHA256_HEX.fullmatch(self.sha256.lower()) is None:
            raise ValueError(f"RecordingFile.sha256 must be 64 hexadecimal digits, got {self.sha256!r}")
        for name in ("started_at", "ended_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"RecordingFile.{name} must be a timezone-aware datetime, got {value!r}")
        if self.ended_at < self.started_at:
            raise ValueError(f"RecordingFile.ended_at {self.ended_at.isoformat()} is before started_at "
                             f"{self.started_at.isoformat()}")
        if not isinstance(self.duration_seconds, Decimal) or not self.duration_seconds.is_finite() \
                or self.duration_seconds < 0:
            raise ValueError(f"RecordingFile.duration_seconds must be a Decimal of 0 or more, "
                             f"got {self.duration_seconds!r}")
        # Frozen: set through object. Lower-case hex: what hashlib writes and verify compares with;
        # milliseconds: what recordings.duration_seconds holds.
        object.__setattr__(self, "sha256", self.sha256.lower())
        object.__setattr__(self, "duration_seconds", self.duration_seconds.quantize(_MILLISECOND, ROUND_HALF_UP))

    def to_json(self) -> dict[str, str]:
        """The recording as in the spool: times as ISO 8601, the duration as a string, exact."""
        return {"path": self.path, "sha256": self.sha256, "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat(), "duration_seconds": str(self.duration_seconds)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RecordingFile:
        """The recording to_json wrote as d."""
        return cls(d["path"], d["sha256"], datetime.fromisoformat(d["started_at"]),
                   datetime.fromisoformat(d["ended_at"]), Decimal(d["duration_seconds"]))


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished inbound call as the call flow saw it; datetimes are aware."""

    call_id: str
    did: str
    caller: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    disposition: Disposition
    hangup_cause: int | None
    answered_target: str | None = None  # E.164 of the phone that answered, when forwarded
    target_kind: str | None = None  # "fixed" or "mobile"
    queue_visits: tuple[QueueVisit, ...] = ()  # in order; an overflow can lead into another queue
    # Recording (issue 6), for numbers that have it on: the mode the law asked for (one_party, notify,
    # consent, forbidden), the evidence (what allowed the recording, or why there is none) and the file.
    recording_mode: str | None = None
    recording_evidence: str | None = None
    recording: RecordingFile | None = None
    # The call ended while fairline was away from Asterisk and Asterisk's own CDR had no end for it:
    # ended_at is when fairline lost the connection, the earliest it may have ended (issue 17).
    end_estimated: bool = False
    # Answer confirmation (decision 0031): the phone that took the call pressed 1 first (None: it was not
    # asked to), and how many phones (a mobile's voicemail, say) answered without pressing 1.
    answer_confirmed: bool | None = None
    unconfirmed_answers: int = 0
    # The voicemail message the caller left (issue 18): stored beside the recordings, mailed from `voicemails`.
    voicemail: RecordingFile | None = None

    def __post_init__(self) -> None:
        for name in ("started_at", "answered_at", "ended_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"CallRecord.{name} must be timezone-aware, got {value!r}")
        # Answered, timed out or abandoned, the call left the queues: only an overflow leads to another visit.
        if any(v.outcome is not QueueOutcome.OVERFLOWED for v in self.queue_visits[:-1]):
            raise ValueError(f"CallRecord.queue_visits: every visit but the last must have overflowed, "
                             f"got {[v.outcome.value for v in self.queue_visits]}")

    @property
    def recorded(self) -> bool:
        return self.recording is not None

    @property
    def queue(self) -> str | None:
        """The first queue the caller waited in; None when the call never queued."""
        return self.queue_visits[0].queue if self.queue_visits else None

    @property
    def queue_wait_seconds(self) -> Decimal | None:
        """The caller's total wait over every queue visited; None when the call never queued."""
        if not self.queue_visits:
            return None
        return sum((v.waited_seconds for v in self.queue_visits), Decimal("0.000"))

    @property
    def queue_overflows(self) -> int:
        """How many times the caller reached a queue's wait cap and was sent on to its overflow destination."""
        return sum(v.outcome is QueueOutcome.OVERFLOWED for v in self.queue_visits)

    @property
    def queue_disposition(self) -> QueueOutcome | None:
        """How the last queue visit ended; None when the call never queued."""
        return self.queue_visits[-1].outcome if self.queue_visits else None


_NO_PRICE = RatedPrice(0, 0, 0, Decimal("0.0000"), Decimal("0.0000"), Decimal("0.0000"), False)


@dataclasses.dataclass(frozen=True, slots=True)
class RatedCdr:
    """A call with its price: one row of the `cdrs` table."""

    call: CallRecord
    customer_id: str | None  # None: the number is not in service
    number_type: NumberType | None
    price: RatedPrice
    billing_month: date  # first day of the month the call started in, on the number's local clock
    rating_error: str | None = None  # why the call could not be priced; its prices are then 0
    source: str = "live"  # "live" from the ARI app, "import" from `fairline cdr import`
    # The clock that told peak from off-peak and the billing month (IANA name, e.g. "Europe/Amsterdam";
    # "UTC" for a number without one). With price.tariff, what explains the amount without re-rating.
    rating_zone: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (money as strings) that `from_json` turns back into an equal RatedCdr."""
        c, p = self.call, self.price
        return {
            "call_id": c.call_id, "did": c.did, "caller": c.caller,
            "started_at": c.started_at.isoformat(), "ended_at": c.ended_at.isoformat(),
            "answered_at": c.answered_at.isoformat() if c.answered_at else None,
            "disposition": c.disposition.value, "hangup_cause": c.hangup_cause,
            "answered_target": c.answered_target, "target_kind": c.target_kind,
            "queue_visits": [v.to_json() for v in c.queue_visits],
            "recording_mode": c.recording_mode, "recording_evidence": c.recording_evidence,
            "recording": c.recording.to_json() if c.recording else None,
            "customer_id": self.customer_id, "number_type": self.number_type.value if self.number_type else None,
            "billable_seconds": p.billable_seconds, "peak_seconds": p.peak_seconds, "offpeak_seconds": p.offpeak_seconds,
            "setup_eur": str(p.setup_eur), "usage_eur": str(p.usage_eur), "list_price_eur": str(p.list_price_eur),
            "fair_use_eligible": p.fair_use_eligible, "billing_month": self.billing_month.isoformat(),
            "rating_error": self.rating_error, "source": self.source,
            "tariff": p.tariff, "rating_zone": self.rating_zone, "end_estimated": c.end_estimated,
            "answer_confirmed": c.answer_confirmed, "unconfirmed_answers": c.unconfirmed_answers,
            "voicemail": c.voicemail.to_json() if c.voicemail else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RatedCdr":
        call = CallRecord(
            call_id=d["call_id"], did=d["did"], caller=d["caller"],
            started_at=datetime.fromisoformat(d["started_at"]), ended_at=datetime.fromisoformat(d["ended_at"]),
            answered_at=datetime.fromisoformat(d["answered_at"]) if d["answered_at"] else None,
            disposition=Disposition(d["disposition"]), hangup_cause=d["hangup_cause"],
            answered_target=d.get("answered_target"), target_kind=d.get("target_kind"),
            # Spool lines written before queues have no queue_visits.
            queue_visits=tuple(QueueVisit.from_json(v) for v in d.get("queue_visits", ())),
            # Nor have those written before recording (issue 6) the recording fields.
            recording_mode=d.get("recording_mode"), recording_evidence=d.get("recording_evidence"),
            recording=RecordingFile.from_json(d["recording"]) if d.get("recording") else None,
            end_estimated=bool(d.get("end_estimated", False)),  # spool lines from before issue 17 have none
            # Nor those from before issue 18 the answer confirmation.
            answer_confirmed=d.get("answer_confirmed"), unconfirmed_answers=int(d.get("unconfirmed_answers", 0)),
            voicemail=RecordingFile.from_json(d["voicemail"]) if d.get("voicemail") else None,  # nor before issue 18
        )
        price = RatedPrice(
            d["billable_seconds"], d["peak_seconds"], d["offpeak_seconds"], Decimal(d["setup_eur"]),
            Decimal(d["usage_eur"]), Decimal(d["list_price_eur"]), d["fair_use_eligible"],
            d.get("tariff"),  # spool lines written before issue 16 have neither this nor rating_zone
        )
        return cls(
            call=call, customer_id=d["customer_id"],
            number_type=NumberType(d["number_type"]) if d["number_type"] else None, price=price,
            billing_month=date.fromisoformat(d["billing_month"]), rating_error=d["rating_error"], source=d["source"],
            rating_zone=d.get("rating_zone"),
        )


def rate_record(call: CallRecord, customer_id: str | None, number_type: NumberType | None, rates: RateTable,
                *, source: str = "live") -> RatedCdr:
    """Price a finished call. Never raises for bad call data: such a call is kept, unpriced, with the reason.

    A call answered by a target in another country than the number's (allowed only with
    international forwarding) is never fair-use eligible.
    """
    zone: tzinfo
    try:
        zone = number_zone(call.did)
        zone_name = zone.key
    except ValueError:
        zone, zone_name = UTC, "UTC"
    try:
        local_start = call.started_at.astimezone(zone)
    except (OverflowError, ValueError):  # a start at the very edge of what datetime holds: keep it, unpriced
        started = call.started_at.astimezone(UTC)
        return RatedCdr(call, customer_id, number_type, _NO_PRICE, date(started.year, started.month, 1),
                        rating_error=f"start time {call.started_at.isoformat()} is out of range", source=source,
                        rating_zone="UTC")
    month = date(local_start.year, local_start.month, 1)
    if customer_id is None or number_type is None:
        return RatedCdr(call, customer_id, number_type, _NO_PRICE, month, source=source, rating_zone=zone_name)
    try:
        price = rate_call(
            CallTimes(call.call_id, call.did, number_type, call.started_at, call.answered_at, call.ended_at), rates
        )
    except InvalidCall as exc:
        eligible = number_type.fair_use_eligible and not _forwarded_abroad(call)
        return RatedCdr(call, customer_id, number_type, dataclasses.replace(
            _NO_PRICE, fair_use_eligible=eligible), month, rating_error=exc.reason, source=source,
            rating_zone=zone_name)
    if price.fair_use_eligible and _forwarded_abroad(call):
        price = dataclasses.replace(price, fair_use_eligible=False)
    return RatedCdr(call, customer_id, number_type, price, month, source=source, rating_zone=zone_name)


def _forwarded_abroad(call: CallRecord) -> bool:
    if call.answered_target is None:
        return False
    here = _region_of(call.did)
    there = _region_of(call.answered_target)
    if here is _UNPARSABLE or there is _UNPARSABLE:
        return False
    return bool(here != there)


_UNPARSABLE = object()


# Cached: parsing is most of the cost of rating a forwarded call (docs/performance.md), and
# the numbers and the targets they forward to are few and come back call after call.
@functools.lru_cache(maxsize=1 << 17)
def _region_of(number: str) -> object:
    """The number's region code (None when phonenumbers knows none), or _UNPARSABLE."""
    try:
        return numbering.region(number)
    except numbering.NotE164:
        return _UNPARSABLE
