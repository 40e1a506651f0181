"""The customer's clock on the console's pages (console/core/local_time.py): which zone, where local days
begin and end in UTC (also on the days the clocks change), and how times are shown."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ari_app.config.yaml_loader import parse
from console.core import call_filter
from console.core.local_time import UTC_ZONE, customer_zone, day_start, days_window, local_day, shown, zone_label
from console.core.numbers_view import snapshot

AMS = ZoneInfo("Europe/Amsterdam")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestCustomerZone:
    def test_the_zone_most_numbers_are_in(self) -> None:
        assert customer_zone([BERLIN, AMS, BERLIN]) == BERLIN

    def test_a_tie_goes_to_the_first_name_so_every_page_agrees(self) -> None:
        assert customer_zone([BERLIN, AMS]) == AMS == customer_zone([AMS, BERLIN])

    def test_a_customer_without_numbers_sees_utc(self) -> None:
        assert customer_zone([]) == UTC_ZONE


class TestDaysAcrossDaylightSaving:
    """Amsterdam moves its clocks on 2026-03-29 (02:00 CET -> 03:00 CEST) and 2026-10-25 (03:00 CEST -> 02:00 CET)."""

    def test_the_spring_day_has_23_hours(self) -> None:
        start, end = days_window(date(2026, 3, 29), date(2026, 3, 29), AMS)
        assert (start, end) == (utc("2026-03-28T23:00"), utc("2026-03-29T22:00"))
        assert end - start == timedelta(hours=23)

    def test_the_autumn_day_has_25_hours(self) -> None:
        start, end = days_window(date(2026, 10, 25), date(2026, 10, 25), AMS)
        assert (start, end) == (utc("2026-10-24T22:00"), utc("2026-10-25T23:00"))
        assert end - start == timedelta(hours=25)

    def test_consecutive_days_tile_the_time_line_without_gap_or_overlap(self) -> None:
        for first in (date(2026, 3, 27), date(2026, 10, 23)):
            days = [first + timedelta(days=k) for k in range(5)]
            for day, following in zip(days, days[1:]):
                assert days_window(day, day, AMS)[1] == day_start(following, AMS)

    def test_a_day_whose_midnight_is_skipped_begins_at_the_jump(self) -> None:
        # Chile moves from -04 to -03 at 24:00 on 2026-09-05: 2026-09-06 00:00 never happens there.
        assert day_start(date(2026, 9, 6), ZoneInfo("America/Santiago")) == utc("2026-09-06T04:00")

    def test_local_days_of_instants_around_the_changes(self) -> None:
        assert local_day(utc("2026-03-28T22:59:59"), AMS) == date(2026, 3, 28)
        assert local_day(utc("2026-03-28T23:00:00"), AMS) == date(2026, 3, 29)
        assert local_day(utc("2026-10-25T22:59:59"), AMS) == date(2026, 10, 25)
        assert local_day(utc("2026-10-25T23:00:00"), AMS) == date(2026, 10, 26)

    def test_a_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            local_day(datetime(2026, 3, 29, 12), AMS)


class TestShown:
    def test_the_spring_gap_is_jumped(self) -> None:
        assert shown(utc("2026-03-29T00:59:59"), AMS) == "2026-03-29 01:59:59"
        assert shown(utc("2026-03-29T01:00:00"), AMS) == "2026-03-29 03:00:00"

    def test_the_autumn_hour_is_shown_twice_and_the_label_tells_them_apart(self) -> None:
        first, second = utc("2026-10-25T00:30"), utc("2026-10-25T01:30")
        assert shown(first, AMS) == shown(second, AMS) == "2026-10-25 02:30:00"
        assert zone_label(AMS, first) == "Europe/Amsterdam (CEST, UTC+02:00)"
        assert zone_label(AMS, second) == "Europe/Amsterdam (CET, UTC+01:00)"

    def test_utc_and_zones_west_of_it(self) -> None:
        assert zone_label(UTC_ZONE, utc("2026-10-25T00:30")) == "UTC"
        assert zone_label(ZoneInfo("America/New_York"), utc("2026-12-07T12:00")) == \
            "America/New_York (EST, UTC-05:00)"


class TestCallFilterOnTheCustomersClock:
    def test_from_and_to_are_local_days(self) -> None:
        f = call_filter.parse({"from": "2026-10-25", "to": "2026-10-25"}, today=date(2026, 12, 7), zone=AMS)
        assert (f.start, f.end) == (utc("2026-10-24T22:00"), utc("2026-10-25T23:00"))

    def test_the_default_range_ends_with_the_local_today(self) -> None:
        f = call_filter.parse({}, today=date(2026, 3, 29), zone=AMS)
        assert f.last == date(2026, 3, 29) and f.end == utc("2026-03-29T22:00")


CONFIG = """customers:
  - id: acme
    name: Acme BV
  - id: berg
    name: Berg GmbH
  - id: idle
    name: Idle BV
numbers:
  - number: "+31201110001"
    customer: acme
    type: local
    route: {targets: ["+31612340001"]}
  - number: "+31201110002"
    customer: acme
    type: local
    announcement: hello-world
  - number: "+4930123456"
    customer: acme
    type: international
    route: {targets: ["+4915112345678"]}
  - number: "+4930123457"
    customer: berg
    type: international
    route: {targets: ["+4915112345679"]}
"""


class TestSnapshot:
    def test_each_customers_numbers_count_and_clock_once_per_version(self) -> None:
        s = snapshot("v3", parse(CONFIG, "test"))
        assert [n.e164 for n in s.numbers_of("acme")] == ["+31201110001", "+31201110002", "+4930123456"]
        assert [(c.customer_id, c.numbers) for c in s.customers] == [("acme", 3), ("berg", 1), ("idle", 0)]
        assert (s.zone_of("acme"), s.zone_of("berg"), s.zone_of("idle")) == (AMS, BERLIN, UTC_ZONE)
        assert s.numbers_of("nobody") == () and s.version == "v3"
