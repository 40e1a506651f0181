"""The billing pages' pure parts (issue 19): months in addresses, staff's two forms checked field by field
(each message shown next to its field, nothing saved while one is wrong), how an invoice line reads, and the
queue policy's hint in plain words.

Prices are not computed here: the pages show rating/storage/billing.py's invoice lines and totals as they are.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from rating.core.fair_use import Month
from rating.errors import InvalidMonth
from rating.core.queue_policy import ADVICE, SERVICE_LEVEL_SECONDS

INVOICE_MONTHS = 12  # the invoice list shows this month and the eleven before it
QUEUE_MONTHS = 6  # the service-level page: this month and the five before it
REASON_MAX = 500  # characters of a heavy-user decision's reason
NOTE_MAX = 2000
SPOKE_WITH_MAX = 200

_CALLED_AT = re.compile(r"(?P<day>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2})")
_FOUR = Decimal("0.0001")
_TENTH = Decimal("0.1")

Errors = dict[str, str]  # field name -> what is wrong with it


def month_in_path(text: str) -> Month | None:
    """The month of an address like /invoices/2026-11; None (a 404) for anything else."""
    try:
        return Month.parse(text)
    except InvalidMonth:
        return None


def recent_months(today: date, count: int) -> tuple[Month, ...]:
    """The count months ending with today's, newest first."""
    return tuple(reversed(Month(today.year, today.month).window(count)))


def four(amount: Decimal) -> str:
    """Money as `fairline invoice` writes it: 4 decimals, half-up (stored amounts have 4 already)."""
    return format(amount.quantize(_FOUR, rounding=ROUND_HALF_UP), "f")


def tenth(value: Decimal) -> str:
    """Seconds of wait and percentages: 1 decimal, half-up, as `fairline queue report` writes them."""
    return format(value.quantize(_TENTH, rounding=ROUND_HALF_UP), "f")


def duration(seconds: int | None) -> str:
    """A call's billable time as minutes:seconds; '' for a line that is no call."""
    if seconds is None:
        return ""
    return f"{seconds // 60}:{seconds % 60:02d}"


# ------------------------------------------------------------------ heavy users


@dataclasses.dataclass(frozen=True, slots=True)
class HeavyUserDecision:
    """What staff decided on the form, as `fairline heavy-user mark|unmark` takes it."""

    month: Month
    heavy: bool
    reason: str


def heavy_user_form(fields: Mapping[str, str]) -> tuple[HeavyUserDecision | None, Errors]:
    """The decision, or None and a message per wrong field (month, decision, reason)."""
    errors: Errors = {}
    month = _month_field(fields.get("month", ""), errors)
    decision = fields.get("decision", "")
    if decision not in ("mark", "unmark"):
        errors["decision"] = "Choose: mark as heavy user, or unmark."
    reason = _text_field(fields, "reason", REASON_MAX, errors, "Say why, for the record (the customer may ask).")
    if errors or month is None:
        return None, errors
    return HeavyUserDecision(month, decision == "mark", reason), {}


# --------------------------------------------------------------- contact notes


@dataclasses.dataclass(frozen=True, slots=True)
class ContactNote:
    """The outcome of the policy's phone call to a customer whose fair-use status is `contact`."""

    spoke_with: str
    called_at: datetime  # UTC
    note: str


def contact_note_form(fields: Mapping[str, str], *, now: datetime) -> tuple[ContactNote | None, Errors]:
    """The note, or None and a message per wrong field (spoke_with, called_at, note)."""
    errors: Errors = {}
    spoke_with = _text_field(fields, "spoke_with", SPOKE_WITH_MAX, errors,
                             "Say whom you spoke with (or \"no answer\").")
    called_at = _called_at(fields.get("called_at", "").strip(), now, errors)
    note = _text_field(fields, "note", NOTE_MAX, errors, "Write what was said or agreed.")
    if errors or called_at is None:
        return None, errors
    return ContactNote(spoke_with, called_at, note), {}


def called_at_text(at: datetime) -> str:
    """A time as the note form shows and takes it: YYYY-MM-DD HH:MM, UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _called_at(text: str, now: datetime, errors: Errors) -> datetime | None:
    found = _CALLED_AT.fullmatch(text)
    try:
        at = datetime.fromisoformat(f"{found['day']}T{found['time']}").replace(tzinfo=UTC) if found else None
    except ValueError:
        at = None
    if at is None:
        errors["called_at"] = "Expected the time of the call as YYYY-MM-DD HH:MM (UTC), e.g. 2026-12-07 14:30."
        return None
    if at > now:
        errors["called_at"] = f"That is later than now ({called_at_text(now)} UTC): note a call once it is made."
        return None
    return at


# ---------------------------------------------------------------- service levels


def cap_hint(*, flagged: bool, cap_hits: int, visits: int, cap_percent: Decimal) -> str | None:
    """The queue policy's hint when the customer's callers hit the wait cap often (the report's FLAG); else None."""
    if not flagged:
        return None
    return (f"Callers waited the full {SERVICE_LEVEL_SECONDS} seconds and were sent on in {cap_hits} of {visits} "
            f"queue visits ({tenth(cap_percent)} %). That is more than bad luck: the queue's agents cannot keep up "
            f"at busy times. The policy's advice: {ADVICE}.")


# ------------------------------------------------------------------ shared


def _month_field(text: str, errors: Errors) -> Month | None:
    try:
        return Month.parse(text.strip())
    except InvalidMonth:
        errors["month"] = "Expected a month as YYYY-MM, e.g. 2026-11."
        return None


def _text_field(fields: Mapping[str, str], name: str, limit: int, errors: Errors, missing: str) -> str:
    text = fields.get(name, "").strip()
    if not text:
        errors[name] = missing
    elif len(text) > limit:
        errors[name] = f"At most {limit} characters, please; this is {len(text)}."
    return text
