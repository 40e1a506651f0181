"""The tariff: what one inbound call costs at list price.

Each started second from answer to end is rated at the rate in force when it
starts: peak (Monday-Friday 08:00-19:00 on the number's local clock, public
holidays excepted) or off-peak, from the tariff version in force on that local
day. Answered calls also pay a set-up fee; unanswered calls cost nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import functools
import itertools
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import NoReturn
from zoneinfo import ZoneInfo

import holidays
from holidays.registry import EntityLoader

from rating.core import numbering
from rating.errors import InvalidCall, InvalidTariff

_PEAK_START = time(8)
_PEAK_END = time(19)
_SECOND = timedelta(seconds=1)
_HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONEY_STEP = Decimal("0.0001")
_ZERO_EUR = Decimal("0.0000")
# Explicit precision so prices never depend on whatever decimal context the caller set.
_EXACT = Context(prec=28, rounding=ROUND_HALF_EVEN)  # Decimal's own default
# The countries the holidays package has a calendar for, from its registry: asking
# holidays.list_supported_countries() would import every country's module (8 MB of a
# fairline that rests at 60). A country's module loads when its first call is rated.
_HOLIDAY_CALENDARS = frozenset(EntityLoader.get_country_codes(include_aliases=True))


class NumberType(enum.StrEnum):
    """The kind of number called; decides whether fair use can make its calls free."""

    LOCAL = "local"
    NATIONAL = "national"
    INTERNATIONAL = "international"
    TOLLFREE = "tollfree"  # 0800
    PREMIUM = "premium"  # 0900

    @property
    def fair_use_eligible(self) -> bool:
        """Local and national numbers fall under fair use; the others always pay list price (rating/core/charge.py)."""
        return self in (NumberType.LOCAL, NumberType.NATIONAL)


@dataclasses.dataclass(frozen=True, slots=True)
class TrafficRates:
    """One version of the traffic prices, in force from 00:00 of valid_from on the number's local clock."""

    valid_from: date
    setup_eur: Decimal = Decimal("0.04")  # per answered call
    peak_eur_per_min: Decimal = Decimal("0.07")
    offpeak_eur_per_min: Decimal = Decimal("0.05")

    def __post_init__(self) -> None:
        # datetime is a date too, but a version starts on a day, not at an instant.
        if isinstance(self.valid_from, datetime) or not isinstance(self.valid_from, date):
            raise InvalidTariff(f"valid_from: expected a date, got {self.valid_from!r}")
        for name in ("setup_eur", "peak_eur_per_min", "offpeak_eur_per_min"):
            value = getattr(self, name)
            # A float cannot even hold 0.07; prices must be Decimal from the configuration on.
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidTariff(
                    f"{name} of the rates valid from {self.valid_from}: expected a non-negative Decimal, got {value!r}"
                )

    @property
    def label(self) -> str:
        """The version as a CDR records it, enough to work out any price it made without the tariff at hand:
        `2026-01-01: 0.04 + 0.07/0.05 per min` (valid from; set-up + peak/off-peak per minute, in EUR)."""
        return f"{self.valid_from.isoformat()}: {self.setup_eur} + {self.peak_eur_per_min}/{self.offpeak_eur_per_min} per min"


@dataclasses.dataclass(frozen=True, slots=True)
class RateTable:
    """Every version of the traffic prices, kept in order of validity date."""

    versions: tuple[TrafficRates, ...]

    def __post_init__(self) -> None:
        if not self.versions:
            raise InvalidTariff("versions: expected at least one version of the traffic rates")
        # Configuration may list versions in any order; lookups need them by date.
        ordered = tuple(sorted(self.versions, key=lambda v: v.valid_from))
        for earlier, later in itertools.pairwise(ordered):
            if earlier.valid_from == later.valid_from:
                raise InvalidTariff(f"versions: two versions valid from {later.valid_from}; expected one per date")
        object.__setattr__(self, "versions", ordered)

    @property
    def starts(self) -> date:
        """The first day any version is in force."""
        return self.versions[0].valid_from

    def rates_on(self, day: date) -> TrafficRates:
        """The version in force on a calendar day of the number's local clock."""
        index = bisect.bisect_right(self.versions, day, key=lambda v: v.valid_from)
        if index == 0:
            raise InvalidTariff(f"no traffic rates in force on {day}: the earliest version is valid from {self.starts}")
        return self.versions[index - 1]


# The published traffic rates (EUR 0.04 set-up, 0.07/min peak, 0.05/min off-peak),
# in force since before fairline's first call.
DEFAULT_RATES = RateTable((TrafficRates(valid_from=date(2000, 1, 1)),))


