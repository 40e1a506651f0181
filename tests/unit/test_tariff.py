"""The tariff: list prices of calls, split exactly into peak and off-peak seconds."""

from __future__ import annotations

import functools
import itertools
import math
import pathlib
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_time_zones

from rating.errors import InvalidCall, InvalidTariff
from rating.core.tariff import CallTimes, NumberType, RatedPrice, RateTable, TrafficRates, rate_call

AMSTERDAM = "+31201234567"
BERLIN = "+4930123456"
NEW_YORK = "+12125550123"
SYDNEY = "+61291234567"
CAIRO = "+20223456789"  # Egypt moves its clocks at midnight, on a weekday
JERUSALEM = "+97221234567"  # Israel moves its clocks at 02:00 on a Friday, before 08:00

RATES = RateTable((TrafficRates(date(2020, 1, 1)),))
NEW_YEAR_RATES = TrafficRates(
    date(2027, 1, 1),
    setup_eur=Decimal("0.05"),
    peak_eur_per_min=Decimal("0.09"),
    offpeak_eur_per_min=Decimal("0.06"),
)
RATES_CHANGING_2027 = RateTable((TrafficRates(date(2020, 1, 1)), NEW_YEAR_RATES))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def answered_call(
    answer: str, end: str, number: str = AMSTERDAM, number_type: NumberType = NumberType.LOCAL
) -> CallTimes:
    """A call answered the moment it arrived."""
    return CallTimes("c1", number, number_type, at(answer), at(answer), at(end))


def split(price: RatedPrice) -> tuple[int, int]:
    return price.peak_seconds, price.offpeak_seconds


class TestWorkedExample:
    def test_call_across_seven_pm_pays_peak_until_seven_and_off_peak_after(self) -> None:
        """The example from the tariff sheet: 20 s peak, 70 s off-peak, EUR 0.1217."""
        call = CallTimes(
            "c1",
            AMSTERDAM,
            NumberType.LOCAL,
            start=at("2026-11-23T18:59:30+01:00"),
            answer=at("2026-11-23T18:59:40+01:00"),
            end=at("2026-11-23T19:01:10+01:00"),
        )
        assert rate_call(call, RATES) == RatedPrice(
            billable_seconds=90,
            peak_seconds=20,
            offpeak_seconds=70,
            setup_eur=Decimal("0.0400"),
            usage_eur=Decimal("0.0817"),
            list_price_eur=Decimal("0.1217"),
            fair_use_eligible=True,
            tariff="2020-01-01: 0.04 + 0.07/0.05 per min",
        )


