"""`fairline queue report` without a database: the figures, the flag rule, and how the report prints."""

from __future__ import annotations

import argparse
import io
import json
from decimal import Decimal

import pytest

from rating.commands import billing_cli
from rating.core.fair_use import Month
from rating.core.queue_policy import ADVICE
from rating.storage.queue_report import CustomerLine, QueueLine, QueueReport

NOVEMBER = Month(2026, 11)

SUPPORT = QueueLine("support", "acme", calls=20, answered=12, answered_in_time=11, overflowed=6, queue_timeout=1,
                    abandoned=1, total_wait_seconds=Decimal("700.125"), p90_wait_seconds=Decimal("60.000"))
DESK = QueueLine("desk", "acme", calls=3, answered=3, answered_in_time=3, overflowed=0, queue_timeout=0,
                 abandoned=0, total_wait_seconds=Decimal("20.000"), p90_wait_seconds=Decimal("12.000"))
ACME = CustomerLine("acme", "Acme BV", queued_calls=20, visits=23, cap_hits=7)
BAKERY = CustomerLine("bakery", "Bakery", queued_calls=3, visits=3, cap_hits=0)
REPORT = QueueReport(NOVEMBER, (DESK, SUPPORT), (ACME, BAKERY))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairline")
    billing_cli.register(p.add_subparsers(dest="command", required=True))
    return p


class TestFigures:
    def test_service_level_is_the_share_of_calls_answered_within_a_minute(self) -> None:
        assert SUPPORT.service_level_percent == Decimal(55)

    def test_average_wait_is_exact_until_printed(self) -> None:
        assert DESK.average_wait_seconds == Decimal(20) / 3

    @pytest.mark.parametrize(("cap_hits", "visits", "flagged"), [
        (5, 50, True),  # both thresholds met exactly
        (5, 51, False),  # 9.8 %: too rare to be a pattern
        (4, 10, False),  # 40 %, but only four times
        (30, 40, True),
    ])
    def test_a_customer_is_flagged_at_five_cap_hits_that_are_ten_percent_of_visits(
        self, cap_hits: int, visits: int, flagged: bool
    ) -> None:
        assert CustomerLine("acme", "Acme", visits, visits, cap_hits).flagged is flagged


class TestTable:
    def test_the_report_shows_both_tables_the_rule_and_advice_for_flagged_customers(self) -> None:
        out = io.StringIO()
        billing_cli.write_queue_report_table(out, REPORT)
        assert out.getvalue() == (
            "Queues 2026-11: 23 queued calls, 23 queue visits (a call that overflows into another queue counts "
            "in both)\n"
            "service %: calls answered within 60 s per 100 calls\n"
            "\n"
            "queue    customer  calls  answered  in 60 s  service %  overflowed  timeout  abandoned  avg wait s"
            "  p90 wait s\n"
            "desk     acme          3         3        3      100.0           0        0          0         6.7"
            "        12.0\n"
            "support  acme         20        12       11       55.0           6        1          1        35.0"
            "        60.0\n"
            "\n"
            "customer  name     queued calls  visits  cap hits  cap %  flag\n"
            "acme      Acme BV            20      23         7   30.4  FLAG\n"
            "bakery    Bakery              3       3         0    0.0\n"
            "\n"
            "cap hits: visits that reached the wait cap (overflowed or timed out)\n"
            "FLAG: 5 or more cap hits, 10 % or more of the visits\n"
            f"acme: callers hit the cap in 7 of 23 visits: {ADVICE}\n"
        )

    def test_a_month_without_queued_calls_says_so(self) -> None:
        out = io.StringIO()
        billing_cli.write_queue_report_table(out, QueueReport(NOVEMBER, (), ()))
        assert out.getvalue() == "no queued calls in 2026-11\n"


class TestJson:
    def test_waits_have_milliseconds_and_percentages_one_decimal_as_strings(self) -> None:
        out = io.StringIO()
        billing_cli.write_queue_report_json(out, REPORT)
        doc = json.loads(out.getvalue())
        assert (doc["month"], doc["service_level_seconds"], doc["flag_rule"]) == (
            "2026-11", 60, {"min_cap_hits": 5, "min_cap_percent": "10"})
        assert doc["queues"][1] == {
            "queue": "support", "customer_id": "acme", "calls": 20, "answered": 12, "answered_in_time": 11,
            "service_level_percent": "55.0", "overflowed": 6, "queue_timeout": 1, "abandoned": 1,
            "average_wait_seconds": "35.006", "p90_wait_seconds": "60.000",
        }
        assert doc["customers"] == [
            {"customer_id": "acme", "name": "Acme BV", "queued_calls": 20, "visits": 23, "cap_hits": 7,
             "cap_percent": "30.4", "flagged": True, "advice": ADVICE},
            {"customer_id": "bakery", "name": "Bakery", "queued_calls": 3, "visits": 3, "cap_hits": 0,
             "cap_percent": "0.0", "flagged": False, "advice": None},
        ]

    def test_a_month_without_queued_calls_is_a_document_with_empty_lists(self) -> None:
        out = io.StringIO()
        billing_cli.write_queue_report_json(out, QueueReport(NOVEMBER, (), ()))
        doc = json.loads(out.getvalue())
        assert (doc["queues"], doc["customers"]) == ([], [])


class TestArguments:
    def test_the_month_is_required_as_yyyy_mm(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(["queue", "report", "--month", "2026-13"])
        assert exited.value.code == 2
        assert ("argument --month: expected a year 0001-9999 and a month 01-12; got '2026-13'"
                in capsys.readouterr().err)

    def test_help_names_the_database_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(["queue", "report", "--help"])
        assert exited.value.code == 0
        assert "--database-url" in capsys.readouterr().out