@dataclasses.dataclass(frozen=True, slots=True)
class CallTimes:
    """When an inbound call to a number started, was answered (None: never) and ended; all aware."""

    call_id: str
    number: str  # the number called, E.164: "+31201234567"
    number_type: NumberType
    start: datetime
    answer: datetime | None
    end: datetime

    def __post_init__(self) -> None:
        def reject(reason: str) -> NoReturn:
            raise InvalidCall(self.call_id, reason)

        if not self.call_id:
            reject("call_id: expected a non-empty string")
        if not isinstance(self.number_type, NumberType):
            reject(f"number_type: expected one of {', '.join(t.value for t in NumberType)}, got {self.number_type!r}")
        for name in ("start", "answer", "end"):
            value = getattr(self, name)
            if name == "answer" and value is None:
                continue
            if not isinstance(value, datetime) or value.utcoffset() is None:
                reject(f"{name}: expected a timezone-aware datetime, got {value!r}")
        if self.answer is not None and self.answer < self.start:
            reject(f"answer: expected at or after start {self.start.isoformat()}, got {self.answer.isoformat()}")
        earliest, earliest_name = (self.start, "start") if self.answer is None else (self.answer, "answer")
        if self.end < earliest:
            reject(f"end: expected at or after {earliest_name} {earliest.isoformat()}, got {self.end.isoformat()}")
        if not isinstance(self.number, str):
            reject(f"number: expected an E.164 string like +31201234567, got {self.number!r}")
        try:
            _place_of(self.number)
        except ValueError as problem:
            reject(f"number: {problem}")


@dataclasses.dataclass(frozen=True, slots=True)
class RatedPrice:
    """What a call costs at list price, before fair use decides whether the customer pays it."""

    billable_seconds: int
    peak_seconds: int
    offpeak_seconds: int
    setup_eur: Decimal
    usage_eur: Decimal
    list_price_eur: Decimal  # setup_eur + usage_eur
    fair_use_eligible: bool
    # The tariff versions that priced it (TrafficRates.label), "; " between two when the call ran into a
    # new version; None for a call never answered, which no tariff prices.
    tariff: str | None = None


def rate_call(call: CallTimes, rates: RateTable) -> RatedPrice:
    """Price a call: set-up per answered call, plus each started second at the rate in force when it starts.

    Raises InvalidCall when the call was answered before the earliest version of the rates.
    """
    eligible = call.number_type.fair_use_eligible
    if call.answer is None:
        return RatedPrice(0, 0, 0, _ZERO_EUR, _ZERO_EUR, _ZERO_EUR, eligible)
    place = _place_of(call.number)
    answer = call.answer
    billable = _started_seconds(call.end - answer)
    hour = (answer - _EPOCH) // _HOUR
    stretches = _stretches(place.zone, place.region, hour)
    at = 0
    while stretches[at].end <= answer:
        at += 1
    answered_on = stretches[at].day
    if answered_on < rates.starts:
        raise InvalidCall(
            call.call_id,
            f"answer: expected on or after {rates.starts}, when the earliest traffic rates start; "
            f"got {answer.isoformat()}",
        )
    if billable <= _started_seconds(stretches[at].end - answer):  # most calls: every second in one stretch
        return _price_in_one_stretch(rates.rates_on(answered_on), stretches[at].peak, billable, eligible)
    peak = offpeak = done = 0
    used: list[TrafficRates] = []
    with localcontext(_EXACT):
        seconds_times_eur_per_min = Decimal(0)
        first = answer
        while done < billable:
            # The stretch the second starting at `first` falls in; its seconds are rated alike.
            while at < len(stretches) and stretches[at].end <= first:
                at += 1
            if at == len(stretches):
                hour, at = (first - _EPOCH) // _HOUR, 0
                stretches = _stretches(place.zone, place.region, hour)
                continue
            stretch = stretches[at]
            seconds = min(billable - done, _started_seconds(stretch.end - first))
            version = rates.rates_on(stretch.day)
            if version not in used:
                used.append(version)
            if stretch.peak:
                peak += seconds
                seconds_times_eur_per_min += seconds * version.peak_eur_per_min
            else:
                offpeak += seconds
                seconds_times_eur_per_min += seconds * version.offpeak_eur_per_min
            done += seconds
            first = answer + done * _SECOND
        # Rounded once per call, so no call pays for rounding each of its pieces.
        usage = _money(seconds_times_eur_per_min / 60)
        setup = _money(rates.rates_on(answered_on).setup_eur)
        return RatedPrice(billable, peak, offpeak, setup, usage, setup + usage, eligible,
                          "; ".join(v.label for v in used))


# Calls as long as each other, answered on the same side of peak under the same version, cost the
# same: a few thousand prices serve a month of such calls, computed once each (docs/performance.md).
@functools.lru_cache(maxsize=1 << 14)
def _price_in_one_stretch(version: TrafficRates, peak: bool, seconds: int, eligible: bool) -> RatedPrice:
    """The price of a call whose `seconds` all start in one stretch, as rate_call works it out for any call."""
    with localcontext(_EXACT):
        usage = _money(seconds * (version.peak_eur_per_min if peak else version.offpeak_eur_per_min) / 60)
        setup = _money(version.setup_eur)
        return RatedPrice(seconds, seconds if peak else 0, 0 if peak else seconds, setup, usage, setup + usage,
                          eligible, version.label)