class TestPeakHours:
    """Peak is Monday-Friday 08:00-19:00 on the number's local clock, except its country's public holidays."""

    @pytest.mark.parametrize(
        ("answer", "end", "number", "peak", "offpeak"),
        [
            pytest.param("2026-11-24T07:59:00+01:00", "2026-11-24T08:01:00+01:00", AMSTERDAM, 60, 60, id="crossing-08:00"),
            pytest.param("2026-11-24T18:59:00+01:00", "2026-11-24T19:01:00+01:00", AMSTERDAM, 60, 60, id="crossing-19:00"),
            pytest.param("2026-11-24T07:59:59+01:00", "2026-11-24T08:00:01+01:00", AMSTERDAM, 1, 1, id="second-starting-at-08:00-is-peak"),
            pytest.param("2026-11-24T18:59:59+01:00", "2026-11-24T19:00:01+01:00", AMSTERDAM, 1, 1, id="second-starting-at-19:00-is-off-peak"),
            pytest.param("2026-11-24T23:59:30+01:00", "2026-11-25T00:00:30+01:00", AMSTERDAM, 0, 60, id="across-midnight"),
            pytest.param("2026-11-24T00:00:00+01:00", "2026-11-25T00:00:00+01:00", AMSTERDAM, 11 * 3600, 13 * 3600, id="a-whole-tuesday"),
            pytest.param("2026-11-27T18:00:00+01:00", "2026-11-28T09:00:00+01:00", AMSTERDAM, 3600, 14 * 3600, id="friday-evening-to-saturday-morning"),
            pytest.param("2026-11-29T23:00:00+01:00", "2026-11-30T08:30:00+01:00", AMSTERDAM, 1800, 9 * 3600, id="sunday-night-to-monday-morning"),
            pytest.param("2026-04-27T10:00:00+02:00", "2026-04-27T10:05:00+02:00", AMSTERDAM, 0, 300, id="kings-day"),
            pytest.param("2026-12-25T09:00:00+01:00", "2026-12-25T09:01:00+01:00", AMSTERDAM, 0, 60, id="christmas-day"),
            pytest.param("2026-12-24T09:00:00+01:00", "2026-12-24T09:01:00+01:00", AMSTERDAM, 60, 0, id="christmas-eve-is-a-working-day"),
            pytest.param("2026-04-27T23:59:30+02:00", "2026-04-28T08:00:30+02:00", AMSTERDAM, 30, 8 * 3600 + 30, id="day-after-kings-day-peaks-at-08:00"),
            pytest.param("2026-11-26T10:00:00-05:00", "2026-11-26T10:01:00-05:00", NEW_YORK, 0, 60, id="us-thanksgiving-on-a-us-number"),
            pytest.param("2026-11-26T10:00:00+01:00", "2026-11-26T10:01:00+01:00", AMSTERDAM, 60, 0, id="us-thanksgiving-on-a-dutch-number"),
            pytest.param("2026-11-23T19:30:00Z", "2026-11-23T19:31:00Z", NEW_YORK, 60, 0, id="14:30-in-new-york"),
            pytest.param("2026-11-23T19:30:00Z", "2026-11-23T19:31:00Z", AMSTERDAM, 0, 60, id="same-instant-20:30-in-amsterdam"),
        ],
    )
    def test_seconds_are_peak_on_the_numbers_local_working_hours(
        self, answer: str, end: str, number: str, peak: int, offpeak: int
    ) -> None:
        """Each second is peak or off-peak by the local time its start falls on."""
        assert split(rate_call(answered_call(answer, end, number), RATES)) == (peak, offpeak)


class TestNumbersInSeveralZones:
    def test_a_number_spanning_several_zones_is_rated_on_the_alphabetically_first(self) -> None:
        """US toll-free numbers span every US zone; America/Adak comes first, so 12:30 in New York is 07:30 there.

        Nothing in the number says where it rings; picking the same zone every time
        keeps re-rating a call reproducible.
        """
        call = answered_call("2026-11-24T17:30:00Z", "2026-11-24T17:31:00Z", "+18005550123", NumberType.TOLLFREE)
        assert split(rate_call(call, RATES)) == (0, 60)


class TestDaylightSavingTime:
    """Seconds are real seconds; peak hours follow the wall clock after the change."""

    @pytest.mark.parametrize(
        ("answer", "end", "number", "peak", "offpeak"),
        [
            pytest.param("2026-03-29T01:59:30+01:00", "2026-03-29T03:00:30+02:00", AMSTERDAM, 0, 60, id="spring-02:00-becomes-03:00"),
            pytest.param("2026-10-25T02:59:30+02:00", "2026-10-25T02:00:30+01:00", AMSTERDAM, 0, 60, id="autumn-03:00-becomes-02:00"),
            pytest.param("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", AMSTERDAM, 0, 23 * 3600, id="spring-sunday-has-23-hours"),
            pytest.param("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", AMSTERDAM, 0, 25 * 3600, id="autumn-sunday-has-25-hours"),
            pytest.param("2026-03-29T01:30:00+01:00", "2026-03-30T08:00:30+02:00", AMSTERDAM, 30, 106200, id="spring-then-monday-08:00"),
            pytest.param("2026-10-25T01:30:00+02:00", "2026-10-26T08:00:30+01:00", AMSTERDAM, 30, 113400, id="autumn-then-monday-08:00"),
            pytest.param("2026-04-23T23:59:30+02:00", "2026-04-24T08:00:30+03:00", CAIRO, 30, 25230, id="cairo-midnight-becomes-01:00"),
            pytest.param("2026-03-27T01:30:00+02:00", "2026-03-27T08:00:30+03:00", JERUSALEM, 30, 19800, id="jerusalem-friday-02:00-becomes-03:00"),
            pytest.param("2026-10-29T23:30:00+03:00", "2026-10-30T08:00:30+02:00", CAIRO, 30, 34200, id="cairo-midnight-becomes-23:00"),
        ],
    )
    def test_calls_across_a_clock_change_are_split_exactly(
        self, answer: str, end: str, number: str, peak: int, offpeak: int
    ) -> None:
        """A change of the clocks neither adds nor loses billed seconds, nor moves 08:00."""
        assert split(rate_call(answered_call(answer, end, number), RATES)) == (peak, offpeak)


