"""Fair use: monthly allowances, who is above them, and who pays for eligible calls."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from rating.errors import InvalidMonth, InvalidUsage
from rating.core.fair_use import (
    FairUseResult,
    FairUseStatus,
    Month,
    MonthlyUsage,
    allowance,
    assess,
)
from rating.core.charge import charged_amount
from rating.core.tariff import RatedPrice

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOVEMBER = Month(2026, 11)
QUIET_CUSTOMERS = 9


def row(customer_id: str, month: Month, eligible: int, handled: int | None = None) -> MonthlyUsage:
    """A month's usage where, unless said otherwise, all handled calls were on eligible numbers."""
    return MonthlyUsage(customer_id, month, eligible if handled is None else handled, eligible)


def platform_month(month: Month, heavy_calls: int) -> list[MonthlyUsage]:
    """A month where "heavy" makes heavy_calls and nine customers none.

    The average, heavy_calls / 10, stays under the 20-a-week floor for the counts used
    here, so the allowance is the floor (80-88.6 calls) and 200 calls is above it.
    """
    return [row("heavy", month, heavy_calls)] + [row(f"quiet-{i}", month, 0) for i in range(QUIET_CUSTOMERS)]


def result_for(customer_id: str, results: tuple[FairUseResult, ...]) -> FairUseResult:
    return next(r for r in results if r.customer_id == customer_id)


