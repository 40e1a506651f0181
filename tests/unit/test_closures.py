"""Closed days (issue 18): public holidays and listed dates in opening hours, on the number's own clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from ari_app.config.yaml_loader import parse
from ari_app.core import flow
from ari_app.core.closures import MAX_CLOSED_DATES, DateRange, Holidays, check_subdivision
from ari_app.core.events import CallStarted
from ari_app.core.model import (DAYS, Closures, Config, Customer, Number, OpeningHours, Route, Strategy, Target,
                               TargetKind, Window)
from ari_app.dialplan_gen import dialable
from ari_app.errors import ConfigError
from rating.core.tariff import NumberType

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NEW_YORK = ZoneInfo("America/New_York")
DAY, NIGHT, HOLIDAY = (Route(Strategy.SIMULTANEOUS, (Target(f"+3161234070{i}", TargetKind.MOBILE, 20),))
                       for i in (1, 2, 3))
ALWAYS_OPEN = OpeningHours(AMSTERDAM, ((Window(0, 1440),),) * len(DAYS))
WEEKDAYS = OpeningHours(AMSTERDAM, ((Window(8 * 60, 18 * 60),),) * 5 + ((), ()))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def number(closed: Closures | None, hours: OpeningHours = ALWAYS_OPEN) -> Number:
    return Number("+31201230500", "acme", NumberType.LOCAL, route=DAY, hours=hours, outside_hours=NIGHT,
                  closed=closed)


class TestDateRange:
    def test_holds_both_ends_and_nothing_outside(self) -> None:
        christmas_week = DateRange(date(2026, 12, 24), date(2026, 12, 31))
        assert date(2026, 12, 24) in christmas_week and date(2026, 12, 31) in christmas_week
        assert date(2026, 12, 23) not in christmas_week and date(2027, 1, 1) not in christmas_week
        assert "2026-12-24" not in christmas_week  # a date, not its text

    def test_one_day(self) -> None:
        assert str(DateRange(date(2026, 5, 1), date(2026, 5, 1))) == "2026-05-01"
        assert str(DateRange(date(2026, 5, 1), date(2026, 5, 3))) == "2026-05-01/2026-05-03"

    def test_refuses_a_range_that_ends_before_it_starts(self) -> None:
        with pytest.raises(ValueError, match="ends before it starts"):
            DateRange(date(2026, 12, 31), date(2026, 12, 24))


class TestHolidays:
    def test_national_holidays_of_the_country(self) -> None:
        dutch = Holidays("NL")
        assert date(2026, 12, 25) in dutch and date(2026, 4, 27) in dutch  # Christmas, King's Day
        assert date(2026, 12, 24) not in dutch

    def test_a_subdivision_adds_its_own_to_the_national_ones(self) -> None:
        epiphany = date(2026, 1, 6)  # a holiday in Bavaria, not in Germany as a whole
        assert epiphany in Holidays("DE", "BY") and epiphany not in Holidays("DE")
        assert date(2026, 10, 3) in Holidays("DE", "BY")  # German Unity Day: national

    def test_refuses_a_subdivision_of_another_country_naming_the_right_ones(self) -> None:
        with pytest.raises(ValueError, match=r"'BY' is not a subdivision of NL .* expected one of Midden, Noord, Zuid"):
            Holidays("NL", "BY")

    def test_refuses_a_country_without_a_calendar(self) -> None:
        with pytest.raises(ValueError, match="XX has no public holiday calendar"):
            check_subdivision("XX", None)


class TestClosures:
    def test_needs_something_to_close_on(self) -> None:
        with pytest.raises(ValueError, match="public holidays, dates, or both"):
            Closures(AMSTERDAM)

    def test_a_route_or_an_announcement_not_both(self) -> None:
        with pytest.raises(ValueError, match="not both"):
            Closures(AMSTERDAM, Holidays("NL"), route=HOLIDAY, announcement="closed")

    def test_at_most_so_many_dates(self) -> None:
        days = tuple(DateRange(date(2026, 1, 1) + timedelta(d), date(2026, 1, 1) + timedelta(d))
                     for d in range(MAX_CLOSED_DATES + 1))
        with pytest.raises(ValueError, match=f"expected at most {MAX_CLOSED_DATES}"):
            Closures(AMSTERDAM, dates=days)

    def test_refuses_a_naive_instant(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            Closures(AMSTERDAM, Holidays("NL")).closed_at(datetime(2026, 12, 25, 12))

    @pytest.mark.parametrize(("instant", "closed"), [
        ("2026-12-24T22:59:59+00:00", False),  # 23:59:59 on Christmas Eve in Amsterdam
        ("2026-12-24T23:00:00+00:00", True),  # midnight: Christmas Day
        ("2026-12-24T23:30:00+00:00", True),  # still the 24th in UTC
        ("2026-12-26T22:59:59+00:00", True),  # the last second of the second day of Christmas
        ("2026-12-26T23:00:00+00:00", False),
        ("2026-07-01T21:59:59+00:00", False),  # summer time: midnight is 22:00 UTC
        ("2026-04-26T22:00:00+00:00", True),  # King's Day starts
    ])
    def test_the_day_is_the_local_date_on_the_numbers_clock(self, instant: str, closed: bool) -> None:
        assert Closures(AMSTERDAM, Holidays("NL")).closed_at(at(instant)) is closed

    def test_a_listed_date_in_new_york_starts_at_its_own_midnight(self) -> None:
        closures = Closures(NEW_YORK, dates=(DateRange(date(2026, 3, 9), date(2026, 3, 9)),))
        assert not closures.closed_at(at("2026-03-09T03:59:59+00:00"))  # 23:59:59 on the 8th in New York
        assert closures.closed_at(at("2026-03-09T04:00:00+00:00"))
        assert closures.closed_at(at("2026-03-10T03:59:59+00:00"))
        assert not closures.closed_at(at("2026-03-10T04:00:00+00:00"))

    @given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)))
    def test_closed_exactly_on_the_listed_local_days(self, instant: datetime) -> None:
        local = instant.astimezone(AMSTERDAM).date()
        closures = Closures(AMSTERDAM, dates=(DateRange(local, local),))
        assert closures.closed_at(instant)
        assert not Closures(AMSTERDAM, dates=(DateRange(local + timedelta(1), local + timedelta(3)),)).closed_at(instant)


class TestRouteOnClosedDays:
    CHRISTMAS_NOON = at("2026-12-25T11:00:00+00:00")
    ORDINARY_NOON = at("2026-12-22T11:00:00+00:00")  # a Tuesday

    def test_the_closures_own_route_all_day_even_within_opening_hours(self) -> None:
        n = number(Closures(AMSTERDAM, Holidays("NL"), route=HOLIDAY), WEEKDAYS)
        assert n.route_at(self.CHRISTMAS_NOON) == HOLIDAY
        assert n.route_at(at("2026-12-25T03:00:00+00:00")) == HOLIDAY  # outside the hours too
        assert n.route_at(self.ORDINARY_NOON) == DAY
        assert n.route_at(at("2026-12-22T19:00:00+00:00")) == NIGHT

    def test_without_a_route_of_its_own_the_outside_hours_route(self) -> None:
        n = number(Closures(AMSTERDAM, Holidays("NL")))
        assert n.route_at(self.CHRISTMAS_NOON) == NIGHT
        assert n.announcement_at(self.CHRISTMAS_NOON) is None

    def test_an_announcement_instead_of_any_route(self) -> None:
        n = number(Closures(AMSTERDAM, Holidays("NL"), announcement="closed-today"))
        assert n.route_at(self.CHRISTMAS_NOON) is None
        assert n.announcement_at(self.CHRISTMAS_NOON) == "closed-today"
        assert (n.route_at(self.ORDINARY_NOON), n.announcement_at(self.ORDINARY_NOON)) == (DAY, None)

    def test_no_closures_no_change(self) -> None:
        assert number(None).route_at(self.CHRISTMAS_NOON) == DAY

    def test_closed_days_need_opening_hours(self) -> None:
        with pytest.raises(ValueError, match="closed days are part of opening hours"):
            Number("+31201230500", "acme", NumberType.LOCAL, route=DAY, closed=Closures(AMSTERDAM, Holidays("NL")))


class TestFlowOnClosedDays:
    def config(self, closed: Closures) -> Config:
        n = number(closed)
        return Config(customers={"acme": Customer("acme", "Acme")}, numbers={n.e164: n})

    def start(self, config: Config, instant: datetime) -> list[flow.Action]:
        event = CallStarted("c1", instant, "+31201230500", "+31612345678", instant, "Ring")
        return flow.step(flow.Call("c1"), event, config)[1]

    def test_a_call_on_a_listed_date_rings_the_closures_route(self) -> None:
        config = self.config(Closures(AMSTERDAM, dates=(DateRange(date(2026, 12, 24), date(2026, 12, 31)),),
                                      route=HOLIDAY))
        assert self.start(config, at("2026-12-27T12:00:00+00:00")) == [
            flow.Dial("Local/+31612340703-20@fairline-confirm/n,50", follow=True)]
        assert self.start(config, at("2026-12-23T12:00:00+00:00")) == [
            flow.Dial("Local/+31612340701-20@fairline-confirm/n,50", follow=True)]

    def test_a_call_on_a_holiday_hears_the_closures_announcement_answered(self) -> None:
        config = self.config(Closures(AMSTERDAM, Holidays("NL"), announcement="closed-today"))
        assert self.start(config, at("2026-12-25T12:00:00+00:00")) == [
            flow.Answer(), flow.Play("sound:closed-today", "c1-announcement")]

    def test_the_closures_route_is_a_phone_the_dialplan_may_ring(self) -> None:
        config = self.config(Closures(AMSTERDAM, Holidays("NL"), route=HOLIDAY))
        assert "+31612340703" in dialable(config)


HEAD = """\
customers:
  - {id: acme, name: Acme}