class TestBillableSeconds:
    """Billing runs from answer to end and counts every started second."""

    @pytest.mark.parametrize(
        ("answer", "end", "billable"),
        [
            pytest.param("2026-11-28T10:00:00+01:00", "2026-11-28T10:00:00.000001+01:00", 1, id="one-microsecond"),
            pytest.param("2026-11-28T10:00:00+01:00", "2026-11-28T10:00:01+01:00", 1, id="exactly-one-second"),
            pytest.param("2026-11-28T10:00:00+01:00", "2026-11-28T10:00:01.000001+01:00", 2, id="just-over-one-second"),
            pytest.param("2026-11-28T10:00:00.5+01:00", "2026-11-28T10:01:30.4+01:00", 90, id="fractional-answer-and-end"),
        ],
    )
    def test_every_started_second_counts_in_full(self, answer: str, end: str, billable: int) -> None:
        """A second the call has started is billed whole."""
        assert rate_call(answered_call(answer, end), RATES).billable_seconds == billable

    def test_a_started_second_is_rated_by_when_it_starts(self) -> None:
        """Seconds start at answer + k s: from 18:59:59.5 one starts before 19:00 and one after."""
        price = rate_call(answered_call("2026-11-24T18:59:59.5+01:00", "2026-11-24T19:00:00.6+01:00"), RATES)
        assert (price.billable_seconds, *split(price)) == (2, 1, 1)

    def test_ringing_time_before_answer_is_not_billed(self) -> None:
        """Only the conversation is billed, not the time the call rang."""
        call = CallTimes(
            "c1",
            AMSTERDAM,
            NumberType.LOCAL,
            start=at("2026-11-24T10:00:00+01:00"),
            answer=at("2026-11-24T10:05:00+01:00"),
            end=at("2026-11-24T10:06:00+01:00"),
        )
        assert rate_call(call, RATES).billable_seconds == 60

    def test_answered_call_without_a_second_still_pays_set_up(self) -> None:
        """Set-up is per answered call, even one hung up the instant it was answered."""
        price = rate_call(answered_call("2026-11-24T10:00:00+01:00", "2026-11-24T10:00:00+01:00"), RATES)
        assert price == RatedPrice(0, 0, 0, Decimal("0.0400"), Decimal("0.0000"), Decimal("0.0400"), True,
                                   "2020-01-01: 0.04 + 0.07/0.05 per min")

    @pytest.mark.parametrize("number_type", list(NumberType))
    def test_unanswered_call_costs_nothing(self, number_type: NumberType) -> None:
        """No answer, no set-up and no seconds, whatever the number."""
        start, end = at("2026-11-24T10:00:00+01:00"), at("2026-11-24T10:01:00+01:00")
        call = CallTimes("c1", AMSTERDAM, number_type, start, None, end)
        assert rate_call(call, RATES) == RatedPrice(
            0, 0, 0, Decimal("0.0000"), Decimal("0.0000"), Decimal("0.0000"), number_type.fair_use_eligible
        )


