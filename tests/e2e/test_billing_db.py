"""Billing commands against the e2e stack's real PostgreSQL: import, fair use, heavy users, service charges, invoices.

Each command runs as `fairline` runs it: argv through the parser that
rating.commands.billing_cli.register builds, then the command's function, which connects,
applies the migrations and works. Prices used throughout, at the published rates
(EUR 0.04 set-up, 0.07/min peak, 0.05/min off-peak):
  off-peak call of 60 s: 0.04 + 0.05 = 0.0900
  peak call of 60 s:     0.04 + 0.07 = 0.1100
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from rating.commands import billing_cli
from rating.storage import billing
from rating.core.fair_use import Month
from rating.storage.database import insert_cdrs
from rating.core.tariff import DEFAULT_RATES, RateTable, TrafficRates
from tests.e2e.conftest import LiveStack, StackDb

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

ACME_LOCAL = "+31201234567"
ACME_TOLLFREE = "+318001234567"
BAKERY_NATIONAL = "+3215123456"
BAKERY_TOLLFREE = "+3280012345"
COOP_LOCAL = "+31301234567"
DORMANT_LOCAL = "+31201234568"
OFFPEAK_CALL_EUR = "0.0900"
PEAK_CALL_EUR = "0.1100"


Db = StackDb  # the stack's database and a way to run billing commands on it


@pytest.fixture
def db(live_stack: LiveStack, capsys: pytest.CaptureFixture[str]) -> Iterator[Db]:
    """Empty billing tables, customers acme, bakery, coop (from Nov 15) and dormant (until Oct 31) with numbers."""
    d = Db(live_stack, capsys)
    d.fairline("invoice", "--month", "2000-01")  # applies the migrations, whatever ran before
    d.sql("TRUNCATE customers, numbers, heavy_user_decisions, service_charges, fair_use_results, cdrs CASCADE")
    d.sql(f"""
        INSERT INTO customers (customer_id, name) VALUES
            ('acme', 'Acme'), ('bakery', 'Bakery'), ('coop', 'Coop'), ('dormant', 'Dormant');
        INSERT INTO numbers (e164, customer_id, number_type, active_from, active_until) VALUES
            ('{ACME_LOCAL}', 'acme', 'local', '2026-01-01', NULL),
            ('{ACME_TOLLFREE}', 'acme', 'tollfree', '2026-01-01', NULL),
            ('{BAKERY_NATIONAL}', 'bakery', 'national', '2026-01-01', NULL),
            ('{BAKERY_TOLLFREE}', 'bakery', 'tollfree', '2026-01-01', NULL),
            ('{COOP_LOCAL}', 'coop', 'local', '2026-11-15', NULL),
            ('{DORMANT_LOCAL}', 'dormant', 'local', '2026-01-01', '2026-10-31');
    """)
    yield d


def call(call_id: str, customer_id: str, number: str, number_type: str, start: datetime, *,
         answered: bool = True, seconds: int = 60) -> dict[str, Any]:
    """An import line: answered 10 s after start, then talking for seconds."""
    answer = start + timedelta(seconds=10)
    return {
        "call_id": call_id, "customer_id": customer_id, "number": number, "number_type": number_type,
        "start": start.isoformat(), "answer": answer.isoformat() if answered else None,
        "end": (answer + timedelta(seconds=seconds)).isoformat(),
    }


def offpeak_calls(prefix: str, customer_id: str, number: str, number_type: str, year: int, month: int,
                  count: int) -> list[dict[str, Any]]:
    """count calls of 60 s at 20:00-20:10 UTC, spread over days 1-28: 21:00 or 22:00 in NL/BE, off-peak."""
    return [
        call(f"{prefix}-{year}-{month:02d}-{i}", customer_id, number, number_type,
             datetime(year, month, 1 + i % 28, 20, i // 28, tzinfo=UTC))
        for i in range(count)
    ]


def import_lines(db: Db, tmp_path: Path, lines: list[str]) -> tuple[int, str, str]:
    path = tmp_path / "cdrs.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    return db.fairline("cdr", "import", str(path))


def import_calls(db: Db, tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    status, out, err = import_lines(db, tmp_path, [json.dumps(c) for c in calls])
    assert (status, err) == (0, ""), out
    assert out == f"{len(calls)} new, 0 already there, 0 rejected\n"


class TestImport:
    def test_import_stores_good_lines_rejects_bad_ones_with_line_numbers_and_a_reimport_doubles_nothing(
        self, db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(billing, "IMPORT_BATCH", 2)  # several batches, as a large file would be
        start = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # Tuesday 10:00 in Amsterdam: peak
        good = call("c1", "acme", ACME_LOCAL, "local", start)
        lines = [
            json.dumps(good),
            json.dumps(call("c2", "acme", ACME_LOCAL, "local", start, answered=False)),
            '{"call_id": "c3", broken',
            json.dumps(good),
            json.dumps(call("c4", "acme", ACME_LOCAL, "local", start) | {"end": "2026-11-10T08:59:00Z"}),
            json.dumps(call("c5", "acme", ACME_LOCAL, "mobile", start)),
            json.dumps({k: v for k, v in call("c6", "acme", ACME_LOCAL, "local", start).items() if k != "customer_id"}),
            json.dumps(call("c7", "nobody", ACME_LOCAL, "local", start)),
            "",
            json.dumps(call("c8", "bakery", BAKERY_TOLLFREE, "tollfree", start) | {"caller": "+32470123456"}),
            json.dumps(call("c9", "acme", ACME_LOCAL, "local", start) | {"answer": "2026-11-10T08:59:00Z"}),
        ]

        status, out, err = import_lines(db, tmp_path, lines)

        assert (status, err) == (1, "")
        report = out.splitlines()
        assert report[-1] == "3 new, 0 already there, 7 rejected"
        assert report[0].startswith("line 3: rejected: expected a JSON object, got invalid JSON")
        assert report[1:-1] == [
            "line 4, call c1: rejected: call_id: duplicate of line 1",
            "line 5, call c4: rejected: end: expected at or after answer 2026-11-10T09:00:10+00:00, "
            "got 2026-11-10T08:59:00+00:00",
            "line 6, call c5: rejected: number_type: expected one of local, national, international, tollfree, "
            'premium, got "mobile"',
            "line 7, call c6: rejected: customer_id: missing",
            "line 8, call c7: rejected: customer_id: unknown customer 'nobody', not in the customers table",
            "line 11, call c9: rejected: answer: expected at or after start 2026-11-10T09:00:00+00:00, "
            "got 2026-11-10T08:59:00+00:00",
        ]
        stored = db.rows("SELECT call_id, customer_id, did, caller, disposition, source, number_type, "
                         "billable_seconds, list_price_eur::text, charged_eur::text, billing_month::text "
                         "FROM cdrs ORDER BY call_id")
        assert stored == [
            {"call_id": "c1", "customer_id": "acme", "did": ACME_LOCAL, "caller": None, "disposition": "answered",
             "source": "import", "number_type": "local", "billable_seconds": 60, "list_price_eur": PEAK_CALL_EUR,
             "charged_eur": "0.0000", "billing_month": "2026-11-01"},
            {"call_id": "c2", "customer_id": "acme", "did": ACME_LOCAL, "caller": None, "disposition": "abandoned",
             "source": "import", "number_type": "local", "billable_seconds": 0, "list_price_eur": "0.0000",
             "charged_eur": "0.0000", "billing_month": "2026-11-01"},
            {"call_id": "c8", "customer_id": "bakery", "did": BAKERY_TOLLFREE, "caller": "+32470123456",
             "disposition": "answered", "source": "import", "number_type": "tollfree", "billable_seconds": 60,
             "list_price_eur": PEAK_CALL_EUR, "charged_eur": PEAK_CALL_EUR, "billing_month": "2026-11-01"},
        ]

        again = import_lines(db, tmp_path, lines)
        assert again[0] == 1 and again[1].splitlines()[-1] == "0 new, 3 already there, 7 rejected"
        assert db.sql("SELECT count(*) FROM cdrs") == "3"

        good_only = import_lines(db, tmp_path, [lines[0], lines[1], lines[9]])
        assert good_only == (0, "0 new, 3 already there, 0 rejected\n", "")

    def test_calls_outside_fair_use_pay_list_price_and_unanswered_calls_nothing(self, db: Db, tmp_path: Path) -> None:
        evening = datetime(2026, 11, 4, 20, 0, tzinfo=UTC)  # 21:00 in Amsterdam, 20:00 in London: off-peak
        import_calls(db, tmp_path, [
            call("premium", "acme", "+31900123456", "premium", evening),
            call("abroad", "acme", "+442071234567", "international", evening),
            call("premium-missed", "acme", "+31900123456", "premium", evening, answered=False),
            call("local", "acme", ACME_LOCAL, "local", evening),
        ])
        assert db.rows("SELECT call_id, fair_use_eligible, list_price_eur::text, charged_eur::text FROM cdrs "
                       "ORDER BY call_id") == [
            {"call_id": "abroad", "fair_use_eligible": False, "list_price_eur": OFFPEAK_CALL_EUR,
             "charged_eur": OFFPEAK_CALL_EUR},
            {"call_id": "local", "fair_use_eligible": True, "list_price_eur": OFFPEAK_CALL_EUR,
             "charged_eur": "0.0000"},
            {"call_id": "premium", "fair_use_eligible": False, "list_price_eur": OFFPEAK_CALL_EUR,
             "charged_eur": OFFPEAK_CALL_EUR},
            {"call_id": "premium-missed", "fair_use_eligible": False, "list_price_eur": "0.0000",
             "charged_eur": "0.0000"},
        ]

    def test_import_reads_stdin_when_no_file_is_given(self, db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
        line = json.dumps(call("s1", "coop", COOP_LOCAL, "local", datetime(2026, 11, 20, 20, 0, tzinfo=UTC)))
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{line}\n".encode())))
        assert db.fairline("cdr", "import") == (0, "1 new, 0 already there, 0 rejected\n", "")

    def test_a_missing_file_is_bad_input(self, db: Db, tmp_path: Path) -> None:
        status, out, err = db.fairline("cdr", "import", str(tmp_path / "nope.jsonl"))
        assert (status, out) == (2, "")
        assert "cannot read" in err and "nope.jsonl" in err


class TestImportOfBadInput:
    """Issue 17: every bad line gets one clear line of its own, the rest is imported, and nothing is half-committed."""

    def test_the_inputs_that_crashed_it_are_each_rejected_with_their_line_and_the_rest_is_stored(
        self, db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(billing, "IMPORT_BATCH", 2)  # the century-long call came after stored batches
        start = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
        lines = [
            json.dumps(call("g1", "acme", ACME_LOCAL, "local", start)),
            json.dumps(call("g2", "acme", ACME_LOCAL, "local", start)),
            "[" * 50_000,  # RecursionError
            json.dumps(call("y9999", "acme", ACME_LOCAL, "local", start)
                       | {"start": "9999-12-31T23:59:00-05:00", "answer": None, "end": "9999-12-31T23:59:59-05:00"}),
            json.dumps(call("century", "acme", ACME_LOCAL, "local", start) | {"end": "2099-11-10T09:00:00Z"}),
            "x" * (50 << 20),
            json.dumps(call("g3", "acme", ACME_LOCAL, "local", start)),
        ]
        status, out, err = import_lines(db, tmp_path, lines)
        assert (status, err) == (1, "")
        assert out.splitlines() == [
            "line 3: rejected: expected a JSON object, got JSON nested more than 32 levels deep",
            "line 4, call y9999: rejected: start: expected from 1970-01-01 up to (not including) 2100-01-01 UTC; "
            "got '9999-12-31T23:59:00-05:00'",
            "line 5, call century: rejected: end: expected at most 7 days after start 2026-11-10T09:00:00+00:00, "
            "got 2099-11-10T09:00:00+00:00, 26663 days 00:00:00 later",
            f"line 6: rejected: the line is {50 << 20} bytes long; expected at most 65536 (a call takes some 250)",
            "3 new, 0 already there, 4 rejected",
        ]
        assert db.sql("SELECT string_agg(call_id, ' ' ORDER BY call_id) FROM cdrs") == "g1 g2 g3"

    def test_a_call_the_database_refuses_is_rejected_with_its_line_and_the_others_are_stored(
        self, db: Db, tmp_path: Path
    ) -> None:
        """A tariff of EUR 10 million a minute: an hour's price overflows numeric(12,4). Before, the whole
        import stopped with exit status 3 and no line number."""
        pricey = RateTable((TrafficRates(date(2020, 1, 1), peak_eur_per_min=Decimal(10**7),
                                         offpeak_eur_per_min=Decimal(10**7)),))
        parser = argparse.ArgumentParser(prog="fairline")
        billing_cli.register(parser.add_subparsers(dest="command", required=True), load_rates=lambda _: pricey)
        start = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
        path = tmp_path / "cdrs.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in [
            call("short", "acme", ACME_LOCAL, "local", start, seconds=1),
            call("hour", "acme", ACME_LOCAL, "local", start, seconds=3600),
            call("unanswered", "acme", ACME_LOCAL, "local", start, answered=False),
        ]))
        args = parser.parse_args(["cdr", "import", str(path), "--config", "pricey.yaml", "--database-url", db.url])
        db.capsys.readouterr()
        status = args.fn(args)
        out, err = db.capsys.readouterr()
        assert (status, err) == (1, "")
        assert out.splitlines() == [
            "line 2, call hour: rejected: the database refused the call: numeric field overflow (A field with "
            "precision 12, scale 4 must round to an absolute value less than 10^8.)",
            "2 new, 0 already there, 1 rejected",
        ]
        assert db.sql("SELECT string_agg(call_id, ' ' ORDER BY call_id) FROM cdrs") == "short unanswered"


class TestImportStoppedPartWay:
    """`fairline cdr import` as a process, fed through a pipe that stays open after the first batch of
    1,000 calls: that batch is written in the import's transaction, which never commits."""

    LINES = [json.dumps(c) for c in offpeak_calls("p", "acme", ACME_LOCAL, "local", 2026, 11, 1500)]

    def started(self, db: Db) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from ari_app.cli import main; sys.exit(main())", "cdr", "import"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
            env=os.environ | {"DATABASE_URL": db.url})
        assert proc.stdin is not None
        proc.stdin.write("".join(f"{line}\n" for line in self.LINES).encode())
        proc.stdin.flush()
        return proc

    @staticmethod
    def writing_pid(db: Db) -> int:
        """Wait until a session holds rows written into cdrs and not committed: the import's; its process id."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pid = db.sql("SELECT pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                         "WHERE c.relname = 'cdrs' AND l.mode = 'RowExclusiveLock' AND l.granted "
                         "AND l.pid <> pg_backend_pid()")
            if pid:
                return int(pid)
            time.sleep(0.05)
        raise AssertionError("the import never wrote its first batch")

    @staticmethod
    def ended(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
        """Its exit status, stdout and stderr once it ends, its input left as it is (communicate would close it)."""
        stdin, proc.stdin = proc.stdin, None
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if stdin is not None:
                stdin.close()
        return proc.returncode, out.decode(), err.decode()

    def test_ctrl_c_stores_nothing_and_exits_130_quietly_then_the_same_input_imports_whole(self, db: Db) -> None:
        proc = self.started(db)
        self.writing_pid(db)
        proc.send_signal(signal.SIGINT)
        assert self.ended(proc) == (130, "", "")
        assert db.sql("SELECT count(*) FROM cdrs") == "0"

        proc = self.started(db)
        assert proc.stdin is not None
        proc.stdin.close()
        assert self.ended(proc) == (0, "1500 new, 0 already there, 0 rejected\n", "")

    def test_a_database_failing_part_way_stores_nothing_and_exits_3(self, db: Db) -> None:
        proc = self.started(db)
        db.sql(f"SELECT pg_terminate_backend({self.writing_pid(db)})")
        assert proc.stdin is not None
        proc.stdin.close()
        status, out, err = self.ended(proc)
        assert (status, out) == (3, "")
        assert err.startswith("fairline: database postgresql://") and " failed: " in err and "Traceback" not in err
        assert db.sql("SELECT count(*) FROM cdrs") == "0"


def seed_six_months(db: Db, tmp_path: Path) -> None:
    """Calls of August to November 2026, all off-peak, 60 s, EUR 0.09 at list price.

    The 20-a-week floor is 88.5714 calls in a 31-day month and 85.7143 in a 30-day one.
    August (31 days): acme 89, above the floor (the average, 89/3, is lower).
    September (30):   acme 86, above the floor.
    October (31):     acme 88, not above: 88 calls would be above in a 30-day month.
    November (30):    acme 150 local, bakery 120 national + 10 toll-free, coop none (it
                      joined on the 15th, and counts); dormant's number ended on October 31,
                      so it does not count. Average 280 / 3 = 93.3333 > floor: the allowance.
    One unanswered November call of acme counts nowhere.
    """
    calls = (
        offpeak_calls("acme", "acme", ACME_LOCAL, "local", 2026, 8, 89)
        + offpeak_calls("acme", "acme", ACME_LOCAL, "local", 2026, 9, 86)
        + offpeak_calls("acme", "acme", ACME_LOCAL, "local", 2026, 10, 88)
        + offpeak_calls("acme", "acme", ACME_LOCAL, "local", 2026, 11, 150)
        + offpeak_calls("bakery", "bakery", BAKERY_NATIONAL, "national", 2026, 11, 120)
        + offpeak_calls("bakery-free", "bakery", BAKERY_TOLLFREE, "tollfree", 2026, 11, 10)
        + [call("acme-missed", "acme", ACME_LOCAL, "local", datetime(2026, 11, 3, 20, 0, tzinfo=UTC), answered=False)]
    )
    import_calls(db, tmp_path, calls)


class TestFairUseReport:
    def test_table_shows_contact_above_and_ok_customers_against_the_platform_average(
        self, db: Db, tmp_path: Path
    ) -> None:
        seed_six_months(db, tmp_path)

        status, out, err = db.fairline("fair-use", "report", "--month", "2026-11")

        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "Fair use 2026-11: 3 active customers, 280 answered calls, 280 handled"
        assert lines[1] == ("platform average 93.3333 handled calls, floor (20 calls a week) 85.7143, "
                            "allowance 93.3333")
        assert lines[3].split() == ["customer", "name", "answered", "handled", "eligible", "minutes", "status",
                                    "above", "heavy", "traffic", "EUR", "charged", "EUR"]
        assert [line.split() for line in lines[4:]] == [
            ["acme", "Acme", "150", "150", "150", "150.0", "contact", "3/6", "no", "13.5000", "0.0000"],
            ["bakery", "Bakery", "130", "130", "120", "130.0", "above", "1/6", "no", "11.7000", "0.9000"],
            ["coop", "Coop", "0", "0", "0", "0.0", "ok", "0/6", "no", "0.0000", "0.0000"],
        ]
        assert db.rows("SELECT customer_id, eligible_calls, platform_average::text, allowance::text, above, "
                       "months_above_of_last_6, status, heavy_user FROM fair_use_monthly "
                       "WHERE month = '2026-11-01' ORDER BY customer_id") == [
            {"customer_id": "acme", "eligible_calls": 150, "platform_average": "93.3333", "allowance": "93.3333",
             "above": True, "months_above_of_last_6": 3, "status": "contact", "heavy_user": False},
            {"customer_id": "bakery", "eligible_calls": 120, "platform_average": "93.3333", "allowance": "93.3333",
             "above": True, "months_above_of_last_6": 1, "status": "above", "heavy_user": False},
            {"customer_id": "coop", "eligible_calls": 0, "platform_average": "93.3333", "allowance": "93.3333",
             "above": False, "months_above_of_last_6": 0, "status": "ok", "heavy_user": False},
        ]

    def test_json_carries_the_same_figures_and_a_rerun_replaces_the_months_rows(
        self, db: Db, tmp_path: Path
    ) -> None:
        seed_six_months(db, tmp_path)
        db.sql("INSERT INTO fair_use_results (month, customer_id, eligible_calls, platform_average, allowance, "
               "above, months_above_of_last_6, status) VALUES ('2026-11-01', 'dormant', 1, 1, 1, false, 0, 'ok')")

        status, out, err = db.fairline("fair-use", "report", "--month", "2026-11", "--json")

        assert (status, err) == (0, "")
        report = json.loads(out)
        assert {k: v for k, v in report.items() if k != "customers"} == {
            "month": "2026-11", "active_customers": 3, "answered_calls": 280, "handled_calls": 280,
            "platform_average": "93.3333", "floor": "85.7143", "allowance": "93.3333",
        }
        acme, bakery, coop = report["customers"]
        assert acme == {
            "customer_id": "acme", "name": "Acme", "answered_calls": 150, "handled_calls": 150,
            "eligible_calls": 150,
            "billable_seconds": 9000, "minutes": "150.0", "above": True, "months_above_of_last_6": 3,
            "status": "contact", "heavy_user": False, "list_price_eur": "13.5000", "charged_eur": "0.0000",
        }
        assert (bakery["status"], bakery["answered_calls"], bakery["eligible_calls"]) == ("above", 130, 120)
        assert (coop["status"], coop["answered_calls"]) == ("ok", 0)
        # dormant had no active number in November: its stale row is gone.
        assert db.sql("SELECT string_agg(customer_id, ',' ORDER BY customer_id) FROM fair_use_results") == (
            "acme,bakery,coop"
        )

    def test_earlier_months_use_the_floor_when_the_average_is_below_it(self, db: Db, tmp_path: Path) -> None:
        seed_six_months(db, tmp_path)
        _, out, _ = db.fairline("fair-use", "report", "--month", "2026-10", "--json")
        october = json.loads(out)
        assert (october["active_customers"], october["platform_average"], october["allowance"]) == (
            3, "29.3333", "88.5714")
        assert [(c["customer_id"], c["status"], c["months_above_of_last_6"]) for c in october["customers"]] == [
            ("acme", "ok", 2), ("bakery", "ok", 0), ("dormant", "ok", 0),
        ]


def seed_acme_november(db: Db, tmp_path: Path) -> None:
    """acme in November: 3 off-peak local calls (0.09 each, eligible), 2 peak toll-free (0.11 each,
    always charged), 1 unanswered local; and 1 off-peak local call in October."""
    tuesday_10am = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam
    import_calls(db, tmp_path, [
        *offpeak_calls("local", "acme", ACME_LOCAL, "local", 2026, 11, 3),
        call("free-1", "acme", ACME_TOLLFREE, "tollfree", tuesday_10am),
        call("free-2", "acme", ACME_TOLLFREE, "tollfree", tuesday_10am + timedelta(hours=1)),
        call("missed", "acme", ACME_LOCAL, "local", tuesday_10am, answered=False),
        *offpeak_calls("october", "acme", ACME_LOCAL, "local", 2026, 10, 1),
    ])


def charges(db: Db) -> dict[str, str]:
    return {r["call_id"]: r["charged_eur"] for r in db.rows("SELECT call_id, charged_eur::text FROM cdrs")}


NOVEMBER = Month(2026, 11)


async def fetch_invoices(db: Db, month: Month) -> tuple[billing.Invoice, ...]:
    conn = await asyncpg.connect(db.url)
    try:
        return await billing.invoices(conn, month)
    finally:
        await conn.close()


def padded_in_python(month: Month, invoices: tuple[billing.Invoice, ...]) -> str:
    """The text invoice as fairline printed it from Python objects before PostgreSQL formatted it."""
    out = io.StringIO()
    for invoice in invoices:
        out.write(f"Invoice {month} for {invoice.customer_id} ({invoice.name})\n")
        rows = [
            [line.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), line.reference, line.description,
             "" if line.billable_seconds is None else str(line.billable_seconds),
             "yes" if line.fair_use_eligible else "no", f"{line.list_price_eur:.4f}", f"{line.amount_eur:.4f}"]
            for line in invoice.lines
        ]
        billing_cli._table(out, ["at (UTC)", "reference", "description", "seconds", "eligible", "list EUR",
                                 "amount EUR"], rows, right={3, 5, 6})
        out.write(f"calls {invoice.calls_eur:.4f} + service charges {invoice.service_charges_eur:.4f} "
                  f"= total {invoice.total_eur:.4f} EUR\n\n")
    grand = sum((i.total_eur for i in invoices), Decimal("0.0000"))
    out.write(f"{len(invoices)} invoices for {month}, together {grand:.4f} EUR\n")
    return out.getvalue()


class TestHeavyUser:
    def test_marking_charges_eligible_calls_at_list_price_and_unmarking_makes_them_free_again(
        self, db: Db, tmp_path: Path
    ) -> None:
        seed_acme_november(db, tmp_path)
        local = [f"local-2026-11-{i}" for i in range(3)]
        before = charges(db)
        assert [before[c] for c in local] == ["0.0000"] * 3
        assert (before["free-1"], before["free-2"], before["missed"]) == (PEAK_CALL_EUR, PEAK_CALL_EUR, "0.0000")

        status, out, err = db.fairline("heavy-user", "mark", "acme", "--month", "2026-11",
                                       "--by", "alice", "--reason", "contact in 3 of 6 months; agreed by phone")

        assert (status, err) == (0, "")
        first, totals = out.splitlines()
        assert first.startswith("acme is now a heavy user in 2026-11 (decision ")
        assert first.endswith("); 3 calls re-priced")
        assert totals == ("invoice 2026-11 for acme: 5 calls 0.4900 + service charges 0.0000 = total 0.4900 EUR")
        marked = charges(db)
        assert [marked[c] for c in local] == [OFFPEAK_CALL_EUR] * 3
        assert (marked["free-1"], marked["missed"], marked["october-2026-10-0"]) == (PEAK_CALL_EUR, "0.0000", "0.0000")
        # A call imported after the decision is priced by it too.
        import_calls(db, tmp_path, [call("late", "acme", ACME_LOCAL, "local", datetime(2026, 11, 29, 20, tzinfo=UTC))])
        assert charges(db)["late"] == OFFPEAK_CALL_EUR

        status, out, _ = db.fairline("heavy-user", "unmark", "acme", "--month", "2026-11",
                                     "--by", "bob", "--reason", "traffic back to normal")

        assert status == 0
        assert out.splitlines()[0].endswith("; 4 calls re-priced")
        assert out.splitlines()[1] == (
            "invoice 2026-11 for acme: 6 calls 0.2200 + service charges 0.0000 = total 0.2200 EUR")
        assert charges(db) == before | {"late": "0.0000"}
        assert db.rows("SELECT heavy, decided_by, reason FROM heavy_user_decisions ORDER BY id") == [
            {"heavy": True, "decided_by": "alice", "reason": "contact in 3 of 6 months; agreed by phone"},
            {"heavy": False, "decided_by": "bob", "reason": "traffic back to normal"},
        ]
        assert db.sql("SELECT heavy FROM heavy_users WHERE customer_id = 'acme' AND month = '2026-11-01'") == "f"

    async def test_a_cdr_written_while_a_decision_is_being_recorded_waits_and_gets_the_new_price(
        self, db: Db
    ) -> None:
        """Without the lock the insert would see no decision yet and store the eligible call as free."""
        line = json.dumps(call("race", "acme", ACME_LOCAL, "local", datetime(2026, 11, 4, 20, tzinfo=UTC)))
        [(_, cdr)] = billing_cli.parse_import([line.encode()], DEFAULT_RATES).cdrs
        deciding, writing = await asyncpg.connect(db.url), await asyncpg.connect(db.url)
        try:
            decision = deciding.transaction()
            await decision.start()
            await billing.decide_heavy_user(deciding, "acme", Month(2026, 11), heavy=True, decided_by="alice",
                                            reason="race")
            insert = asyncio.create_task(insert_cdrs(writing, [cdr]))
            waiting = "SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted"
            deadline = time.monotonic() + 5
            while await deciding.fetchval(waiting, writing.get_server_pid()) == 0:
                assert time.monotonic() < deadline and not insert.done(), "the insert did not wait for the decision"
                await asyncio.sleep(0.02)
            await decision.commit()
            assert await asyncio.wait_for(insert, 5) == {"race"}
        finally:
            await deciding.close()
            await writing.close()
        assert charges(db)["race"] == OFFPEAK_CALL_EUR

    def test_the_fair_use_report_shows_the_heavy_user_and_what_they_are_charged(self, db: Db, tmp_path: Path) -> None:
        seed_acme_november(db, tmp_path)
        db.fairline("heavy-user", "mark", "acme", "--month", "2026-11", "--by", "alice", "--reason", "agreed")
        _, out, _ = db.fairline("fair-use", "report", "--month", "2026-11", "--json")
        [acme] = [c for c in json.loads(out)["customers"] if c["customer_id"] == "acme"]
        assert (acme["heavy_user"], acme["list_price_eur"], acme["charged_eur"]) == (True, "0.4900", "0.4900")

    def test_an_unknown_customer_is_refused_and_nothing_is_recorded(self, db: Db) -> None:
        status, out, err = db.fairline("heavy-user", "mark", "nobody", "--month", "2026-11",
                                       "--by", "alice", "--reason", "typo")
        assert (status, out) == (2, "")
        assert err == "fairline: unknown customer 'nobody': not in the customers table\n"
        assert db.sql("SELECT count(*) FROM heavy_user_decisions") == "0"


@pytest.fixture
def staff_version(db: Db) -> Iterator[str]:
    """A stored configuration version made by staff that changed one of acme's numbers, which a fee to acme
    may name; removed after the test."""
    name = db.sql("""INSERT INTO config_versions (content_hash, applied_at, author, content, role, reason)
                     VALUES (repeat('5', 64), now(), 'carol', '# billing test', 'staff', 'opening-hours menu')
                     RETURNING version""").splitlines()[0]
    db.sql(f"""INSERT INTO config_version_changes (version_id, number, change, diff)
               SELECT id, '{ACME_LOCAL}', 'changed', '-hours: none' FROM config_versions WHERE version = '{name}'""")
    yield name
    forget_version(db, name)


def forget_version(db: Db, name: str) -> None:
    db.sql(f"""DELETE FROM service_charges WHERE config_version = '{name}';
               DELETE FROM config_version_changes WHERE version_id = (SELECT id FROM config_versions WHERE version = '{name}');
               DELETE FROM config_versions WHERE version = '{name}'""")


class TestServiceChargesAndInvoice:
    def test_a_service_charge_is_on_the_invoice_and_in_its_total(self, db: Db, tmp_path: Path,
                                                                 staff_version: str) -> None:
        seed_acme_november(db, tmp_path)

        status, out, err = db.fairline("service-charge", "add", "acme", "--month", "2026-11", "--amount", "25.50",
                                       "--reason", "new opening-hours menu", "--by", "carol",
                                       "--config-version", staff_version)

        assert (status, err) == (0, "")
        reference = out.split(":", 1)[0]
        assert out == (f"{reference}: 25.5000 EUR for acme in 2026-11\n"
                       "invoice 2026-11 for acme: 5 calls 0.2200 + service charges 25.5000 = total 25.7200 EUR\n")
        status, out, err = db.fairline("invoice", "--month", "2026-11")
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "Invoice 2026-11 for acme (Acme)"
        body = [line.split() for line in lines[2:7]]
        # Calls by start (the missed one is not on the invoice), then the service charge.
        assert [row[2] for row in body] == ["local-2026-11-0", "local-2026-11-1", "local-2026-11-2", "free-1",
                                            "free-2"]
        assert body[0][:2] + body[0][3:] == ["2026-11-01", "20:00:00", ACME_LOCAL, "from", "withheld",
                                             "60", "yes", OFFPEAK_CALL_EUR, "0.0000"]
        assert body[3][-4:] == ["60", "no", PEAK_CALL_EUR, PEAK_CALL_EUR]
        # The fee says which change it paid for, and what that change was.
        assert lines[7].split()[2:] == [reference, "new", "opening-hours", "menu", "(by", "carol,", "config",
                                        f"{staff_version}:", "opening-hours", "menu)", "no", "25.5000", "25.5000"]
        assert lines[8] == "calls 0.2200 + service charges 25.5000 = total 25.7200 EUR"
        assert lines[-1] == "1 invoices for 2026-11, together 25.7200 EUR"

        status, out, err = db.fairline("invoice", "--month", "2026-11", "--csv")

        assert (status, err) == (0, "")
        rows = list(csv.DictReader(io.StringIO(out)))
        assert len(rows) == 6
        assert rows[-1] == {
            "customer_id": "acme", "customer_name": "Acme", "month": "2026-11", "kind": "service_charge",
            "reference": reference, "at": rows[-1]["at"], "description": f"new opening-hours menu (by carol, config {staff_version}: opening-hours menu)",
            "billable_seconds": "", "fair_use_eligible": "false", "list_price_eur": "25.5000",
            "amount_eur": "25.5000",
        }
        assert (rows[0]["reference"], rows[0]["at"], rows[0]["billable_seconds"], rows[0]["amount_eur"]) == (
            "local-2026-11-0", "2026-11-01T20:00:00+00:00", "60", "0.0000")
        assert sum(Decimal(r["amount_eur"]) for r in rows) == Decimal("25.7200")

    def test_a_fee_for_a_staff_change_to_another_customers_numbers_is_refused(
        self, db: Db, tmp_path: Path, staff_version: str
    ) -> None:
        """The change named changed acme's number: bakery does not pay for it."""
        seed_acme_november(db, tmp_path)
        import_calls(db, tmp_path, offpeak_calls("bakery-free", "bakery", BAKERY_TOLLFREE, "tollfree", 2026, 11, 1))
        status, out, err = db.fairline("service-charge", "add", "bakery", "--month", "2026-11", "--amount", "25",
                                       "--reason", "menu", "--by", "carol", "--config-version", staff_version)
        assert (status, out) == (2, "")
        assert err.startswith(f"fairline: --config-version {staff_version}: it changed none of bakery's numbers")
        assert db.sql("SELECT count(*) FROM service_charges") == "0"

    def test_a_fee_for_a_version_that_staff_did_not_make_or_that_does_not_exist_is_refused(
        self, db: Db, staff_version: str
    ) -> None:
        admin = db.sql("""INSERT INTO config_versions (content_hash, applied_at, author, content)
                          VALUES (repeat('6', 64), now(), 'root', '# admin') RETURNING version""").splitlines()[0]
        try:
            for version, said in [(admin, f"{admin} was made by root as admin; only a change made by staff is charged"),
                                  ("v999999", "no such version"), ("latest", "no such version")]:
                status, out, err = db.fairline("service-charge", "add", "acme", "--month", "2026-11", "--amount", "25",
                                               "--reason", "menu", "--by", "carol", "--config-version", version)
                assert (status, out) == (2, "")
                assert err == f"fairline: --config-version {version}: {said}" + (
                    " (`fairline config history` lists them)\n" if said == "no such version" else "\n")
            assert db.sql("SELECT count(*) FROM service_charges") == "0"
        finally:
            forget_version(db, admin)

    def test_invoice_totals_add_the_rounded_call_amounts_of_each_customer(self, db: Db, tmp_path: Path) -> None:
        seed_acme_november(db, tmp_path)
        import_calls(db, tmp_path, offpeak_calls("bakery-free", "bakery", BAKERY_TOLLFREE, "tollfree", 2026, 11, 3))
        db.fairline("service-charge", "add", "bakery", "--month", "2026-11", "--amount", "0.0001",
                    "--reason", "tiny", "--by", "carol")

        _, out, _ = db.fairline("invoice", "--month", "2026-11")

        totals = [line for line in out.splitlines() if line.startswith("calls ")]
        assert totals == [
            "calls 0.2200 + service charges 0.0000 = total 0.2200 EUR",
            "calls 0.2700 + service charges 0.0001 = total 0.2701 EUR",
        ]
        assert out.splitlines()[-1] == "2 invoices for 2026-11, together 0.4901 EUR"

    def test_the_text_invoice_is_each_customers_table_padded_to_its_widest_cells(
        self, db: Db, tmp_path: Path
    ) -> None:
        """PostgreSQL formats the text; it must be what padding the invoice lines in Python gives, byte for byte,
        also for text COPY escapes (tab, newline, backslash) and letters beyond ASCII."""
        seed_acme_november(db, tmp_path)
        odd_caller = {**call("odd", "bakery", BAKERY_TOLLFREE, "tollfree", datetime(2026, 11, 3, 20, tzinfo=UTC),
                             seconds=3599), "caller": "Zoë\\the\tbaker"}
        import_calls(db, tmp_path, [odd_caller, *offpeak_calls("bakery", "bakery", BAKERY_NATIONAL, "national",
                                                               2026, 11, 2)])
        db.sql("UPDATE customers SET name = 'Bäckerei \\ Söhne' WHERE customer_id = 'bakery'")
        for customer, amount, reason in (("bakery", "1234.5", "menu\tC:\\flows\nsecond line"),
                                         ("acme", "0.0001", "tiny")):
            db.fairline("service-charge", "add", customer, "--month", "2026-11", "--amount", amount,
                        "--reason", reason, "--by", "carol")

        status, out, err = db.fairline("invoice", "--month", "2026-11")

        assert (status, err) == (0, "")
        assert out == padded_in_python(NOVEMBER, asyncio.run(fetch_invoices(db, NOVEMBER)))
        assert "Invoice 2026-11 for bakery (Bäckerei \\ Söhne)\n" in out
        assert "menu\tC:\\flows\nsecond line (by carol)" in out

    def test_a_service_charge_for_an_unknown_customer_is_refused(self, db: Db) -> None:
        status, out, err = db.fairline("service-charge", "add", "nobody", "--month", "2026-11", "--amount", "5",
                                       "--reason", "x", "--by", "carol")
        assert (status, out) == (2, "")
        assert "unknown customer 'nobody'" in err
        assert db.sql("SELECT count(*) FROM service_charges") == "0"

    def test_a_month_without_lines_has_no_invoices(self, db: Db) -> None:
        assert db.fairline("invoice", "--month", "2026-11") == (0, "no invoice lines for 2026-11\n", "")
        assert db.fairline("invoice", "--month", "2026-11", "--csv")[1] == (
            "customer_id,customer_name,month,kind,reference,at,description,billable_seconds,fair_use_eligible,"
            "list_price_eur,amount_eur\n")


def test_an_unreachable_database_exits_3_and_never_shows_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="fairline")
    billing_cli.register(parser.add_subparsers(dest="command", required=True))
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    args = parser.parse_args(["invoice", "--month", "2026-11",
                              "--database-url", "postgresql://fairline:s3cret@127.0.0.1:1/fairline"])
    assert args.fn(args) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("fairline: database postgresql://fairline:***@127.0.0.1:1/fairline unreachable: ")
    assert "s3cret" not in err
