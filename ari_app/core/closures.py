"""Days a number with opening hours is closed all day: its country's public holidays and listed dates.

Pure: the holidays come from the `holidays` package (the calendar the tariff's peak hours use,
rating/core/tariff.py), computed in memory; nothing is read. The day is the local date on the
number's own clock: 23:30 UTC on 24 December is Christmas Day in Amsterdam.

Public holidays are the country's national ones (what `holidays` gives without a subdivision);
a number in a region with holidays of its own (a German Land, a Swiss canton, a US state) names
that subdivision, and gets the national and the regional ones. A phone number does not tell
its subdivision reliably, so it is never guessed (decision 0030).
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import date

import holidays

MAX_CLOSED_DATES = 100  # listed dates and ranges per number: a year of closures is far fewer


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class DateRange:
    """Closed from `first` to `last`, both included (one day when they are equal)."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"a closure from {self.first} to {self.last} ends before it starts")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}/{self.last}"


@dataclasses.dataclass(frozen=True, slots=True)
class Holidays:
    """The public holidays of `country` (ISO 3166), with those of `subdivision` when one is given."""

    country: str
    subdivision: str | None = None

    def __post_init__(self) -> None:
        check_subdivision(self.country, self.subdivision)

    def dates(self, year: int) -> frozenset[date]:
        return _holidays(self.country, self.subdivision, year)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and day in self.dates(day.year)


def subdivisions(country: str) -> tuple[str, ...]:
    """The subdivisions `holidays` knows for `country` (codes such as BY for Bavaria), sorted."""
    return tuple(sorted(_calendar(country).subdivisions))


def check_subdivision(country: str, subdivision: str | None) -> None:
    """ValueError unless `country` has a holiday calendar and `subdivision` (if given) is one of its own."""
    known = subdivisions(country)
    if subdivision is not None and subdivision not in known:
        raise ValueError(f"{subdivision!r} is not a subdivision of {country} in the holiday calendar; expected "
                         + (f"one of {', '.join(known)}" if known else f"none ({country} has no regional holidays)"))


@functools.lru_cache(maxsize=256)
def _calendar(country: str) -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(country)
    except NotImplementedError:
        raise ValueError(f"{country} has no public holiday calendar") from None


# Each call asks for today's holidays: a country's year is computed once (a few ms), then a set lookup.
@functools.lru_cache(maxsize=1024)
def _holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))