class TestMoney:
    """Amounts are Decimal euros, rounded half up to 4 decimals once per call."""

    def test_an_hour_of_peak_is_sixty_times_the_peak_rate(self) -> None:
        """No rounding drift over long calls."""
        price = rate_call(answered_call("2026-11-24T09:00:00+01:00", "2026-11-24T10:00:00+01:00"), RATES)
        assert (price.usage_eur, price.list_price_eur) == (Decimal("4.2000"), Decimal("4.2400"))

    def test_half_a_ten_thousandth_rounds_up(self) -> None:
        """EUR 0.00005 is billed as 0.0001, not rounded to even."""
        rates = RateTable((TrafficRates(date(2020, 1, 1), offpeak_eur_per_min=Decimal("0.003")),))
        price = rate_call(answered_call("2026-11-28T10:00:00+01:00", "2026-11-28T10:00:01+01:00"), rates)
        assert price.usage_eur == Decimal("0.0001")

    def test_amounts_carry_exactly_four_decimals(self) -> None:
        """Every amount shows as 0.0000-style, so invoices line up."""
        price = rate_call(answered_call("2026-11-24T09:00:00+01:00", "2026-11-24T09:01:00+01:00"), RATES)
        amounts = [str(a) for a in (price.setup_eur, price.usage_eur, price.list_price_eur)]
        assert amounts == ["0.0400", "0.0700", "0.1100"]


class TestRateVersions:
    """Each second pays the version in force on its local day; set-up the version on the day of answer."""

    def test_call_across_the_start_of_a_new_version_pays_each_side_at_its_own_rate(self) -> None:
        """60 s at the old off-peak 0.05/min, 60 s at the new 0.06/min; set-up from when it was answered."""
        price = rate_call(answered_call("2026-12-31T23:59:00+01:00", "2027-01-01T00:01:00+01:00"), RATES_CHANGING_2027)
        assert (price.setup_eur, price.usage_eur, price.list_price_eur) == (
            Decimal("0.0400"),
            Decimal("0.1100"),
            Decimal("0.1500"),
        )
        # Both versions priced it, and the CDR says so: the amount can be worked out from the CDR alone.
        assert price.tariff == "2020-01-01: 0.04 + 0.07/0.05 per min; 2027-01-01: 0.05 + 0.09/0.06 per min"

    def test_a_call_records_the_one_version_that_priced_it(self) -> None:
        price = rate_call(answered_call("2027-01-01T03:00:00Z", "2027-01-01T03:01:00Z", AMSTERDAM), RATES_CHANGING_2027)
        assert price.tariff == "2027-01-01: 0.05 + 0.09/0.06 per min"

    def test_an_unanswered_call_names_no_tariff(self) -> None:
        call = CallTimes("c1", AMSTERDAM, NumberType.LOCAL, start=at("2026-11-24T10:00:00+01:00"), answer=None,
                         end=at("2026-11-24T10:00:30+01:00"))
        assert rate_call(call, RATES).tariff is None

    @pytest.mark.parametrize(
        ("number", "setup", "usage"),
        [
            pytest.param(NEW_YORK, Decimal("0.0400"), Decimal("0.0500"), id="still-31-december-in-new-york"),
            pytest.param(AMSTERDAM, Decimal("0.0500"), Decimal("0.0600"), id="already-1-january-in-amsterdam"),
        ],
    )
    def test_a_version_starts_at_midnight_on_the_numbers_clock(
        self, number: str, setup: Decimal, usage: Decimal
    ) -> None:
        """The same instant can fall under different versions for numbers in different zones."""
        price = rate_call(answered_call("2027-01-01T03:00:00Z", "2027-01-01T03:01:00Z", number), RATES_CHANGING_2027)
        assert (price.setup_eur, price.usage_eur) == (setup, usage)

    def test_versions_are_found_by_date_whatever_order_they_were_given_in(self) -> None:
        """Configuration order does not matter."""
        table = RateTable((NEW_YEAR_RATES, TrafficRates(date(2020, 1, 1))))
        assert [table.rates_on(date(2026, 12, 31)).valid_from, table.rates_on(date(2027, 1, 1)).valid_from] == [
            date(2020, 1, 1),
            date(2027, 1, 1),
        ]

    def test_no_version_before_the_first_one(self) -> None:
        """Asking for a day before the tariff starts says when it starts."""
        with pytest.raises(InvalidTariff, match="earliest version is valid from 2020-01-01"):
            RATES.rates_on(date(2019, 12, 31))

    def test_call_answered_before_the_tariff_starts_is_rejected(self) -> None:
        """Such a call cannot be priced; the error names answer."""
        with pytest.raises(InvalidCall, match=r"^call c1: answer: expected on or after 2020-01-01"):
            rate_call(answered_call("2019-12-31T10:00:00+01:00", "2019-12-31T10:01:00+01:00"), RATES)