class TestMonth:
    def test_parses_year_dash_month(self) -> None:
        """ "2026-11" is November 2026 and prints back the same."""
        month = Month.parse("2026-11")
        assert (month, str(month)) == (NOVEMBER, "2026-11")

    @pytest.mark.parametrize(
        "text",
        [
            *("2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "2026-11-01", " 2026-11", "November 2026"),
            "\uff12\uff10\uff12\uff16-11",  # full-width digits, which \\d and int() would accept
        ],
    )
    def test_anything_but_an_existing_yyyy_mm_is_rejected(self, text: str) -> None:
        """The error shows the expected form and what was given."""
        expected = r"expected a month as YYYY-MM|expected a year 0001-9999 and a month 01-12"
        with pytest.raises(InvalidMonth, match=expected) as rejected:
            Month.parse(text)
        assert repr(text) in str(rejected.value)

    def test_a_month_that_does_not_exist_cannot_be_made(self) -> None:
        """Month(2026, 13) is refused like "2026-13"."""
        with pytest.raises(InvalidMonth, match="month 01-12; got '2026-13'"):
            Month(2026, 13)

    @pytest.mark.parametrize(
        ("text", "days"),
        [("2026-02", 28), ("2028-02", 29), ("2100-02", 28), ("2026-04", 30), ("2026-11", 30), ("2026-12", 31)],
    )
    def test_days_in_the_month(self, text: str, days: int) -> None:
        """Leap years included."""
        assert Month.parse(text).days == days

    def test_previous_of_january_is_december_of_the_year_before(self) -> None:
        assert Month(2026, 1).previous() == Month(2025, 12)

    def test_window_is_the_months_ending_with_this_one_oldest_first(self) -> None:
        """Six months ending in March 2026 start in October 2025."""
        window = [str(m) for m in Month(2026, 3).window(6)]
        assert window == ["2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]

    @pytest.mark.parametrize(
        ("month", "start", "end"),
        [
            pytest.param(NOVEMBER, "2026-10-31T23:00:00+00:00", "2026-11-30T23:00:00+00:00", id="winter-time"),
            pytest.param(Month(2026, 3), "2026-02-28T23:00:00+00:00", "2026-03-31T22:00:00+00:00", id="clocks-change-inside"),
            pytest.param(Month(2026, 12), "2026-11-30T23:00:00+00:00", "2026-12-31T23:00:00+00:00", id="december"),
        ],
    )
    def test_month_runs_from_local_midnight_of_the_first_to_local_midnight_of_the_next(
        self, month: Month, start: str, end: str
    ) -> None:
        """start and end are UTC instants; a call belongs to the month when start <= t < end."""
        assert month.start(AMSTERDAM) == datetime.fromisoformat(start)
        assert month.end(AMSTERDAM) == datetime.fromisoformat(end)
        assert month.start(AMSTERDAM).tzinfo is UTC

    def test_months_sort_by_time(self) -> None:
        months = [Month(2027, 1), Month(2026, 12), Month(2026, 2)]
        assert sorted(months) == [Month(2026, 2), Month(2026, 12), Month(2027, 1)]


class TestAllowance:
    """A customer may make the platform average of calls, but never fewer than 20 a week."""

    @pytest.mark.parametrize(
        ("month", "floor", "shown"),
        [
            pytest.param(Month(2026, 2), Decimal(80), "80", id="28-days"),
            pytest.param(Month(2028, 2), Decimal(580) / 7, "82.857142", id="29-days"),
            pytest.param(NOVEMBER, Decimal(600) / 7, "85.714285", id="30-days"),
            pytest.param(Month(2026, 12), Decimal(620) / 7, "88.571428", id="31-days"),
        ],
    )
    def test_quiet_platform_gets_twenty_calls_a_week(self, month: Month, floor: Decimal, shown: str) -> None:
        """20 x days / 7, unrounded."""
        assert allowance(month, handled_calls=100, customers=10) == floor
        assert str(floor).startswith(shown)

    def test_busy_platform_gets_its_average(self) -> None:
        """2000 calls over 10 customers allow 200 each."""
        assert allowance(NOVEMBER, handled_calls=2000, customers=10) == Decimal(200)

    def test_platform_without_customers_gets_the_floor(self) -> None:
        assert allowance(NOVEMBER, handled_calls=0, customers=0) == Decimal(600) / 7


class TestAssess:
    def test_result_carries_calls_allowance_and_history(self) -> None:
        """Everything the account manager needs is in one result."""
        results = assess(NOVEMBER, platform_month(NOVEMBER, 200))
        assert result_for("heavy", results) == FairUseResult(
            customer_id="heavy",
            month=NOVEMBER,
            calls=200,
            allowance=Decimal(600) / 7,
            above=True,
            months_above_of_last_6=1,
            status=FairUseStatus.ABOVE,
        )

    @pytest.mark.parametrize(
        ("above_in_last_6", "status", "months_above"),
        [
            pytest.param("......", FairUseStatus.OK, 0, id="never"),
            pytest.param(".....X", FairUseStatus.ABOVE, 1, id="this-month-only"),
            pytest.param("....XX", FairUseStatus.ABOVE, 2, id="two-months"),
            pytest.param("...XXX", FairUseStatus.CONTACT, 3, id="three-months"),
            pytest.param("X.X..X", FairUseStatus.CONTACT, 3, id="three-months-not-in-a-row"),
            pytest.param("XXXXXX", FairUseStatus.CONTACT, 6, id="every-month"),
            pytest.param("XXXXX.", FairUseStatus.OK, 5, id="not-this-month"),
        ],
    )
    def test_status_follows_months_above_in_the_last_six(
        self, above_in_last_6: str, status: FairUseStatus, months_above: int
    ) -> None:
        """ok unless above this month; above; contact when above in 3 or more of the 6 months ending now."""
        usage = [
            r
            for month, mark in zip(NOVEMBER.window(6), above_in_last_6, strict=True)
            for r in platform_month(month, 200 if mark == "X" else 10)
        ]
        heavy = result_for("heavy", assess(NOVEMBER, usage))
        assert (heavy.status, heavy.months_above_of_last_6) == (status, months_above)

    def test_months_before_the_six_month_window_do_not_count(self) -> None:
        """Above seven months ago, two months ago and now: twice in the window, so only above."""
        usage = [
            *platform_month(Month(2026, 4), 200),
            *platform_month(Month(2026, 9), 200),
            *platform_month(NOVEMBER, 200),
        ]
        heavy = result_for("heavy", assess(NOVEMBER, usage))
        assert (heavy.status, heavy.months_above_of_last_6) == (FairUseStatus.ABOVE, 2)

    def test_each_month_is_judged_against_its_own_allowance(self) -> None:
        """200 calls in a month when everyone made 300 was not above; it does not count towards contact."""
        october = Month(2026, 10)
        busy_october = [row("heavy", october, 200)] + [row(f"quiet-{i}", october, 300) for i in range(9)]
        usage = [*platform_month(Month(2026, 9), 200), *busy_october, *platform_month(NOVEMBER, 200)]
        heavy = result_for("heavy", assess(NOVEMBER, usage))
        assert (heavy.status, heavy.months_above_of_last_6) == (FairUseStatus.ABOVE, 2)

    def test_customers_without_calls_lower_the_platform_average(self) -> None:
        """Two customers with 150 calls each: alone they are the average; with two silent customers they are above."""
        busy = [row("a", NOVEMBER, 150), row("b", NOVEMBER, 150)]
        silent = [row("c", NOVEMBER, 0), row("d", NOVEMBER, 0)]
        assert [r.above for r in assess(NOVEMBER, busy)] == [False, False]
        assert [r.above for r in assess(NOVEMBER, busy + silent)] == [True, True, False, False]

    @pytest.mark.parametrize(("calls", "above"), [(80, False), (81, True)])
    def test_reaching_the_allowance_is_not_above_it(self, calls: int, above: bool) -> None:
        """February 2026 allows 80 calls: the 80th is fine, the 81st is one too many."""
        february = Month(2026, 2)
        assert result_for("heavy", assess(february, platform_month(february, calls))).above is above

    def test_only_eligible_calls_count_against_the_allowance(self) -> None:
        """Calls on toll-free, premium and international numbers never make a customer above."""
        usage = [row("premium-line", NOVEMBER, eligible=10, handled=500), *platform_month(NOVEMBER, 0)]
        assert result_for("premium-line", assess(NOVEMBER, usage)).status is FairUseStatus.OK

    def test_all_handled_calls_make_up_the_platform_average(self) -> None:
        """The average counts every handled call, so busy premium lines raise everyone's allowance."""
        usage = [row("premium-line", NOVEMBER, eligible=0, handled=2000), row("heavy", NOVEMBER, 150)]
        heavy = result_for("heavy", assess(NOVEMBER, usage))
        assert (heavy.allowance, heavy.above) == (Decimal(1075), False)

    def test_results_cover_the_customers_active_this_month_by_id(self) -> None:
        """A customer seen only in earlier months gets no result; the order is stable."""
        usage = [row("gone", Month(2026, 10), 500), row("zed", NOVEMBER, 1), row("amy", NOVEMBER, 2)]
        assert [r.customer_id for r in assess(NOVEMBER, usage)] == ["amy", "zed"]

    def test_a_customer_twice_in_a_month_is_refused(self) -> None:
        """Counting a customer twice would skew the average; the caller's data is wrong."""
        with pytest.raises(InvalidUsage, match="customer amy appears twice in 2026-11"):
            assess(NOVEMBER, [row("amy", NOVEMBER, 1), row("amy", NOVEMBER, 2)])

    @pytest.mark.parametrize(("eligible", "handled"), [(5, 4), (-1, 0), (0, -1)])
    def test_impossible_counts_are_refused(self, eligible: int, handled: int) -> None:
        """Eligible calls are some of the handled calls, never more, never negative."""
        with pytest.raises(InvalidUsage, match="expected 0 <= eligible_handled_calls <= handled_calls"):
            MonthlyUsage("amy", NOVEMBER, handled, eligible)


class TestChargedAmount:
    @pytest.mark.parametrize(
        ("eligible", "heavy_user", "charged"),
        [
            pytest.param(True, False, Decimal("0.0000"), id="eligible-call-is-free"),
            pytest.param(True, True, Decimal("0.1217"), id="heavy-user-pays-eligible-call"),
            pytest.param(False, False, Decimal("0.1217"), id="non-eligible-call-is-always-paid"),
            pytest.param(False, True, Decimal("0.1217"), id="heavy-user-pays-non-eligible-call"),
        ],
    )
    def test_eligible_calls_are_free_unless_the_customer_is_a_heavy_user(
        self, eligible: bool, heavy_user: bool, charged: Decimal
    ) -> None:
        """A heavy user pays list price for every call of the month; others only for non-eligible calls."""
        price = RatedPrice(90, 20, 70, Decimal("0.0400"), Decimal("0.0817"), Decimal("0.1217"), eligible)
        assert charged_amount(price, heavy_user) == charged
