"""The "my calls" filters as typed in the page's query string, checked once into a frozen value,
and the keyset cursor that pages through them (no OFFSET, no count: page n costs what page 1 does)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from console.core.local_time import UTC_ZONE, days_window

Outcome = Literal["answered", "no_answer", "busy", "unreachable", "unallocated", "abandoned", "failed", "blocked"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)  # cdrs.disposition's values (migration 0019)

PAGE_SIZE = 50
DEFAULT_DAYS = 31
MAX_DAYS = 366  # one query never reads more than a year of a customer's calls


class FilterError(ValueError):
    """A filter the page cannot use; `field` names it, the message says what was expected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: after this call, in the order newest first."""

    started_at: datetime
    call_id: str

    def encode(self) -> str:
        raw = json.dumps([self.started_at.isoformat(), self.call_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            at, call_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            started = datetime.fromisoformat(at)
        except (ValueError, TypeError, binascii.Error):
            raise FilterError("after", "not a page link this console made") from None
        if started.tzinfo is None or not isinstance(call_id, str):
            raise FilterError("after", "not a page link this console made")
        return cls(started, call_id)


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Calls started on days `first`..`last` (both included) on the clock of `zone` (the customer's),
    of one number and outcome when given."""

    first: date
    last: date
    number: str | None = None
    outcome: Outcome | None = None
    after: Cursor | None = None
    zone: ZoneInfo = UTC_ZONE

    @property
    def start(self) -> datetime:
        """The first local day's first moment, in UTC."""
        return days_window(self.first, self.last, self.zone)[0]

    @property
    def end(self) -> datetime:
        """Exclusive: the moment the day after the last begins, in UTC."""
        return days_window(self.first, self.last, self.zone)[1]

    def query(self, *, after: Cursor | None = None) -> dict[str, str]:
        """The query string of this filter (without its cursor, or with another)."""
        q = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        if self.number:
            q["number"] = self.number
        if self.outcome:
            q["outcome"] = self.outcome
        if after is not None:
            q["after"] = after.encode()
        return q


def parse(params: Mapping[str, str], *, today: date, zone: ZoneInfo = UTC_ZONE) -> CallFilter:
    """The filter of a query string, its days on the clock of `zone` (`today` is that clock's date);
    raises FilterError naming the first field that is wrong."""
    last = _day(params, "to") or today
    first = _day(params, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise FilterError("from", f"{first} is after {last}")
    if (last - first).days + 1 > MAX_DAYS:
        raise FilterError("from", f"at most {MAX_DAYS} days at once")
    number = (params.get("number") or "").strip() or None
    if number is not None and not (number.startswith("+") and number[1:].isdigit() and len(number) <= 16):
        raise FilterError("number", "an E.164 number such as +31201234567")
    typed = (params.get("outcome") or "").strip()
    outcome = next((o for o in OUTCOMES if o == typed), None)
    if typed and outcome is None:
        raise FilterError("outcome", "one of " + ", ".join(OUTCOMES))
    after = Cursor.decode(params["after"]) if params.get("after") else None
    return CallFilter(first, last, number, outcome, after, zone)


def _day(params: Mapping[str, str], key: str) -> date | None:
    text = (params.get(key) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError(key, f"a date such as 2026-12-07, not {text[:20]!r}") from None