class TestTrafficRates:
    def test_default_rates_are_the_published_ones(self) -> None:
        """EUR 0.04 set-up, 0.07/min peak, 0.05/min off-peak."""
        rates = TrafficRates(date(2020, 1, 1))
        assert (rates.setup_eur, rates.peak_eur_per_min, rates.offpeak_eur_per_min) == (
            Decimal("0.04"),
            Decimal("0.07"),
            Decimal("0.05"),
        )

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            pytest.param({"peak_eur_per_min": 0.07}, "peak_eur_per_min .* expected a non-negative Decimal", id="float"),
            pytest.param({"setup_eur": Decimal("-0.01")}, "setup_eur .* expected a non-negative Decimal", id="negative"),
            pytest.param({"offpeak_eur_per_min": Decimal("NaN")}, "offpeak_eur_per_min .* expected a non-negative Decimal", id="not-a-number"),
            pytest.param({"valid_from": datetime(2020, 1, 1)}, "valid_from: expected a date", id="datetime-for-a-date"),
        ],
    )
    def test_unusable_rates_are_rejected_naming_the_field(self, fields: dict[str, Any], message: str) -> None:
        """A tariff mistake is caught when the tariff is loaded, not when a call is billed."""
        with pytest.raises(InvalidTariff, match=message):
            TrafficRates(**{"valid_from": date(2020, 1, 1), **fields})

    @pytest.mark.parametrize(
        ("versions", "message"),
        [
            pytest.param((), "at least one version", id="empty"),
            pytest.param((TrafficRates(date(2020, 1, 1)), TrafficRates(date(2020, 1, 1))), "two versions valid from 2020-01-01", id="same-date-twice"),
        ],
    )
    def test_unusable_tables_are_rejected(self, versions: tuple[TrafficRates, ...], message: str) -> None:
        """A table needs versions, and one per date so a day has one price."""
        with pytest.raises(InvalidTariff, match=message):
            RateTable(versions)


class TestFairUseEligibility:
    @pytest.mark.parametrize(
        ("number", "number_type", "eligible"),
        [
            pytest.param(AMSTERDAM, NumberType.LOCAL, True, id="local"),
            pytest.param("+31851234567", NumberType.NATIONAL, True, id="national"),
            pytest.param(BERLIN, NumberType.INTERNATIONAL, False, id="international"),
            pytest.param("+318001234567", NumberType.TOLLFREE, False, id="tollfree-0800"),
            pytest.param("+319001234567", NumberType.PREMIUM, False, id="premium-0900"),
        ],
    )
    def test_only_local_and_national_calls_can_be_free_under_fair_use(
        self, number: str, number_type: NumberType, eligible: bool
    ) -> None:
        """Every type is priced the same way; only eligibility differs."""
        call = answered_call("2026-11-24T09:00:00+01:00", "2026-11-24T09:01:00+01:00", number, number_type)
        price = rate_call(call, RATES)
        assert (price.fair_use_eligible, price.list_price_eur) == (eligible, Decimal("0.1100"))


VALID_CALL: dict[str, Any] = {
    "call_id": "c9",
    "number": AMSTERDAM,
    "number_type": NumberType.LOCAL,
    "start": at("2026-11-24T10:00:00+01:00"),
    "answer": at("2026-11-24T10:00:05+01:00"),
    "end": at("2026-11-24T10:01:00+01:00"),
}


