"""Fair use: which customers had more calls handled in a calendar month than the platform allows.

Calls on local and national numbers are free within fair use. Fair use counts the
calls a person of the customer's took (rating/core/handled.py, decision 0028), not every answered
line. A customer whose eligible handled calls exceed the month's allowance is above
it; one above it again and again is contacted by their account manager, who may mark
them a heavy user: a heavy user pays traffic rates for all answered calls of that month.
"""

from __future__ import annotations

import calendar
import dataclasses
import enum
import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from rating.errors import InvalidMonth, InvalidUsage

_FLOOR_CALLS_PER_WEEK = 20
_WINDOW_MONTHS = 6  # the months looked back on, the assessed month included
_CONTACT_FROM_MONTHS_ABOVE = 3
_MONTH_TEXT = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})")  # not \d: it takes any script's digits
# Explicit precision so allowances never depend on whatever decimal context the caller set.
_EXACT = Context(prec=28, rounding=ROUND_HALF_EVEN)  # Decimal's own default


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month, e.g. Month(2026, 11); shown and parsed as "2026-11"."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.year <= 9999 or not 1 <= self.month <= 12:
            raise InvalidMonth(f"{self.year:04d}-{self.month:02d}", "expected a year 0001-9999 and a month 01-12")

    @classmethod
    def parse(cls, text: str) -> Month:
        """The month written as YYYY-MM, e.g. "2026-11"."""
        match = _MONTH_TEXT.fullmatch(text)
        if match is None:
            raise InvalidMonth(text, "expected a month as YYYY-MM, e.g. 2026-11")
        return cls(int(match["year"]), int(match["month"]))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        """How many days the month has: 28 to 31."""
        return calendar.monthrange(self.year, self.month)[1]

    def previous(self) -> Month:
        """The month before this one."""
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def window(self, count: int) -> tuple[Month, ...]:
        """The count months ending with this one, oldest first."""
        months = [self]
        while len(months) < count:
            months.append(months[-1].previous())
        return tuple(reversed(months))

    def start(self, zone: tzinfo) -> datetime:
        """The month's first instant on the zone's clock, in UTC."""
        # At a DST gap at midnight, fold=0 gives the instant the gap starts, which is right.
        return datetime(self.year, self.month, 1, tzinfo=zone).astimezone(UTC)

    def end(self, zone: tzinfo) -> datetime:
        """The first instant after the month on the zone's clock, in UTC: instants in it are start <= t < end."""
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


class FairUseStatus(enum.StrEnum):
    """Where a customer stands in a month."""

    OK = "ok"  # within the allowance
    ABOVE = "above"  # over it this month, and in at most 2 of the last 6 months
    CONTACT = "contact"  # over it this month and in 3 or more of the last 6: the account manager calls


@dataclasses.dataclass(frozen=True, slots=True)
class MonthlyUsage:
    """One customer's handled inbound calls in one month.

    Give one per customer with an active number that month, zero calls included:
    they count towards the platform average.
    """

    customer_id: str
    month: Month
    handled_calls: int  # on all their numbers: the platform average counts every handled call
    eligible_handled_calls: int  # on local and national numbers, not answered abroad: what fair use limits

    def __post_init__(self) -> None:
        if not 0 <= self.eligible_handled_calls <= self.handled_calls:
            raise InvalidUsage(
                f"customer {self.customer_id} in {self.month}: expected 0 <= eligible_handled_calls "
                f"<= handled_calls, got {self.eligible_handled_calls} and {self.handled_calls}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class FairUseResult:
    """A customer's fair-use standing in a month."""

    customer_id: str
    month: Month
    calls: int  # eligible handled calls in the month
    allowance: Decimal
    above: bool
    months_above_of_last_6: int  # the month itself included
    status: FairUseStatus


def allowance(month: Month, handled_calls: int, customers: int) -> Decimal:
    """Calls a customer may have handled in a month: the platform average, but at least 20 a week.

    The average is all handled_calls of the month over the customers with an active
    number in it, those without calls included.
    """
    with localcontext(_EXACT):
        floor = Decimal(_FLOOR_CALLS_PER_WEEK * month.days) / 7
        average = Decimal(handled_calls) / customers if customers else Decimal(0)
        return max(average, floor)


def assess(month: Month, usage: Iterable[MonthlyUsage]) -> tuple[FairUseResult, ...]:
    """The fair-use status in a month of every customer active in it, by customer id.

    usage holds every customer's MonthlyUsage for the six months ending with month
    (other months are ignored): each month's allowance comes from that month's
    rows. A customer is above in a month when their eligible calls exceed its
    allowance. The status is ok when they are not above in month itself, whatever
    came before: the account manager calls about current excess, not past. When
    above, it is contact if they were above in 3 or more of the 6 months (month
    included), else above.
    """
    window = month.window(_WINDOW_MONTHS)
    rows: dict[Month, dict[str, MonthlyUsage]] = {m: {} for m in window}
    for row in usage:
        of_month = rows.get(row.month)
        if of_month is None:
            continue
        if row.customer_id in of_month:
            raise InvalidUsage(f"customer {row.customer_id} appears twice in {row.month}; expected one row per month")
        of_month[row.customer_id] = row
    allowances = {
        m: allowance(m, sum(r.handled_calls for r in of_month.values()), len(of_month)) for m, of_month in rows.items()
    }

    def is_above(customer_id: str, m: Month) -> bool:
        row = rows[m].get(customer_id)
        # Exact: rounding at the 28th digit moves an allowance far less than its distance to any whole number.
        return row is not None and row.eligible_handled_calls > allowances[m]

    results = []
    for customer_id, row in sorted(rows[month].items()):
        above = is_above(customer_id, month)
        months_above = sum(is_above(customer_id, m) for m in window)
        if not above:
            status = FairUseStatus.OK
        elif months_above >= _CONTACT_FROM_MONTHS_ABOVE:
            status = FairUseStatus.CONTACT
        else:
            status = FairUseStatus.ABOVE
        results.append(
            FairUseResult(
                customer_id, month, row.eligible_handled_calls, allowances[month], above, months_above, status
            )
        )
    return tuple(results)
