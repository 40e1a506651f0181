"""Billing commands without a database: arguments, import lines, and how reports, invoices and totals print."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from plumbing.redaction import redact
from rating.commands import billing_cli
from rating.storage import billing
from rating.storage.billing import CustomerMonth, ImportOutcome, Invoice, InvoiceLine, MonthTotals
from rating.core.fair_use import Month, MonthlyUsage
from rating.core.tariff import RateTable, TrafficRates

NOVEMBER = Month(2026, 11)
RATES = RateTable((TrafficRates(date(2020, 1, 1)),))


def parser(load_rates: billing_cli.RatesLoader | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairline")
    billing_cli.register(p.add_subparsers(dest="command", required=True), load_rates=load_rates)
    return p


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Parse argv, expecting argparse to refuse it with exit status 2; its message."""
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


class TestArguments:
    @pytest.mark.parametrize("argv", [
        ["cdr", "import", "--help"], ["fair-use", "report", "--help"], ["invoice", "--help"],
        ["heavy-user", "mark", "--help"], ["heavy-user", "unmark", "--help"], ["service-charge", "add", "--help"],
    ])
    def test_every_command_has_help(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(argv)
        assert exited.value.code == 0
        assert "--database-url" in capsys.readouterr().out

    @pytest.mark.parametrize(("text", "expected"), [
        ("2026-13", "expected a year 0001-9999 and a month 01-12; got '2026-13'"),
        ("2026-1", "expected a month as YYYY-MM, e.g. 2026-11; got '2026-1'"),
        ("november", "expected a month as YYYY-MM, e.g. 2026-11; got 'november'"),
    ])
    def test_a_bad_month_is_refused_with_the_expected_form(
        self, text: str, expected: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert f"argument --month: {expected}" in usage_error(capsys, "invoice", "--month", text)

    def test_the_month_is_parsed_into_a_month(self) -> None:
        args = parser().parse_args(["fair-use", "report", "--month", "2026-11", "--json"])
        assert (args.month, args.json) == (NOVEMBER, True)

    @pytest.mark.parametrize(("text", "expected"), [
        ("0", "expected more than 0; got '0'"),
        ("-5", "expected more than 0; got '-5'"),
        ("0.00001", "expected at most 4 decimals; got '0.00001'"),
        ("12.50000", "expected at most 4 decimals; got '12.50000'"),
        ("1e3", "expected an amount in euros like 25 or 12.50; got '1e3'"),
        ("12,50", "expected an amount in euros like 25 or 12.50; got '12,50'"),
        ("NaN", "expected an amount in euros like 25 or 12.50; got 'NaN'"),
        ("100000000", "expected at most 99999999.9999; got '100000000'"),
    ])
    def test_a_bad_amount_is_refused(self, text: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
        err = usage_error(capsys, "service-charge", "add", "acme", "--month", "2026-11", f"--amount={text}",
                          "--reason", "menu", "--by", "carol")
        assert f"argument --amount: {expected}" in err

    @pytest.mark.parametrize(("text", "amount"), [("25", Decimal("25")), ("12.5", Decimal("12.5")),
                                                  ("0.0001", Decimal("0.0001"))])
    def test_an_amount_is_an_exact_decimal(self, text: str, amount: Decimal) -> None:
        args = parser().parse_args(["service-charge", "add", "acme", "--month", "2026-11", "--amount", text,
                                    "--reason", " menu ", "--by", "carol", "--config-version", "v7"])
        assert (args.amount, args.reason, args.by, args.config_version, args.customer) == (
            amount, "menu", "carol", "v7", "acme")
        assert isinstance(args.amount, Decimal)

    def test_who_decided_is_required(self, capsys: pytest.CaptureFixture[str]) -> None:
        err = usage_error(capsys, "heavy-user", "mark", "acme", "--month", "2026-11", "--reason", "agreed")
        assert "the following arguments are required: --by" in err

    def test_a_blank_reason_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        err = usage_error(capsys, "heavy-user", "unmark", "acme", "--month", "2026-11", "--by", "x", "--reason", " ")
        assert "argument --reason: --reason: expected some text, got ' '" in err

    def test_mark_and_unmark_say_which_decision_they_record(self) -> None:
        common = ["acme", "--month", "2026-11", "--by", "alice", "--reason", "agreed"]
        assert parser().parse_args(["heavy-user", "mark", *common]).heavy is True
        assert parser().parse_args(["heavy-user", "unmark", *common]).heavy is False

    def test_import_takes_a_tariff_file_only_when_the_program_can_load_one(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert "unrecognized arguments: --config" in usage_error(capsys, "cdr", "import", "--config", "f.yaml")
        args = parser(load_rates=lambda path: RATES).parse_args(["cdr", "import", "--config", "f.yaml", "in.jsonl"])
        assert (args.config, args.file) == (Path("f.yaml"), Path("in.jsonl"))

    def test_without_a_database_url_the_command_says_how_to_give_one(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        args = parser().parse_args(["invoice", "--month", "2026-11"])
        assert args.fn(args) == 2
        assert capsys.readouterr().err == "fairline: no database given: use --database-url URL or set DATABASE_URL\n"

    def test_a_bad_tariff_file_is_bad_input(self, capsys: pytest.CaptureFixture[str]) -> None:
        def refuse(path: Path) -> RateTable:
            raise ValueError(f"{path}:3: tariff[0].setup_eur: expected a decimal")

        p = parser(load_rates=refuse)
        args = p.parse_args(["cdr", "import", "--config", "f.yaml", "--database-url", "postgresql://h/db"])
        assert args.fn(args) == 2
        assert capsys.readouterr().err == "fairline: f.yaml:3: tariff[0].setup_eur: expected a decimal\n"


class TestRedact:
    @pytest.mark.parametrize(("url", "shown"), [
        ("postgresql://fairline:s3cret@db:5432/fairline", "postgresql://fairline:***@db:5432/fairline"),
        ("postgresql://fairline@db/fairline", "postgresql://fairline@db/fairline"),
        ("postgresql://u:p%40ss@db/x?sslmode=require", "postgresql://u:***@db/x?sslmode=require"),
        ("postgresql://u@db/x?password=s3cret&sslmode=require", "postgresql://u@db/x?password=***&sslmode=require"),
        ("u:s3cret@db/x", "(a URL not of the form postgresql://user:password@host/database)"),
    ])
    def test_the_password_is_never_shown(self, url: str, shown: str) -> None:
        assert redact(url) == shown


def line(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "call_id": "c1", "customer_id": "acme", "number": "+31201234567", "number_type": "local",
        "start": "2026-11-23T18:59:30+01:00", "answer": "2026-11-23T18:59:40+01:00", "end": "2026-11-23T19:01:10+01:00",
    }
    return json.dumps({k: v for k, v in (base | fields).items() if v is not ...}).encode()


class TestImportLines:
    def test_a_good_line_is_priced_as_an_imported_cdr(self) -> None:
        parsed = billing_cli.parse_import([line(caller="+31612345678")], RATES)
        assert parsed.rejected == ()
        [(number, cdr)] = parsed.cdrs
        assert number == 1
        assert (cdr.source, cdr.customer_id, cdr.call.did, cdr.call.caller, cdr.call.disposition.value) == (
            "import", "acme", "+31201234567", "+31612345678", "answered")
        assert cdr.call.started_at == datetime(2026, 11, 23, 17, 59, 30, tzinfo=UTC)
        assert (cdr.price.list_price_eur, cdr.billing_month) == (Decimal("0.1217"), date(2026, 11, 1))

    def test_an_unanswered_call_is_abandoned_and_free(self) -> None:
        [(_, cdr)] = billing_cli.parse_import([line(answer=None)], RATES).cdrs
        assert (cdr.call.disposition.value, cdr.price.list_price_eur, cdr.price.billable_seconds) == (
            "abandoned", Decimal("0.0000"), 0)

    @pytest.mark.parametrize(("given", "call_id", "reason"), [
        (b"{not json", None, "expected a JSON object, got invalid JSON"),
        (b"\xff\xfe", None, "expected UTF-8 text"),
        (b"[1, 2]", None, "expected a JSON object, got an array"),
        (line(customer_id=...), "c1", "customer_id: missing"),
        (line(answer=...), "c1", "answer: missing (answer is null for an unanswered call)"),
        (line(call_id=""), None, 'call_id: expected a non-empty string, got ""'),
        (line(customer_id=" "), "c1", 'customer_id: expected a customer id, got " "'),
        (line(customer_id=7), "c1", "customer_id: expected a customer id, got 7"),
        (line(caller=12), "c1", "caller: expected a string or null, got 12"),
        (line(number_type="mobile"), "c1", 'number_type: expected one of local, national, international, tollfree, '
                                           'premium, got "mobile"'),
        (line(start="yesterday"), "c1", "start: expected an ISO 8601 timestamp with an offset or Z"),
        (line(start="2026-11-23T18:59:30"), "c1", "which has no offset"),
        (line(end="2026-11-23T18:00:00+01:00"), "c1", "end: expected at or after answer"),
        (line(answer="2026-11-23T18:00:00+01:00"), "c1", "answer: expected at or after start"),
        (line(number="0201234567"), "c1", "number: expected an E.164 number"),
        (line(start="1999-12-31T23:00:00+01:00", answer="1999-12-31T23:00:10+01:00", end="1999-12-31T23:01:00+01:00"),
         "c1", "answer: expected on or after 2020-01-01, when the earliest traffic rates start"),
    ])
    def test_a_bad_line_is_rejected_with_its_number_and_why(self, given: bytes, call_id: str | None,
                                                            reason: str) -> None:
        parsed = billing_cli.parse_import([line(call_id="c0"), given], RATES)
        assert [n for n, _ in parsed.cdrs] == [1]
        [rejected] = parsed.rejected
        assert (rejected.line_number, rejected.call_id) == (2, call_id)
        assert reason in rejected.reason

    def test_a_call_id_seen_earlier_in_the_file_is_a_duplicate_and_blank_lines_are_skipped(self) -> None:
        parsed = billing_cli.parse_import([line(), b"", b"  ", line(), line(call_id="c2")], RATES)
        assert [(n, cdr.call.call_id) for n, cdr in parsed.cdrs] == [(1, "c1"), (5, "c2")]
        assert parsed.rejected == (billing_cli.Rejected(4, "c1", "call_id: duplicate of line 1"),)

    def test_a_rejected_first_occurrence_does_not_make_the_next_a_duplicate(self) -> None:
        parsed = billing_cli.parse_import([line(number_type="x"), line()], RATES)
        assert [n for n, _ in parsed.cdrs] == [2]

    def test_batches_hold_at_most_n_calls_with_the_rejections_read_among_them(self) -> None:
        lines = [line(call_id="a"), b"{", line(call_id="b"), line(call_id="c"), line(call_id="a")]
        batches = list(billing_cli.parse_import_batches(lines, RATES, 2))
        assert [[n for n, _ in b.cdrs] for b in batches] == [[1, 3], [4]]
        assert [[r.line_number for r in b.rejected] for b in batches] == [[2], [5]]
        assert batches[1].rejected[0].reason == "call_id: duplicate of line 1"

    def test_an_empty_input_is_one_empty_batch(self) -> None:
        assert list(billing_cli.parse_import_batches([], RATES, 2)) == [billing_cli.ParsedImport((), ())]

    def test_reports_of_batches_add_up(self) -> None:
        first = billing_cli.ImportReport(2, 1, (billing_cli.Rejected(5, None, "x"),))
        second = billing_cli.ImportReport(1, 0, (billing_cli.Rejected(2, "c", "y"), billing_cli.Rejected(9, None, "z")))
        assert billing_cli.ImportReport.combined([first, second]) == billing_cli.ImportReport(
            3, 1, (second.rejected[0], first.rejected[0], second.rejected[1]))

    def test_the_report_lists_rejections_by_line_then_counts(self) -> None:
        parsed = billing_cli.parse_import([line(call_id="new"), line(call_id="old"), b"{", line(call_id="who")], RATES)
        outcome = ImportOutcome(new=frozenset({"new"}), already_there=frozenset({"old"}),
                                unknown_customer=frozenset({"who"}))
        report = billing_cli.import_report(parsed, outcome)
        out = io.StringIO()
        billing_cli.write_import_report(out, report)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("line 3: rejected: expected a JSON object, got invalid JSON")
        assert lines[1:] == [
            "line 4, call who: rejected: customer_id: unknown customer 'acme', not in the customers table",
            "1 new, 1 already there, 2 rejected",
        ]


def month_row(customer_id: str, answered: int, handled: int, eligible: int, seconds: int = 0, list_eur: str = "0",
              charged_eur: str = "0", heavy: bool = False) -> CustomerMonth:
    return CustomerMonth(customer_id, customer_id.title(), answered, handled, eligible, seconds, Decimal(list_eur),
                         Decimal(charged_eur), heavy)


def november_report() -> billing.FairUseReport:
    """3 customers, 280 handled calls of 300 answered: average 93.3333 over the 85.7143 floor.

    acme was above in August and September too (100 calls over floors of 88.57 and 85.71).
    The 20 answered calls nobody took (queue waits given up) are priced but not counted.
    """
    details = [
        month_row("acme", 160, 150, 150, 9000, "13.5000", "13.5000", heavy=True),
        month_row("bakery", 140, 130, 120, 7830, "11.7000", "0.9000"),
        month_row("coop", 0, 0, 0),
    ]
    earlier = [MonthlyUsage(customer_id, m, calls, calls)
               for m in (Month(2026, 8), Month(2026, 9))
               for customer_id, calls in (("acme", 100), ("bakery", 0), ("coop", 0))]
    usage = earlier + [MonthlyUsage(d.customer_id, NOVEMBER, d.handled_calls, d.eligible_calls) for d in details]
    return billing.build_report(NOVEMBER, usage, details)


class TestFairUseOutput:
    def test_the_report_holds_the_platform_figures(self) -> None:
        report = november_report()
        assert (report.active_customers, report.answered_calls, report.handled_calls) == (3, 300, 280)
        assert report.platform_average == Decimal(280) / 3
        assert report.floor == Decimal(20 * 30) / 7
        assert report.allowance == report.platform_average
        assert [(ln.result.customer_id, ln.result.status.value, ln.result.months_above_of_last_6)
                for ln in report.lines] == [("acme", "contact", 3), ("bakery", "above", 1), ("coop", "ok", 0)]

    def test_a_month_without_active_customers_has_the_floor_as_allowance(self) -> None:
        report = billing.build_report(NOVEMBER, [], [])
        assert (report.platform_average, report.allowance, report.lines) == (Decimal(0), report.floor, ())

    def test_the_table_has_a_row_per_customer_with_4_decimal_money(self) -> None:
        out = io.StringIO()
        billing_cli.write_fair_use_table(out, november_report())
        assert out.getvalue() == (
            "Fair use 2026-11: 3 active customers, 300 answered calls, 280 handled\n"
            "platform average 93.3333 handled calls, floor (20 calls a week) 85.7143, allowance 93.3333\n"
            "\n"
            "customer  name    answered  handled  eligible  minutes  status   above  heavy  traffic EUR  charged EUR\n"
            "acme      Acme         160      150       150    150.0  contact    3/6  yes        13.5000      13.5000\n"
            "bakery    Bakery       140      130       120    130.5  above      1/6  no         11.7000       0.9000\n"
            "coop      Coop           0        0         0      0.0  ok         0/6  no          0.0000       0.0000\n"
        )

    def test_an_empty_month_says_so(self) -> None:
        out = io.StringIO()
        billing_cli.write_fair_use_table(out, billing.build_report(NOVEMBER, [], []))
        assert out.getvalue().splitlines()[-1] == "no customer had an active number in 2026-11"

    def test_json_has_money_and_averages_as_strings(self) -> None:
        out = io.StringIO()
        billing_cli.write_fair_use_json(out, november_report())
        doc = json.loads(out.getvalue())
        assert {k: v for k, v in doc.items() if k != "customers"} == {
            "month": "2026-11", "active_customers": 3, "answered_calls": 300, "handled_calls": 280,
            "platform_average": "93.3333", "floor": "85.7143", "allowance": "93.3333",
        }
        assert doc["customers"][1] == {
            "customer_id": "bakery", "name": "Bakery", "answered_calls": 140, "handled_calls": 130,
            "eligible_calls": 120,
            "billable_seconds": 7830, "minutes": "130.5", "above": True, "months_above_of_last_6": 1,
            "status": "above", "heavy_user": False, "list_price_eur": "11.7000", "charged_eur": "0.9000",
        }


AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def invoice() -> Invoice:
    return Invoice("acme", "Acme BV", NOVEMBER, (
        InvoiceLine("call", "c1", AT, "+31201234567 from +31612345678", 90, True, Decimal("0.1217"),
                    Decimal("0.0000")),
        InvoiceLine("call", "c2", AT.replace(hour=10), "+318001234567 from withheld", 61, False,
                    Decimal("0.1112"), Decimal("0.1112")),
        InvoiceLine("service_charge", "SC-7", AT.replace(day=20), "new menu, \"night\" (by carol, config v7)", None,
                    False, Decimal("25.0000"), Decimal("25.0000")),
    ))


class TestInvoiceOutput:
    def test_the_total_is_the_exact_sum_of_the_line_amounts(self) -> None:
        inv = invoice()
        assert (inv.calls_eur, inv.service_charges_eur, inv.total_eur) == (
            Decimal("0.1112"), Decimal("25.0000"), Decimal("25.1112"))

    def test_csv_has_a_header_and_one_row_per_line_and_no_total_rows(self) -> None:
        out = io.StringIO()
        billing_cli.write_invoices_csv(out, NOVEMBER, [invoice()])
        rows = list(csv.reader(io.StringIO(out.getvalue())))
        assert rows[0] == ["customer_id", "customer_name", "month", "kind", "reference", "at", "description",
                           "billable_seconds", "fair_use_eligible", "list_price_eur", "amount_eur"]
        assert rows[1] == ["acme", "Acme BV", "2026-11", "call", "c1", "2026-11-02T09:00:00+00:00",
                           "+31201234567 from +31612345678", "90", "true", "0.1217", "0.0000"]
        assert rows[3] == ["acme", "Acme BV", "2026-11", "service_charge", "SC-7", "2026-11-20T09:00:00+00:00",
                           "new menu, \"night\" (by carol, config v7)", "", "false", "25.0000", "25.0000"]
        assert len(rows) == 4


class TestDecisionOutput:
    TOTALS = MonthTotals("acme", NOVEMBER, 5, Decimal("0.4900"), Decimal("25.5000"))

    def test_marking_says_how_many_calls_changed_and_the_new_total(self) -> None:
        out = io.StringIO()
        billing_cli.write_resettlement(out, billing.Resettlement(12, True, 3, self.TOTALS))
        assert out.getvalue() == (
            "acme is now a heavy user in 2026-11 (decision 12); 3 calls re-priced\n"
            "invoice 2026-11 for acme: 5 calls 0.4900 + service charges 25.5000 = total 25.9900 EUR\n"
        )

    def test_unmarking_says_so(self) -> None:
        out = io.StringIO()
        billing_cli.write_resettlement(out, billing.Resettlement(13, False, 0, self.TOTALS))
        assert out.getvalue().startswith("acme is no longer a heavy user in 2026-11 (decision 13); 0 calls re-priced\n")

    def test_a_service_charge_shows_its_reference_and_the_new_total(self) -> None:
        out = io.StringIO()
        billing_cli.write_service_charge(out, billing.ServiceCharge("SC-3", "acme", NOVEMBER, Decimal("25.5"),
                                                                    self.TOTALS))
        assert out.getvalue().splitlines() == [
            "SC-3: 25.5000 EUR for acme in 2026-11",
            "invoice 2026-11 for acme: 5 calls 0.4900 + service charges 25.5000 = total 25.9900 EUR",
        ]
