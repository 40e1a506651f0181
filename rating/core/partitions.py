"""The months of the cdrs table: which partitions to make ahead, which to detach, their names and bounds.

cdrs is partitioned by billing_month, one partition per month, named cdrs_YYYY_MM, plus a DEFAULT
partition (cdrs_default) that takes a CDR whose month has none (decision 0033). The SQL is in
rating/storage/partitions.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DEFAULT_PARTITION = "cdrs_default"
MONTHS_AHEAD = 3  # made at `fairline run` start, daily while it runs, and by `fairline cdr partitions ensure`

# A billing month is that of started_at in the number's own clock, and clocks are within a day of
# UTC (UTC-12 to UTC+14): a call that started in [since, until) has a billing month between those of
# since - 1 day and until + 1 day.
_CLOCKS_SPAN = timedelta(days=1)

_NAME = re.compile(r"cdrs_([0-9]{4})_([0-9]{2})")  # not \d: it takes any script's digits
_RANGE = re.compile(r"FOR VALUES FROM \('([0-9]{4}-[0-9]{2}-[0-9]{2})'\) TO \('([0-9]{4}-[0-9]{2}-[0-9]{2})'\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """A table of cdrs' months: attached with its range, or detached (then its name says its month)."""

    name: str
    first: date | None  # the first billing_month it takes; None: the DEFAULT partition
    end: date | None  # the first it does not take
    attached: bool
    rows: int  # PostgreSQL's estimate (pg_class.reltuples), exact after VACUUM or ANALYZE
    bytes: int  # table, indexes and TOAST


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    """The first day of the month n months after month's (n may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """cdrs_2026_11 for November 2026."""
    return f"cdrs_{month.year:04d}_{month.month:02d}"


def month_of_name(name: str) -> date | None:
    """The month a partition's name says (cdrs_2026_11: 2026-11-01); None for any other name."""
    m = _NAME.fullmatch(name)
    if m is None or not 1 <= int(m[2]) <= 12:
        return None
    return date(int(m[1]), int(m[2]), 1)


def months_to_ensure(today: date, months_ahead: int) -> list[date]:
    """This month and the months_ahead after it: the partitions that must exist."""
    if months_ahead < 0:
        raise ValueError(f"months ahead must be 0 or more, not {months_ahead}")
    this = first_of_month(today)
    return [add_months(this, n) for n in range(months_ahead + 1)]


def bounds(partition_bound: str) -> tuple[date, date] | None:
    """A monthly partition's range from pg_get_expr(relpartbound); None for DEFAULT.

    Raises ValueError for any other bound: fairline makes only months and the default.
    """
    if partition_bound == "DEFAULT":
        return None
    m = _RANGE.fullmatch(partition_bound)
    if m is None:
        raise ValueError(f"not a partition fairline makes: {partition_bound!r}")
    return date.fromisoformat(m[1]), date.fromisoformat(m[2])


def detach_refusal(before: date, today: date) -> str | None:
    """Why `detach --before` must not run, or None: this month and later stay (CDRs are written to them)."""
    if before > first_of_month(today):
        return (f"refusing to detach {first_of_month(today):%Y-%m} or later: fairline writes this month's CDRs "
                f"(--before {first_of_month(today):%Y-%m} at most)")
    return None


def to_detach(partitions: list[Partition], before: date) -> list[Partition]:
    """The attached monthly partitions that end on or before the first day of month `before`, oldest first."""
    return sorted((p for p in partitions if p.attached and p.end is not None and p.end <= before),
                  key=lambda p: p.end or before)


def billing_months_around(since: datetime, until: datetime | None) -> tuple[date, date | None]:
    """The billing months a call that started in [since, until) can have, as bounds a query can prune by."""
    lowest = first_of_month((since - _CLOCKS_SPAN).astimezone(UTC).date())
    highest = None if until is None else first_of_month((until + _CLOCKS_SPAN).astimezone(UTC).date())
    return lowest, highest
