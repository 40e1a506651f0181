"""The call detail record fairline writes for every inbound call."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime


class Disposition(str, enum.Enum):
    """How an inbound call ended, as billing reads it."""

    ANSWERED = "answered"
    UNALLOCATED = "unallocated"  # the number is not in service
    ABANDONED = "abandoned"  # the caller hung up before anyone answered
    FAILED = "failed"  # fairline or Asterisk could not serve the call


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished inbound call; datetimes are aware."""

    call_id: str
    did: str
    caller: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    disposition: Disposition
    hangup_cause: int | None

    def __post_init__(self) -> None:
        for name in ("started_at", "answered_at", "ended_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"CallRecord.{name} must be timezone-aware, got {value!r}")