class TestCallValidation:
    """A call that cannot be priced is refused with its id, the field and what was expected."""

    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            pytest.param({"start": datetime(2026, 11, 24, 10)}, "start: expected a timezone-aware datetime", id="naive-start"),
            pytest.param({"answer": datetime(2026, 11, 24, 10, 0, 5)}, "answer: expected a timezone-aware datetime", id="naive-answer"),
            pytest.param({"end": datetime(2026, 11, 24, 10, 1)}, "end: expected a timezone-aware datetime", id="naive-end"),
            pytest.param({"answer": at("2026-11-24T09:59:59+01:00")}, "answer: expected at or after start", id="answer-before-start"),
            pytest.param({"end": at("2026-11-24T10:00:04+01:00")}, "end: expected at or after answer", id="end-before-answer"),
            pytest.param({"answer": None, "end": at("2026-11-24T09:59:00+01:00")}, "end: expected at or after start", id="unanswered-end-before-start"),
            pytest.param({"number": "hello"}, "number: expected an E.164 number", id="not-a-number"),
            pytest.param({"number": "+31 20 123 4567"}, "number: expected E.164", id="spaces"),
            pytest.param({"number": "0201234567"}, "number: expected an E.164 number", id="national-format"),
            pytest.param({"number": 31201234567}, "number: expected an E.164 string", id="not-a-string"),
            pytest.param({"number": "+3120123456"}, "number: +3120123456 is not a valid number", id="too-short"),
            pytest.param({"number": "+80012345678"}, "number: +80012345678 has no known time zone", id="no-time-zone"),
            pytest.param({"number_type": "mobile"}, "number_type: expected one of local, national", id="unknown-number-type"),
            pytest.param({"call_id": ""}, "call_id: expected a non-empty string", id="empty-call-id"),
        ],
    )
    def test_bad_call_is_rejected_naming_the_field(self, changes: dict[str, Any], reason: str) -> None:
        """The reason starts with the field, so the person fixing the data knows where to look."""
        with pytest.raises(InvalidCall) as rejected:
            CallTimes(**(VALID_CALL | changes))
        assert rejected.value.reason.startswith(reason)
        assert rejected.value.call_id == (VALID_CALL | changes)["call_id"]

    def test_rejection_is_a_value_error_too(self) -> None:
        """Callers that only know the standard library can still catch it."""
        with pytest.raises(ValueError, match="start: expected a timezone-aware datetime"):
            CallTimes(**(VALID_CALL | {"start": datetime(2026, 11, 24, 10)}))


# --- properties ----------------------------------------------------------------------

# Instants near clock changes and peak boundaries, where mistakes would hide.
ANCHORS = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Amsterdam and Berlin: 02:00 becomes 03:00
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Amsterdam and Berlin: 03:00 becomes 02:00
    datetime(2026, 3, 8, 7, tzinfo=UTC),  # New York: spring
    datetime(2026, 11, 1, 6, tzinfo=UTC),  # New York: autumn
    datetime(2026, 4, 4, 16, tzinfo=UTC),  # Sydney: end of summer time
    datetime(2026, 10, 3, 16, tzinfo=UTC),  # Sydney: start of summer time
    datetime(2026, 4, 23, 22, tzinfo=UTC),  # Cairo: midnight becomes 01:00
    datetime(2026, 3, 27, 0, tzinfo=UTC),  # Jerusalem: Friday 02:00 becomes 03:00
    datetime(2026, 11, 23, 18, tzinfo=UTC),  # Amsterdam 19:00
    datetime(2026, 11, 24, 7, tzinfo=UTC),  # Amsterdam 08:00
    datetime(2026, 4, 26, 22, tzinfo=UTC),  # Amsterdam: King's Day begins
    datetime(2026, 11, 26, 5, tzinfo=UTC),  # New York: Thanksgiving begins
]
THREE_HOURS_US = 3 * 3600 * 10**6

numbers = st.sampled_from([AMSTERDAM, BERLIN, NEW_YORK, SYDNEY, CAIRO, JERUSALEM])
instants = st.one_of(
    st.builds(
        lambda anchor, us: anchor + timedelta(microseconds=us),
        st.sampled_from(ANCHORS),
        st.integers(-THREE_HOURS_US, THREE_HOURS_US),
    ),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
)


def durations(max_hours: int) -> st.SearchStrategy[timedelta]:
    return st.integers(0, max_hours * 3600 * 10**6).map(lambda us: timedelta(microseconds=us))


def rate(number: str, answer: datetime, duration: timedelta, rates: RateTable = RATES) -> RatedPrice:
    return rate_call(CallTimes("p", number, NumberType.LOCAL, answer, answer, answer + duration), rates)


@functools.cache
def local_calendar(number: str) -> tuple[ZoneInfo, holidays.HolidayBase]:
    """The number's zone and holidays, looked up the documented way, independently of rating.core.tariff."""
    parsed = phonenumbers.parse(number)
    zone = ZoneInfo(sorted(phone_time_zones.time_zones_for_number(parsed))[0])
    return zone, holidays.country_holidays(str(phonenumbers.region_code_for_number(parsed)))