def number_zone(number: str) -> ZoneInfo:
    """The local clock of an E.164 number's country; raises ValueError for numbers without one."""
    return _place_of(number).zone


@dataclasses.dataclass(frozen=True, slots=True)
class _Place:
    region: str  # ISO 3166 country code: picks the public holidays
    zone: ZoneInfo  # picks the local clock


# Large enough for every number a provider serves: a call parses its number three times
# (validation, zone, rating), and a smaller cache thrashes once the numbers outnumber it.
@functools.lru_cache(maxsize=1 << 17)
def _place_of(number: str) -> _Place:
    """Where a number rings, as far as peak hours care; ValueError says why it cannot tell."""
    found = numbering.place(number)  # ValueError says why it is no E.164 number
    region, zones = found.region, found.zones
    if not zones:
        raise ValueError(f"{number} has no known time zone, which peak hours need")
    if region not in _HOLIDAY_CALENDARS:
        raise ValueError(f"{number} is in region {region}, which has no public holiday calendar")
    # Numbers not tied to a place (US toll-free, mobiles in large countries) span several
    # zones. Nothing says which the caller is in; the alphabetically first at least makes
    # every re-rating of a call give the same price.
    return _Place(region, ZoneInfo(zones[0]))


@functools.lru_cache(maxsize=1024)
def _public_holidays(region: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(region, years=year))


def _is_peak(local: datetime, region: str) -> bool:
    day = local.date()
    return (
        day.weekday() < 5 and _PEAK_START <= local.time() < _PEAK_END and day not in _public_holidays(region, day.year)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Stretch:
    """Instants up to `end` (UTC, exclusive) from the previous stretch's end: one local day, one side of peak."""

    end: datetime
    day: date  # the local day: picks the version of the rates
    peak: bool


# Rating looks up the stretches of the UTC hour each call is answered in, computed once each
# (docs/performance.md): 8,192 hours hold a month of traffic in 11 zones, a year in one.
@functools.lru_cache(maxsize=1 << 13)
def _stretches(zone: ZoneInfo, region: str, hour: int) -> tuple[_Stretch, ...]:
    """The stretches that cover UTC hour `hour` (whole hours since 1970) on the zone's clock, in order.

    The first holds the hour's start, the last its end. A stretch ends at the next 08:00,
    19:00 or midnight on the wall clock, or where the UTC offset changes (then the next
    stretch may continue the same day and side). Its ends are whole seconds: so are
    every zone's offsets and transitions.
    """
    start = _EPOCH + hour * _HOUR
    stop = start + _HOUR
    stretches = []
    while start < stop:
        local = start.astimezone(zone)
        wall = local.replace(tzinfo=None)
        # The seconds before the wall clock reaches the boundary, if the offset holds.
        seconds = _before_offset_change(start, local.utcoffset(), (_next_boundary(wall) - wall) // _SECOND, zone)
        end = start + seconds * _SECOND
        stretches.append(_Stretch(end, local.date(), _is_peak(local, region)))
        start = end
    return tuple(stretches)


def _next_boundary(wall: datetime) -> datetime:
    """The first 08:00, 19:00 or midnight after a naive local wall time."""
    for hour in (_PEAK_START, _PEAK_END):
        boundary = datetime.combine(wall.date(), hour)
        if boundary > wall:
            return boundary
    return datetime.combine(wall.date() + timedelta(days=1), time())


def _before_offset_change(first: datetime, offset: timedelta | None, count: int, zone: ZoneInfo) -> int:
    """Shorten a stretch of `count` seconds to those that start before the zone's UTC offset next changes.

    `offset` is the zone's offset at `first`. A DST change moves the wall clock, so a
    boundary worked out on the old offset is wrong after it. A stretch spans at most 11 hours
    and no zone changes its offset twice in that time, so a change shows as a different
    offset at the stretch's last second.
    """
    if count == 1 or (first + (count - 1) * _SECOND).astimezone(zone).utcoffset() == offset:
        return count  # the common case, checked without building a closure per run (docs/performance.md)
    same, changed = 0, count - 1
    while changed - same > 1:
        middle = (same + changed) // 2
        if (first + middle * _SECOND).astimezone(zone).utcoffset() == offset:
            same = middle
        else:
            changed = middle
    return changed


def _started_seconds(duration: timedelta) -> int:
    """Whole seconds, each started one counting in full: exact to the microsecond, no floats."""
    return -(-duration // _SECOND)


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(_MONEY_STEP, rounding=ROUND_HALF_UP)
