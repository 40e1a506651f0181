"""The months of the cdrs table (rating/core/partitions.py) and `fairline cdr partitions`' arguments and output."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.commands import partitions_cli
from rating.core.partitions import (Partition, add_months, billing_months_around, bounds, detach_refusal,
                                    month_of_name, months_to_ensure, partition_name, to_detach)


class TestMonths:
    @pytest.mark.parametrize(("month", "n", "expected"), [
        (date(2026, 11, 1), 1, date(2026, 12, 1)),
        (date(2026, 11, 1), 2, date(2027, 1, 1)),
        (date(2026, 1, 1), -1, date(2025, 12, 1)),
        (date(2026, 11, 1), 0, date(2026, 11, 1)),
        (date(2026, 11, 1), 26, date(2029, 1, 1)),
    ])
    def test_add_months_crosses_years(self, month: date, n: int, expected: date) -> None:
        assert add_months(month, n) == expected

    @given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
    def test_a_months_name_says_that_month(self, day: date) -> None:
        month = day.replace(day=1)
        assert month_of_name(partition_name(month)) == month

    @pytest.mark.parametrize("name", ["cdrs_default", "cdrs_2026_13", "cdrs_2026_1", "cdrs_unpartitioned", "cdrs"])
    def test_other_names_are_no_month(self, name: str) -> None:
        assert month_of_name(name) is None

    def test_this_month_and_the_next_ones_are_ensured(self) -> None:
        assert months_to_ensure(date(2026, 12, 7), 3) == [date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1),
                                                          date(2027, 3, 1)]
        assert months_to_ensure(date(2026, 12, 31), 0) == [date(2026, 12, 1)]

    def test_negative_months_ahead_are_refused(self) -> None:
        with pytest.raises(ValueError, match="0 or more"):
            months_to_ensure(date(2026, 12, 7), -1)


class TestBounds:
    def test_a_month_and_the_default(self) -> None:
        assert bounds("FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')") == (date(2026, 11, 1), date(2026, 12, 1))
        assert bounds("DEFAULT") is None

    def test_a_bound_fairline_never_makes_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a partition fairline makes"):
            bounds("FOR VALUES FROM (MINVALUE) TO ('2026-12-01')")


def _p(name: str, attached: bool = True) -> Partition:
    month = month_of_name(name)
    return Partition(name, month, add_months(month, 1) if month else None, attached, 0, 0)


class TestToDetach:
    def test_the_months_before_oldest_first_never_the_default_nor_detached_ones(self) -> None:
        found = [_p("cdrs_2026_11"), _p("cdrs_default"), _p("cdrs_2026_09", attached=False), _p("cdrs_2026_10"),
                 _p("cdrs_2026_08")]
        assert [p.name for p in to_detach(found, date(2026, 11, 1))] == ["cdrs_2026_08", "cdrs_2026_10"]
        assert to_detach(found, date(2026, 8, 1)) == []


class TestDetachRefusal:
    def test_up_to_this_month_exclusive_is_allowed_never_this_month_or_later(self) -> None:
        today = date(2026, 12, 7)
        assert detach_refusal(date(2026, 12, 1), today) is None
        assert detach_refusal(date(2025, 1, 1), today) is None
        assert "2026-12 or later" in (detach_refusal(date(2027, 1, 1), today) or "")

    def test_the_command_refuses_before_touching_the_database(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = TestCommand()._parse("detach", "--before", "2999-01")
        assert args.fn(args) == 2
        assert "refusing to detach" in capsys.readouterr().err


class TestBillingMonthsAround:
    """A call's billing month is that of its start on its number's clock, a day at most from UTC."""

    def test_a_window_inside_a_month(self) -> None:
        assert billing_months_around(datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)) == (
            date(2026, 11, 1), date(2026, 11, 1))

    def test_a_window_at_a_months_edges_takes_the_neighbours(self) -> None:
        assert billing_months_around(datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 11, 30, 20, tzinfo=UTC)) == (
            date(2026, 10, 1), date(2026, 12, 1))

    def test_open_ended(self) -> None:
        assert billing_months_around(datetime(2026, 11, 10, tzinfo=UTC), None) == (date(2026, 11, 1), None)

    @given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)),
           st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=90)),
           st.integers(min_value=-12 * 60, max_value=14 * 60))
    def test_every_clocks_month_of_a_start_in_the_window_is_inside(self, since: datetime, length: timedelta,
                                                                   offset_min: int) -> None:
        start = since + length / 2
        local = start.astimezone(timezone(timedelta(minutes=offset_min)))
        lowest, highest = billing_months_around(since, since + length + timedelta(seconds=1))
        assert highest is not None
        assert lowest <= local.date().replace(day=1) <= highest


class TestCommand:
    def _parse(self, *argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        cdr = parser.add_subparsers(dest="cdr_command")
        partitions_cli.register(cdr)
        return parser.parse_args(["partitions", *argv])

    def test_ensure_defaults_to_three_months_ahead(self) -> None:
        assert self._parse("ensure").months_ahead == 3
        assert self._parse("ensure", "--months-ahead", "0").months_ahead == 0

    @pytest.mark.parametrize("bad", ["-1", "x", "121", "٣"])
    def test_bad_months_ahead_is_refused(self, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            self._parse("ensure", "--months-ahead", bad)
        assert exited.value.code == 2
        assert "expected whole months from 0 to 120" in capsys.readouterr().err

    def test_detach_takes_a_month(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert self._parse("detach", "--before", "2025-01").before == date(2025, 1, 1)
        with pytest.raises(SystemExit):
            self._parse("detach", "--before", "2025-13")
        assert "2025-13" in capsys.readouterr().err

    def test_the_list_shows_months_state_rows_and_size(self) -> None:
        out = io.StringIO()
        found = [Partition("cdrs_2026_10", date(2026, 10, 1), date(2026, 11, 1), False, 1200, 5 * 1024 ** 2),
                 Partition("cdrs_2026_11", date(2026, 11, 1), date(2026, 12, 1), True, 31, 900),
                 Partition("cdrs_default", None, None, True, 0, 8192)]
        partitions_cli.write_list(out, found)
        assert out.getvalue().splitlines() == [
            "partition     month      state     rows    size",
            "cdrs_2026_10  2026-10    detached  1200  5.0 MB",
            "cdrs_2026_11  2026-11    attached    31   900 B",
            "cdrs_default  any other  attached     0  8.0 kB",
        ]
        out = io.StringIO()
        partitions_cli.write_list_json(out, found[2:])
        assert json.loads(out.getvalue()) == {"partitions": [
            {"name": "cdrs_default", "month": None, "attached": True, "rows": 0, "bytes": 8192}]}
