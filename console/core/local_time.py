"""The customer's clock: which time zone a customer's pages show, and their days as UTC instants.

A customer's zone is the one most of its numbers ring in: the country clock fairline already uses for
their peak hours and opening hours (rating.core.tariff.number_zone). Times are stored in UTC; they
are turned local only to be shown and to say where a local day begins and ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC_ZONE = ZoneInfo("UTC")


def customer_zone(zones: Iterable[ZoneInfo]) -> ZoneInfo:
    """The zone most of a customer's numbers are in (a tie: the first by name); UTC for none."""
    counted = Counter(z.key for z in zones)
    if not counted:
        return UTC_ZONE
    key = min(counted, key=lambda k: (-counted[k], k))
    return ZoneInfo(key)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant local day `day` begins: its first moment on the zone's clock.

    A day that begins in a gap (a zone moving its clock forward at midnight) begins at the jump;
    a midnight that happens twice begins at the first (zoneinfo's fold=0 gives both)."""
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def days_window(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Local days `first`..`last` (both included) as UTC instants [start, end)."""
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    """The date on the zone's clock at `instant` (aware)."""
    if instant.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got {instant!r}")
    return instant.astimezone(zone).date()


def shown(instant: datetime, zone: ZoneInfo) -> str:
    """`instant` as a page shows it: the local wall clock, "2026-03-29 03:30:00"."""
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def zone_label(zone: ZoneInfo, at: datetime) -> str:
    """The zone as a page names it, with its offset at `at`: "Europe/Amsterdam (CET, UTC+01:00)"."""
    local = at.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    if zone.key == "UTC":
        return "UTC"
    return f"{zone.key} ({local.tzname()}, UTC{sign}{minutes // 60:02d}:{minutes % 60:02d})"