def peak_seconds_one_by_one(number: str, answer: datetime, seconds: int) -> int:
    """The slow, obviously right way: look at the local clock at the start of every second."""
    zone, days_off = local_calendar(number)
    peak = 0
    for k in range(seconds):
        local = (answer + timedelta(seconds=k)).astimezone(zone)
        peak += local.weekday() < 5 and 8 <= local.hour < 19 and local.date() not in days_off
    return peak


# Per-second prices of whole ten-thousandths (0.06/min = 0.001/s): no call's usage is ever
# rounded, so usage must add up exactly when a call is cut into pieces.
ROUNDING_FREE_RATES = RateTable(
    (
        TrafficRates(date(2020, 1, 1), peak_eur_per_min=Decimal("0.06"), offpeak_eur_per_min=Decimal("0.03")),
        TrafficRates(date(2026, 7, 1), peak_eur_per_min=Decimal("0.12"), offpeak_eur_per_min=Decimal("0.06")),
    )
)


class TestRatingProperties:
    @given(numbers, instants, durations(72))
    def test_every_billable_second_is_either_peak_or_off_peak(
        self, number: str, answer: datetime, duration: timedelta
    ) -> None:
        """Billable seconds are the started seconds of the call, each counted once."""
        price = rate(number, answer, duration)
        started = math.ceil(duration / timedelta(seconds=1))
        assert price.billable_seconds == started == price.peak_seconds + price.offpeak_seconds

    @settings(deadline=None)
    @given(numbers, instants, durations(6))
    def test_peak_seconds_match_looking_at_every_second(
        self, number: str, answer: datetime, duration: timedelta
    ) -> None:
        """Splitting at boundaries gives what checking each second's local time would give."""
        price = rate(number, answer, duration)
        assert price.peak_seconds == peak_seconds_one_by_one(number, answer, price.billable_seconds)

    @given(numbers, instants, durations(72).filter(lambda d: d > timedelta(seconds=1)), st.data())
    def test_a_call_costs_what_its_pieces_cost(
        self, number: str, answer: datetime, duration: timedelta, data: st.DataObject
    ) -> None:
        """Cut at whole seconds after answer, the pieces' seconds and usage add up to the whole call's.

        Cutting at whole seconds keeps each second starting where it did, so this holds
        for peak and off-peak seconds with any rates, and for money with rates that need
        no rounding (with others each piece would be rounded on its own).
        """
        whole = rate(number, answer, duration, ROUNDING_FREE_RATES)
        cuts = data.draw(st.lists(st.integers(1, whole.billable_seconds - 1), min_size=1, max_size=5, unique=True))
        offsets = [answer + timedelta(seconds=s) for s in sorted(cuts)]
        edges = [answer, *offsets, answer + duration]
        pieces = [rate(number, begin, end - begin, ROUNDING_FREE_RATES) for begin, end in itertools.pairwise(edges)]
        assert sum(p.peak_seconds for p in pieces) == whole.peak_seconds
        assert sum(p.offpeak_seconds for p in pieces) == whole.offpeak_seconds
        assert sum(p.usage_eur for p in pieces) == whole.usage_eur


class TestRatingCoreIsPure:
    def test_importing_the_rating_core_loads_no_io_library(self) -> None:
        """The core can run anywhere: no event loop, no database or HTTP client comes with it."""
        code = (
            "import sys, rating.core.tariff, rating.core.fair_use, rating.commands.rate_cli; "
            "print(' '.join(m for m in ('asyncio', 'asyncpg', 'aiohttp') if m in sys.modules))"
        )
        repo = pathlib.Path(__file__).resolve().parents[2]
        result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == ""


class TestHolidayCalendars:
    def test_the_countries_with_a_calendar_are_those_the_holidays_package_lists(self) -> None:
        """The registry fairline reads (cheaply) names the same countries as the package's public list,
        so an upgrade of holidays that changes its internals fails here, not in a rated call."""
        import holidays

        from rating.core import tariff

        assert tariff._HOLIDAY_CALENDARS == frozenset(holidays.list_supported_countries())