numbers:
  - number: "+31201230500"
    customer: acme
    type: local
    route: {targets: ["+31612340701"]}
    hours: {mon-fri: "08:00-18:00"}
    outside_hours: {targets: ["+31612340702"]}
    closed:
"""


def problems(closed: str, head: str = HEAD) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(head + closed, "f.yaml")
    return caught.value.problems


class TestClosedInTheConfiguration:
    def test_loads_holidays_dates_ranges_and_a_route(self) -> None:
        config = parse(HEAD + '      public_holidays: true\n'
                              '      dates: ["2026-12-24/2026-12-31", "2027-01-02"]\n'
                              '      route: {targets: ["+31612340703"]}\n', "f.yaml")
        closed = config.numbers["+31201230500"].closed
        assert closed == Closures(AMSTERDAM, Holidays("NL"), (DateRange(date(2026, 12, 24), date(2026, 12, 31)),
                                                              DateRange(date(2027, 1, 2), date(2027, 1, 2))), HOLIDAY)

    def test_a_subdivision_and_an_announcement(self) -> None:
        head = HEAD.replace("+31201230500", "+4989123456").replace("+316123407", "+49151123456")
        closed = parse(head + '      public_holidays: BY\n      announcement: closed-today\n', "f.yaml"
                       ).numbers["+4989123456"].closed
        assert closed == Closures(ZoneInfo("Europe/Berlin"), Holidays("DE", "BY"), announcement="closed-today")

    def test_no_public_holidays_and_only_dates(self) -> None:
        closed = parse(HEAD + '      public_holidays: false\n      dates: ["2026-08-03"]\n', "f.yaml"
                       ).numbers["+31201230500"].closed
        assert closed is not None and closed.holidays is None

    @pytest.mark.parametrize(("closed", "expected"), [
        ('      public_holidays: BY\n',
         ["f.yaml:11: numbers[0].closed.public_holidays: 'BY' is not a subdivision of NL in the holiday calendar; "
          "expected one of Midden, Noord, Zuid"]),
        ('      public_holidays: [true]\n',
         ["f.yaml:11: numbers[0].closed.public_holidays: expected true, false, or a subdivision of the number's "
          "country such as BY"]),
        ('      dates: ["2026-02-30"]\n',
         ["f.yaml:11: numbers[0].closed.dates[0]: '2026-02-30': expected a date like 2026-12-24, or a range like "
          "2026-12-24/2026-12-31 (both days closed)"]),
        ('      dates: ["24-12-2026"]\n',
         ["f.yaml:11: numbers[0].closed.dates[0]: '24-12-2026': expected a date like 2026-12-24, or a range like "
          "2026-12-24/2026-12-31 (both days closed)"]),
        ('      dates:\n        - 2026-12-01\n        - 2026-12-31/2026-12-24\n',
         ["f.yaml:13: numbers[0].closed.dates[1]: '2026-12-31/2026-12-24': a closure from 2026-12-31 to 2026-12-24 "
          "ends before it starts"]),
        ('      dates: "2026-12-24"\n',
         ["f.yaml:11: numbers[0].closed.dates: expected a list of dates; each expected a date like 2026-12-24, or a "
          "range like 2026-12-24/2026-12-31 (both days closed)"]),
        ('      route: {targets: ["+31612340703"]}\n',
         ["f.yaml:11: numbers[0].closed: missing public_holidays or dates; expected a mapping with public_holidays "
          "(true, or a subdivision such as BY) and/or dates, and optionally route or announcement for those days"]),
        ('      public_holidays: true\n      route: {targets: ["+4915112345678"]}\n',
         ["f.yaml:12: numbers[0].closed.route.targets[0]: +4915112345678 is in DE, +31201230500 in NL; expected a "
          "target in the number's country, or international_forwarding: true on the number (its forwarded calls "
          "are then never fair-use eligible)"]),
        ('      public_holidays: true\n      route: {queue: nosuchqueue}\n',
         ["f.yaml:12: numbers[0].closed.route.queue: nosuchqueue is not a queue in 'queues'; expected the name of "
          "one of the customer's queues"]),
        ('      public_holidays: true\n      route: {targets: ["+31612340703"], no_answer: {number: "+31201230500"}}\n',
         ["f.yaml:12: numbers[0].closed.route.no_answer.number: forwarding loop +31201230500 -> +31201230500: a "
          "call nobody answers would go round until the hop limit; expected a route that ends in an announcement"]),
        ('      public_holidays: true\n      announcement: closed today\n',
         ["f.yaml:12: numbers[0].closed.announcement: expected an Asterisk sound name like hello-world"]),
        ('      public_holidays: true\n      announcement: closed\n      route: {targets: ["+31612340703"]}\n',
         ["f.yaml:12: numbers[0].closed.announcement: on closed days callers get a route or an announcement, not "
          "both; remove one"]),
        ('      public_holidays: true\n      weekends: true\n',
         ["f.yaml:12: numbers[0].closed.weekends: unknown key; expected one of announcement, dates, public_holidays, "
          "route"]),
        ('      - 2026-12-24\n',
         ["f.yaml:11: numbers[0].closed: expected a mapping with public_holidays (true, or a subdivision such as BY) "
          "and/or dates, and optionally route or announcement for those days"]),
    ], ids=["unknown-subdivision", "holidays-not-a-scalar", "no-such-day", "day-first", "range-backwards",
            "dates-not-a-list", "nothing-to-close-on", "route-abroad", "route-to-no-queue", "route-loops",
            "bad-announcement", "route-and-announcement", "unknown-key", "not-a-mapping"])
    def test_each_problem_names_file_line_and_key(self, closed: str, expected: list[str]) -> None:
        assert problems(closed) == expected

    def test_too_many_dates(self) -> None:
        dates = ", ".join(f'"2026-01-01/2026-01-0{1 + i % 9}"' for i in range(MAX_CLOSED_DATES + 1))
        assert problems(f"      dates: [{dates}]\n") == [
            f"f.yaml:11: numbers[0].closed.dates: {MAX_CLOSED_DATES + 1} dates; expected at most "
            f"{MAX_CLOSED_DATES} (use ranges)"]

    def test_closed_without_opening_hours(self) -> None:
        head = HEAD.replace('    hours: {mon-fri: "08:00-18:00"}\n    outside_hours: {targets: ["+31612340702"]}\n',
                            "")
        assert problems('      public_holidays: true\n', head) == [
            "f.yaml:9: numbers[0].closed: closed days are part of opening hours; expected hours and outside_hours "
            "beside it"]
