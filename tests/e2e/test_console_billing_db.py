"""The console's billing pages over HTTP against the real PostgreSQL (a scratch database per test): a customer's
invoices are `fairline invoice`'s lines and totals with the fee and the change it paid for; staff's worklist
holds exactly the `contact` customers and takes notes (audited); a heavy-user mark re-prices the month as
`fairline heavy-user mark` does (audited); service levels are `fairline queue report`'s figures with the
policy's hint; every page and action refused to whom it is not for, with nothing leaked.

November 2026, on top of tests/e2e/test_console_db.py's data (acme and bolt, fair use May to November):
  acme: 4 local calls (free under fair use), 2 toll-free calls (list price), queue support 10 answered and
        6 sent on at the cap (flagged: 6 of 16), queue sales 3 answered; a fee of 25 EUR for configuration v2
        (a staff change of acme's number) and one of 10 EUR naming no change.
  bolt: 3 toll-free calls, queue bolt-line 5 sent on, a fee; must never show on acme's pages.
  coop: in billing only, `above` in November (`contact` in October): not on the worklist.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from starlette.testclient import TestClient

from ari_app.config_versions import number_changes
from rating.commands import billing_cli
from rating.core.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit, RatedCdr, rate_record
from rating.core.fair_use import Month
from rating.core.tariff import DEFAULT_RATES, NumberType
from rating.storage.billing import add_service_charge
from rating.storage.config_store import store_version
from rating.storage.database import insert_cdrs, migrate
from tests.e2e.conftest import SCRATCH_DATABASE, LiveStack
from tests.e2e.test_console_db import (
    ACME_NUMBERS,
    BOLT_NUMBER,
    BOLT_SECRETS,
    CONFIG,
    PASSWORD,
    Console,
    Clock,
    _prepare,
    csrf_of,
    enrol,
    post_form,
)

pytestmark = pytest.mark.e2e

NOV = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
STAFF = "sam@fairline.example"
# Version 2: staff give acme's first number a second target (the change acme's fee pays for).
STAFF_CONFIG = CONFIG.replace('route: {targets: ["+31612340001"]}',
                              'route: {targets: ["+31612340001", "+31612340002"]}')
CHANGE_REASON = "Second phone for the holidays"
NOT_FOUND = (404, "Not found")


def call(call_id: str, customer: str, did: str, start: datetime, number_type: NumberType, caller: str = "+31610000001",
         *visits: tuple[str, QueueOutcome, str]) -> RatedCdr:
    """An answered call of 90 s, after the queue visits given as (queue, outcome, seconds waited)."""
    queue, at = [], start + timedelta(seconds=2)
    for name, outcome, seconds in visits:
        queue.append(QueueVisit(name, at, Decimal(seconds), outcome))
        at += timedelta(seconds=float(seconds) + 1)
    record = CallRecord(call_id, did, caller, start, at, at + timedelta(seconds=90), Disposition.ANSWERED, 16,
                        queue_visits=tuple(queue))
    return rate_record(record, customer, number_type, DEFAULT_RATES)


def november() -> list[RatedCdr]:
    acme, bolt = ACME_NUMBERS[0], BOLT_NUMBER
    t = NumberType
    cdrs = [call(f"acme-local-{i}", "acme", acme, NOV + timedelta(hours=i), t.LOCAL) for i in range(4)]
    cdrs += [call(f"acme-free-{i}", "acme", acme, NOV + timedelta(days=1, hours=i), t.TOLLFREE) for i in range(2)]
    cdrs += [call(f"acme-q-{i}", "acme", acme, NOV + timedelta(days=2, minutes=i), t.LOCAL, "+31610000002",
                  ("support", QueueOutcome.ANSWERED, str(5 * (i + 1)))) for i in range(10)]
    cdrs += [call(f"acme-cap-{i}", "acme", acme, NOV + timedelta(days=3, minutes=i), t.LOCAL, "+31610000003",
                  ("support", QueueOutcome.OVERFLOWED, "60.000")) for i in range(6)]
    cdrs += [call(f"acme-sales-{i}", "acme", acme, NOV + timedelta(days=4, minutes=i), t.LOCAL, "+31610000004",
                  ("sales", QueueOutcome.ANSWERED, "12")) for i in range(3)]
    cdrs += [call(f"bolt-call-nov-{i}", "bolt", bolt, NOV + timedelta(hours=i), t.TOLLFREE, "+31655500001",
                  ("bolt-line", QueueOutcome.OVERFLOWED, "60.000")) for i in range(5)]
    return cdrs


async def _seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany("INSERT INTO numbers (e164, customer_id, number_type, active_from) VALUES ($1, $2, "
                               "'local', '2026-01-01')", [(n, "acme") for n in ACME_NUMBERS] + [(BOLT_NUMBER, "bolt")])
        await conn.execute("INSERT INTO customers (customer_id, name) VALUES ('coop', 'Coop')")
        await conn.executemany(
            """INSERT INTO fair_use_results (month, customer_id, eligible_calls, platform_average, allowance, above,
                                             months_above_of_last_6, status) VALUES ($1, 'coop', 95, 41.5, 88.5714,
                                             true, $2, $3)""",
            [(date(2026, 10, 1), 5, "contact"), (date(2026, 11, 1), 4, "above")])
        await insert_cdrs(conn, november())
        await store_version(conn, content=STAFF_CONFIG, author=STAFF, role="staff", reason=CHANGE_REASON, based_on=1,
                            changes=number_changes(CONFIG, STAFF_CONFIG))
        month = Month(2026, 11)
        await add_service_charge(conn, "acme", month, Decimal("25"), reason="Holiday routing set up", charged_by=STAFF,
                                 config_version="v2")
        await add_service_charge(conn, "acme", month, Decimal("10.5"), reason="Advice by phone", charged_by=STAFF,
                                 config_version=None)
        await add_service_charge(conn, "bolt", month, Decimal("99"), reason="Bolt Secret work", charged_by=STAFF,
                                 config_version=None)
    finally:
        await conn.close()


TEMPLATE = "fairline_billing_template"


@pytest.fixture(scope="module")
def seeded(live_stack: LiveStack) -> Iterator[str]:
    """A database with the data above, made once; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    s = live_stack.stack
    s.psql("postgres", f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    s.psql("postgres", f"CREATE DATABASE {TEMPLATE}")

    async def build(url: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        await _prepare(url)
        await _seed(url)

    asyncio.run(build(s.database_url.rsplit("/", 1)[0] + "/" + TEMPLATE))
    yield TEMPLATE
    s.psql("postgres", f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


@pytest.fixture
def billing(live_stack: LiveStack, seeded: str) -> Iterator[Console]:
    s = live_stack.stack
    s.psql("postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
    s.psql("postgres", f"CREATE DATABASE {SCRATCH_DATABASE} TEMPLATE {seeded}")
    made = Console(s.database_url.rsplit("/", 1)[0] + "/" + SCRATCH_DATABASE, Clock())
    with made.stack:
        yield made
    s.psql("postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")


def staff(console: Console) -> TestClient:
    c = console.client()
    post_form(c, "/login", {"email": STAFF, "password": PASSWORD})
    enrol(console, c, STAFF)
    return c


def cli(url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`fairline ARGV --database-url URL`, in-process as billing_cli registers it; its output."""
    parser = argparse.ArgumentParser(prog="fairline")
    billing_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--database-url", url])
    capsys.readouterr()
    assert args.fn(args) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def charges(console: Console) -> dict[str, Decimal]:
    return {r["call_id"]: r["charged_eur"] for r in console.sql(
        "SELECT call_id, charged_eur FROM cdrs WHERE customer_id = 'acme' AND billing_month = '2026-11-01'")}


class TestInvoices:
    def test_the_invoice_is_fairline_invoice_s_lines_and_total_with_the_fee_and_its_change(
        self, billing: Console, capsys: pytest.CaptureFixture[str]
    ) -> None:
        c = billing.sign_in("ann@acme.example")
        page = c.get("/invoices/2026-11")
        assert page.status_code == 200

        cli_rows = list(csv.reader(io.StringIO(cli(billing.url, capsys, "invoice", "--month", "2026-11", "--csv"))))
        header, acme_rows = cli_rows[0], [r for r in cli_rows[1:] if r[0] == "acme"]
        assert len(acme_rows) == 25 + 2  # 25 answered calls, 2 fees
        download = c.get("/invoices/2026-11.csv")
        assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
        assert list(csv.reader(io.StringIO(download.text))) == [header, *acme_rows]

        shown = re.findall(r'class="ref">([^<]+)</td>', page.text)
        assert shown == [r[header.index("reference")] for r in acme_rows]
        amounts = re.findall(r'<td class="num">(\d+\.\d{4})</td></tr>', page.text)
        assert amounts[:len(acme_rows)] == [r[header.index("amount_eur")] for r in acme_rows]

        text = cli(billing.url, capsys, "invoice", "--month", "2026-11")
        acme_total = re.search(r"Invoice 2026-11 for acme .*?calls (\S+) \+ service charges (\S+) = total (\S+) EUR",
                               text, re.S)
        assert acme_total, text
        calls_eur, fees_eur, total_eur = acme_total.groups()
        assert total_eur == str(sum(Decimal(r[header.index("amount_eur")]) for r in acme_rows))
        totals = re.search(r'class="totals">.*?</table>', page.text, re.S)
        assert totals and [calls_eur, fees_eur, total_eur] == re.findall(r"(\d+\.\d{4})", totals.group(0))

        assert "configuration v2: Second phone for the holidays" in page.text
        assert f"made by {STAFF} (staff)" in page.text and "Holiday routing set up" in page.text
        assert "no configuration change named" in page.text  # the 10.50 fee
        leaked = [s for s in (*BOLT_SECRETS, "bolt-line", "99.0000") if s.lower() in page.text.lower()]
        assert not leaked

    def test_the_list_has_a_year_of_months_a_month_without_calls_says_so_and_printing_fits_a4(
        self, billing: Console
    ) -> None:
        c = billing.sign_in("ann@acme.example")
        listing = c.get("/invoices")
        assert listing.status_code == 200
        months = re.findall(r'href="/invoices/(\d{4}-\d{2})"', listing.text)
        assert months[0] == "2026-12" and months[-1] == "2026-01" and len(months) == 12
        november = re.search(r'href="/invoices/2026-11">.*?</tr>', listing.text, re.S)
        month_page = c.get("/invoices/2026-11").text
        total = re.search(r'<tr class="total"><th>Total EUR</th><td class="num">([0-9.]+)<', month_page)
        assert november and total and november.group(0).endswith(f'<td class="num">{total.group(1)}</td></tr>')
        empty = c.get("/invoices/2026-08")
        assert empty.status_code == 200 and "No calls in 2026-08" in empty.text and "Total EUR" in empty.text
        assert c.get("/invoices/2026-08.csv").text.splitlines() == [",".join(billing_cli._CSV_COLUMNS)]

        css = c.get("/static/console.css").text  # printing itself: tests/e2e/test_console_billing_browser.py
        printed = css[css.index("@media print"):]
        assert "size: A4" in printed and re.search(r"header,[^{]*\{ display: none; \}", printed)
        assert '<p class="noprint">' in month_page


class TestWorklist:
    def test_the_worklist_holds_exactly_the_contact_customers_with_their_history(self, billing: Console) -> None:
        c = staff(billing)
        page = c.get("/staff/contacts")
        assert page.status_code == 200 and "fair use 2026-11" in page.text
        listed = re.findall(r'href="/staff/contacts/([a-z]+)"', page.text)
        assert listed == ["acme", "bolt"]  # coop is `above` in November
        assert page.text.count("<td>not yet</td>") == 2
        acme_row = page.text[page.text.index('href="/staff/contacts/acme"'):
                             page.text.index('href="/staff/contacts/bolt"')]
        assert [m for m in ("May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov") if f">{m} " in acme_row] == [
            "Jun", "Jul", "Aug", "Sep", "Oct", "Nov"]
        assert c.get("/staff/contacts?month=2026-10").text.count('href="/staff/contacts/') == 1  # coop, October

    def test_a_note_is_saved_audited_and_shown_on_the_worklist(self, billing: Console) -> None:
        c = staff(billing)
        r = post_form(c, "/staff/contacts/acme", {"spoke_with": "Ann (owner)", "called_at": "2026-12-07 08:30",
                                                  "note": "Agreed: heavy user from November."})
        assert (r.status_code, r.headers["location"]) == (303, "/staff/contacts/acme?saved=1")
        assert "Note saved." in c.get("/staff/contacts/acme?saved=1").text
        stored = billing.sql("SELECT customer_id, month, spoke_with, called_at, note FROM console_contact_notes")
        assert [tuple(s) for s in stored] == [("acme", date(2026, 11, 1), "Ann (owner)",
                                               datetime(2026, 12, 7, 8, 30, tzinfo=UTC),
                                               "Agreed: heavy user from November.")]
        audit = billing.sql("SELECT event, detail FROM console_audit WHERE email = $1 AND event = 'contact_noted'",
                            STAFF)
        assert [tuple(a) for a in audit] == [("contact_noted", "acme 2026-11: note 1, called 2026-12-07 08:30 UTC, "
                                                               "spoke with Ann (owner)")]
        page = c.get("/staff/contacts").text
        assert page.count("<td>not yet</td>") == 1 and "Agreed: heavy user from November." in page
        assert re.findall(r'href="/staff/contacts/([a-z]+)"', page) == ["bolt", "acme"]  # not yet called first

    def test_a_wrong_note_shows_the_messages_by_their_fields_and_saves_nothing(self, billing: Console) -> None:
        c = staff(billing)
        r = post_form(c, "/staff/contacts/acme", {"spoke_with": " ", "called_at": "tomorrow", "note": "kept text"})
        assert r.status_code == 400
        assert re.search(r'name="spoke_with"[^>]*>\s*</label>\s*<p class="error" id="spoke_with-error">Say whom',
                         r.text)
        assert '<p class="error" id="called_at-error">Expected the time of the call as YYYY-MM-DD HH:MM' in r.text
        assert "kept text</textarea>" in r.text and 'id="note-error"' not in r.text
        assert billing.sql("SELECT count(*) FROM console_contact_notes")[0][0] == 0
        assert billing.sql("SELECT count(*) FROM console_audit WHERE event = 'contact_noted'")[0][0] == 0


class TestHeavyUser:
    def test_a_mark_re_prices_the_month_as_fairline_heavy_user_does_and_is_audited(
        self, billing: Console, capsys: pytest.CaptureFixture[str]
    ) -> None:
        before = charges(billing)
        c = staff(billing)
        page = c.get("/staff/customers/acme")
        assert 'href="/staff/customers/acme/heavy-user"' in page.text
        assert "Never marked" in c.get("/staff/customers/acme/heavy-user").text
        r = post_form(c, "/staff/customers/acme/heavy-user",
                      {"month": "2026-11", "decision": "mark", "reason": "contact 6 months; agreed by phone"})
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/customers/acme/heavy-user?saved=")
        by_console = charges(billing)
        marks = c.get(r.headers["location"]).text
        assert "recorded; the month's calls are re-priced" in marks
        current = marks[marks.index("Current marks"):marks.index("Mark or unmark")]
        assert "2026-11" in current and "yes" in current and STAFF in current and "agreed by phone" in current

        cli(billing.url, capsys, "heavy-user", "unmark", "acme", "--month", "2026-11", "--by", "cli", "--reason", "x")
        unmarked = charges(billing)
        cli(billing.url, capsys, "heavy-user", "mark", "acme", "--month", "2026-11", "--by", "cli", "--reason", "x")
        assert by_console == charges(billing) != unmarked == before
        assert sum(by_console.values()) > sum(before.values())  # the local calls now cost their list price

        decided = billing.sql("SELECT decided_by, reason FROM heavy_user_decisions ORDER BY id LIMIT 1")[0]
        assert tuple(decided) == (STAFF, "contact 6 months; agreed by phone")
        audit = billing.sql("SELECT detail FROM console_audit WHERE event = 'heavy_user_marked'")
        # 23 calls re-priced: the 2 toll-free calls had their list price already.
        assert len(audit) == 1 and audit[0][0].startswith(
            "acme 2026-11: contact 6 months; agreed by phone (decision 1; 23 calls re-priced; total")
        r = post_form(c, "/staff/customers/acme/heavy-user", {"month": "2026-11", "decision": "unmark", "reason": "y"})
        assert r.status_code == 303
        assert billing.sql("SELECT event FROM console_audit WHERE event LIKE 'heavy%' ORDER BY id")[-1][0] == \
            "heavy_user_unmarked"

    def test_a_wrong_or_forged_decision_shows_why_and_changes_nothing(self, billing: Console) -> None:
        before = charges(billing)
        c = staff(billing)
        r = post_form(c, "/staff/customers/acme/heavy-user", {"month": "2026-13", "reason": ""})
        assert r.status_code == 400
        for field, message in (("month", "Expected a month as YYYY-MM"), ("decision", "Choose: mark"),
                               ("reason", "Say why")):
            assert f'<p class="error" id="{field}-error">{message}' in r.text
        assert 'value="2026-13"' in r.text
        assert billing.sql("SELECT count(*) FROM heavy_user_decisions")[0][0] == 0 and charges(billing) == before
        assert billing.sql("SELECT count(*) FROM console_audit WHERE event LIKE 'heavy%'")[0][0] == 0

        for path, data in (("/staff/customers/acme/heavy-user",
                            {"month": "2026-11", "decision": "mark", "reason": "x"}),
                           ("/staff/contacts/acme", {"spoke_with": "x", "called_at": "2026-12-07 08:00", "note": "y"})):
            assert c.post(path, data=data).status_code == 403
            assert c.post(path, data={**data, "csrf_token": "forged"}).status_code == 403
        assert billing.sql("SELECT (SELECT count(*) FROM heavy_user_decisions) + "
                           "(SELECT count(*) FROM console_contact_notes)")[0][0] == 0


class TestServiceLevels:
    def test_the_figures_are_fairline_queue_report_s_with_the_policy_s_hint(
        self, billing: Console, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import json

        report = json.loads(cli(billing.url, capsys, "queue", "report", "--month", "2026-11", "--json"))
        page = staff(billing).get("/staff/customers/acme/queues")
        assert page.status_code == 200
        november = page.text[page.text.index("<h2>2026-11</h2>"):page.text.index("<h2>2026-10</h2>")]
        rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", november, re.S)]
        expected = [[q["queue"], str(q["calls"]), str(q["answered"]), q["service_level_percent"], str(q["overflowed"]),
                     str(q["queue_timeout"]), str(q["abandoned"]), _tenth(q["average_wait_seconds"]),
                     _tenth(q["p90_wait_seconds"])] for q in report["queues"] if q["customer_id"] == "acme"]
        assert rows == expected and [r[0] for r in rows] == ["sales", "support"]
        acme = next(c for c in report["customers"] if c["customer_id"] == "acme")
        assert acme["flagged"] and f"in {acme['cap_hits']} of {acme['visits']} queue visits" in november
        assert "The policy&#39;s advice: grow the team or spread the calls over more numbers." in november
        assert "No queued calls in 2026-10" in page.text and "bolt-line" not in page.text


def _tenth(milliseconds: str) -> str:
    return str(Decimal(milliseconds).quantize(Decimal("0.1"), rounding="ROUND_HALF_UP"))


class TestAuthorization:
    """Every page and action of this module, for whom it is not."""

    CUSTOMER_PAGES = ["/invoices", "/invoices/2026-11", "/invoices/2026-11.csv"]
    STAFF_PAGES = ["/staff/contacts", "/staff/contacts/acme", "/staff/customers/acme/heavy-user",
                   "/staff/customers/acme/queues", "/staff/customers/acme/invoices",
                   "/staff/customers/acme/invoices/2026-11", "/staff/customers/acme/invoices/2026-11.csv"]
    STAFF_ACTIONS = ["/staff/contacts/acme", "/staff/customers/acme/heavy-user"]

    def test_a_customer_sees_only_their_own_invoices_and_no_staff_page(self, billing: Console) -> None:
        c = billing.sign_in("ann@acme.example")
        for path in ("/invoices/bolt/2026-11", "/invoices/2026-13", "/invoices/2026-11.pdf", "/invoices/bolt",
                     "/invoices/2026-11.csv/bolt", *self.STAFF_PAGES,
                     *(p.replace("acme", "bolt") for p in self.STAFF_PAGES)):
            r = c.get(path)
            assert (r.status_code, r.text) == NOT_FOUND, path
        token = csrf_of(c, "/invoices")
        for path in self.STAFF_ACTIONS:
            r = c.post(path, data={"csrf_token": token, "month": "2026-11", "decision": "mark", "reason": "x",
                                   "spoke_with": "x", "called_at": "2026-12-07 08:00", "note": "y"})
            assert (r.status_code, r.text) == NOT_FOUND, path
        for path in ("/invoices", "/invoices/2026-11", "/invoices/2026-11.csv", "/invoices/2026-12"):
            leaked = [s for s in (*BOLT_SECRETS, "bolt-line", "99.0000") if s.lower() in c.get(path).text.lower()]
            assert not leaked, (path, leaked)
        assert billing.sql("SELECT (SELECT count(*) FROM heavy_user_decisions) + "
                           "(SELECT count(*) FROM console_contact_notes)")[0][0] == 0
        bolts = list(csv.DictReader(io.StringIO(billing.sign_in("bob@bolt.example").get("/invoices/2026-11.csv").text)))
        assert {r["customer_id"] for r in bolts} == {"bolt"} and len(bolts) == 5 + 1  # bob's own: calls and fee

    def test_staff_get_404_for_customer_pages_and_unknown_customers_and_no_session_gets_nothing(
        self, billing: Console
    ) -> None:
        c = staff(billing)
        for path in (*self.CUSTOMER_PAGES, *(p.replace("acme", "nosuch") for p in self.STAFF_PAGES if "acme" in p),
                     "/staff/contacts/coop",  # in billing, not in the configuration
                     "/staff/customers/acme/invoices/2026-13", "/staff/contacts?month=2026-13"):
            r = c.get(path)
            assert (r.status_code, r.text) == NOT_FOUND, path
        token = csrf_of(c, "/staff/contacts")
        for path in (p.replace("acme", "nosuch") for p in self.STAFF_ACTIONS):
            assert (c.post(path, data={"csrf_token": token}).status_code) == 404, path
        # Staff see any customer's pages: acme's invoice as acme sees it.
        assert c.get("/staff/contacts/bolt").status_code == 200
        as_staff = c.get("/staff/customers/acme/invoices/2026-11").text
        as_acme = billing.sign_in("ann@acme.example").get("/invoices/2026-11").text
        refs = re.compile(r'class="ref">([^<]+)<|<td class="num">(\d+\.\d{4})</td>')
        assert refs.findall(as_staff) == refs.findall(as_acme) and "SC-1" in as_staff
        assert c.get("/staff/customers/acme/invoices/2026-11.csv").text == \
            billing.sign_in("ann@acme.example").get("/invoices/2026-11.csv").text

        c = billing.client()  # without a session: pages lead to the login, actions are refused
        for path in (*self.CUSTOMER_PAGES, *self.STAFF_PAGES):
            r = c.get(path)
            assert (r.status_code, r.headers.get("location")) == (303, "/login"), path
        token = csrf_of(c, "/login")
        for path in self.STAFF_ACTIONS:
            assert c.post(path, data={"csrf_token": token}).status_code == 403, path
