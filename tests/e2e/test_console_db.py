"""The console over HTTP against the real PostgreSQL (a scratch database per test): sign-in with password
and TOTP, CSRF, session expiry and logout, throttling and lockout, the audit, and the authorization suite
(a customer tries every page and action on another customer's data, and staff pages; refused, nothing
leaked). Requests go through Starlette's TestClient on https://testserver, so the cookies stay Secure."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import httpx2
import pyotp
import pytest
from starlette.testclient import TestClient

from ari_app.config_versions import number_changes
from console import storage
from console.app import create_app
from console.core import passwords
from console.core.sessions import SessionPolicy
from console.core.throttle import ThrottlePolicy
from console.settings import ConsoleSettings
from rating.storage.config_store import store_version

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
PASSWORD = "plaid-otter-marmalade-vortex"

CONFIG = """customers:
  - id: acme
    name: Acme BV
  - id: bolt
    name: Bolt Secret Holding
numbers:
  - number: "+31201110001"
    customer: acme
    type: local
    route: {targets: ["+31612340001"]}
  - number: "+31201110002"
    customer: acme
    type: local
    announcement: hello-world
  - number: "+31209990001"
    customer: bolt
    type: local
    route: {targets: ["+31655500001"]}
"""
ACME_NUMBERS = ("+31201110001", "+31201110002")
BOLT_NUMBER = "+31209990001"
BOLT_SECRETS = ("bolt", "Bolt Secret", BOLT_NUMBER, "+31655500001", "bolt-call")  # none may appear in acme's pages


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Console:
    url: str
    clock: Clock
    totp: dict[str, str] = field(default_factory=dict)  # email -> secret
    stack: ExitStack = field(default_factory=ExitStack)

    def client(self) -> TestClient:
        """A browser of its own (cookie jar), on an app of its own over the same database."""
        app = create_app(ConsoleSettings(self.url, clock=self.clock,
                                         sessions=SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12)),
                                         throttle=ThrottlePolicy(window=timedelta(minutes=15), per_account=5,
                                                                 per_address=20),
                                         password_max_age_days=180))
        return self.stack.enter_context(TestClient(app, base_url="https://testserver", follow_redirects=False))

    def sign_in(self, email: str, password: str = PASSWORD, *, address_client: TestClient | None = None) -> TestClient:
        c = address_client or self.client()
        r = post_form(c, "/login", {"email": email, "password": password})
        assert r.status_code == 303, r.text
        if r.headers["location"] == "/login/totp":
            r = post_form(c, "/login/totp", {"code": pyotp.TOTP(self.totp[email]).at(self.clock.now)})
            assert r.status_code == 303, r.text
        return c

    def sql(self, query: str, *args: object) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()
        return asyncio.run(run())

    def audit(self, email: str) -> list[str]:
        return [r["event"] for r in self.sql("SELECT event FROM console_audit WHERE email = $1 ORDER BY id", email)]


def csrf_of(c: TestClient, path: str) -> str:
    page = c.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"{path}: no CSRF token in {page.status_code} {page.text[:200]}"
    return found.group(1)


def post_form(c: TestClient, path: str, data: dict[str, str]) -> httpx2.Response:
    """Submit the form of the page at `path` (every form posts to the page it is on), with its CSRF token."""
    return c.post(path, data={**data, "csrf_token": csrf_of(c, path)})


async def _prepare(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await store_version(conn, content=CONFIG, author="test", role="admin", reason="console test", based_on=None,
                            changes=number_changes(None, CONFIG))
        hashed = passwords.hash_password(PASSWORD)
        for email, name, role, customer in (("ann@acme.example", "Ann Acme", "customer", "acme"),
                                            ("bob@bolt.example", "Bob Bolt", "customer", "bolt"),
                                            ("sam@fairline.example", "Sam Staff", "staff", None)):
            await storage.add_account(conn, email=email, name=name, role=role, customer_id=customer,  # type: ignore[arg-type]
                                      password_hash=hashed, now=T0 - timedelta(days=10))
        rows = [(f"acme-call-{i:03d}", ACME_NUMBERS[i % 2], f"+3161000{i:04d}", T0 - timedelta(hours=i + 1),
                 "answered" if i % 3 else "abandoned", "acme") for i in range(120)]
        rows += [(f"bolt-call-{i}", BOLT_NUMBER, "+31655500001", T0 - timedelta(hours=i + 1), "answered", "bolt")
                 for i in range(5)]
        await conn.executemany(
            """INSERT INTO cdrs (call_id, did, caller, started_at, answered_at, ended_at, disposition, customer_id,
                                 billing_month)
               VALUES ($1, $2, $3, $4::timestamptz, CASE WHEN $5 = 'answered' THEN $4::timestamptz + interval '5 s' END,
                       $4::timestamptz + interval '65 s',
                       $5, $6, date_trunc('month', $4::timestamptz AT TIME ZONE 'UTC')::date)""", rows)
        # Fair use as `fairline fair-use report` stored it: acme's last seven months, bolt's one (999 calls).
        await conn.executemany("INSERT INTO customers (customer_id, name) VALUES ($1, $2)",
                               [("acme", "Acme BV"), ("bolt", "Bolt Secret")])
        months = [date(2026, m, 1) for m in range(5, 12)]
        # Within the standard (88.57) while ok, above it from September.
        standing = [(m, "acme", 30 + 10 * i if i < 4 else 95 + 15 * (i - 4), Decimal("41.5"), Decimal("88.5714"), i >= 4, min(i, 6),
                     "contact" if i == 6 else "above" if i >= 4 else "ok") for i, m in enumerate(months)]
        standing.append((date(2026, 11, 1), "bolt", 999, Decimal("41.5"), Decimal("88.5714"), True, 6, "contact"))
        await conn.executemany(
            """INSERT INTO fair_use_results (month, customer_id, eligible_calls, platform_average, allowance, above,
                                             months_above_of_last_6, status, computed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '2026-12-01 06:00+00')""", standing)
    finally:
        await conn.close()


@pytest.fixture
def console(scratch_database: str) -> Iterator[Console]:
    asyncio.run(_prepare(scratch_database))
    made = Console(scratch_database, Clock())
    with made.stack:
        yield made


def enrol(console: Console, c: TestClient, email: str) -> str:
    """Turn TOTP on from the enrolment page; returns the secret."""
    page = c.get("/account/totp")
    secret = re.search(r'class="secret">([A-Z2-7 ]+)<', page.text)
    assert secret, page.text
    key = secret.group(1).replace(" ", "")
    r = post_form(c, "/account/totp", {"code": pyotp.TOTP(key).at(console.clock.now)})
    assert r.status_code == 303, r.text
    console.totp[email] = key
    return key


class TestSignIn:
    def test_a_customer_signs_in_sees_their_numbers_and_signs_out(self, console: Console) -> None:
        c = console.client()
        assert c.get("/numbers").headers["location"] == "/login"
        r = post_form(c, "/login", {"email": "Ann@Acme.example", "password": PASSWORD})
        assert (r.status_code, r.headers["location"]) == (303, "/numbers")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-fairline_session=") and "HttpOnly" in cookie and "Secure" in cookie
        assert "samesite=strict" in cookie.lower()
        page = c.get("/numbers")
        assert page.status_code == 200 and all(n in page.text for n in ACME_NUMBERS)
        assert "rings +31612340001" in page.text and "announcement hello-world" in page.text
        assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
            "content-security-policy"]
        old_cookie = c.cookies.get("__Host-fairline_session")
        r = c.post("/logout", data={"csrf_token": csrf_of(c, "/numbers")})
        assert r.status_code == 303
        c.cookies.set("__Host-fairline_session", old_cookie or "", domain="testserver")
        assert c.get("/numbers").headers["location"] == "/login"  # the old cookie opens nothing
        assert console.audit("ann@acme.example") == ["login", "logout"]

    def test_a_wrong_password_says_nothing_about_which_part_was_wrong(self, console: Console) -> None:
        c = console.client()
        wrong = post_form(c, "/login", {"email": "ann@acme.example", "password": "nope-nope-nope-nope"})
        unknown = post_form(c, "/login", {"email": "nobody@acme.example", "password": PASSWORD})
        assert wrong.status_code == unknown.status_code == 401
        assert "Wrong e-mail address or password." in wrong.text and "Wrong e-mail address or password." in unknown.text
        assert console.audit("ann@acme.example") == ["login_failed"]
        assert console.audit("nobody@acme.example") == ["login_failed"]

    def test_staff_must_enrol_totp_before_anything_and_then_sign_in_with_a_code(self, console: Console) -> None:
        c = console.client()
        r = post_form(c, "/login", {"email": "sam@fairline.example", "password": PASSWORD})
        assert r.headers["location"] == "/account/totp"
        assert c.get("/staff/customers").headers["location"] == "/account/totp"  # nothing before enrolling
        enrol(console, c, "sam@fairline.example")
        assert c.get("/staff/customers").status_code == 200
        console.clock.now += timedelta(minutes=1)
        again = console.client()
        r = post_form(again, "/login", {"email": "sam@fairline.example", "password": PASSWORD})
        assert r.headers["location"] == "/login/totp"
        assert again.get("/staff/customers").headers["location"] == "/login/totp"  # the password alone is not enough
        code = pyotp.TOTP(console.totp["sam@fairline.example"]).at(console.clock.now)
        assert post_form(again, "/login/totp", {"code": code}).headers["location"] == "/staff/customers"
        page = again.get("/staff/customers")
        assert "Acme BV" in page.text and "Bolt Secret Holding" in page.text
        # The same code once more (a replay, e.g. seen over a shoulder) is refused.
        third = console.client()
        post_form(third, "/login", {"email": "sam@fairline.example", "password": PASSWORD})
        replay = post_form(third, "/login/totp", {"code": code})
        assert replay.status_code == 401 and third.get("/staff/customers").headers["location"] == "/login"
        assert console.audit("sam@fairline.example") == ["totp_enrolled", "login", "login", "login_failed"]

    def test_a_customer_may_turn_totp_on_and_then_needs_a_code(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        key = enrol(console, c, "ann@acme.example")
        # Moving it to another app needs the password as well as the new code: an open session is not enough.
        page = c.get("/account/totp")
        other = re.search(r'class="secret">([A-Z2-7 ]+)<', page.text)
        assert other and 'name="password"' in page.text
        code = pyotp.TOTP(other.group(1).replace(" ", "")).at(console.clock.now)
        taken = c.post("/account/totp", data={"code": code, "csrf_token": csrf_of(c, "/numbers")})
        assert taken.status_code == 400 and "The password is wrong." in taken.text
        assert console.sql("SELECT totp_secret FROM console_users WHERE email = 'ann@acme.example'")[0][0] == key
        console.clock.now += timedelta(minutes=1)
        fresh = console.client()
        assert post_form(fresh, "/login", {"email": "ann@acme.example", "password": PASSWORD}).headers[
            "location"] == "/login/totp"
        bad = post_form(fresh, "/login/totp", {"code": "000000"})
        assert bad.status_code == 401 and "Wrong or already used code" in bad.text
        assert fresh.get("/numbers").headers["location"] == "/login"  # a wrong code ends the half sign-in
        console.sign_in("ann@acme.example")


class TestCsrf:
    def test_a_form_without_or_with_a_wrong_token_is_refused(self, console: Console) -> None:
        c = console.client()
        assert c.post("/login", data={"email": "ann@acme.example", "password": PASSWORD}).status_code == 403
        c.get("/login")
        assert c.post("/login", data={"email": "ann@acme.example", "password": PASSWORD,
                                      "csrf_token": "forged"}).status_code == 403
        signed = console.sign_in("ann@acme.example")
        other = console.sign_in("bob@bolt.example")
        bobs = csrf_of(other, "/numbers")
        assert signed.post("/logout", data={}).status_code == 403
        assert signed.post("/logout", data={"csrf_token": bobs}).status_code == 403  # another session's token
        assert signed.get("/numbers").status_code == 200  # still signed in
        assert console.audit("ann@acme.example") == ["login"]


class TestSessions:
    def test_a_session_ends_after_30_idle_minutes(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        console.clock.now += timedelta(minutes=29)
        assert c.get("/numbers").status_code == 200
        console.clock.now += timedelta(minutes=29)  # 58 minutes in, but never 30 idle
        assert c.get("/numbers").status_code == 200
        console.clock.now += timedelta(minutes=30)
        assert c.get("/numbers").headers["location"] == "/login"
        assert console.sql("SELECT count(*) FROM console_sessions")[0][0] == 0

    def test_a_session_ends_12_hours_after_sign_in_however_busy(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        for _ in range(12 * 3):
            assert c.get("/numbers").status_code == 200
            console.clock.now += timedelta(minutes=20)
        assert c.get("/numbers").headers["location"] == "/login"

    def test_sessions_nobody_returns_to_are_forgotten_at_a_later_sign_in(self, console: Console) -> None:
        console.sign_in("ann@acme.example")
        console.clock.now += timedelta(hours=12, seconds=1)
        console.sign_in("bob@bolt.example")
        owners = console.sql("SELECT u.email FROM console_sessions JOIN console_users u USING (user_id)")
        assert [r["email"] for r in owners] == ["bob@bolt.example"]

    def test_a_disabled_account_loses_its_session_and_cannot_sign_in(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        console.sql("UPDATE console_users SET disabled_at = now() WHERE email = 'ann@acme.example'")
        assert c.get("/numbers").headers["location"] == "/login"
        r = post_form(console.client(), "/login", {"email": "ann@acme.example", "password": PASSWORD})
        assert r.status_code == 401


class TestThrottling:
    def test_five_failures_lock_the_account_for_15_minutes_even_for_the_right_password(self, console: Console) -> None:
        c = console.client()
        for _ in range(5):
            assert post_form(c, "/login", {"email": "ann@acme.example", "password": "wrong-wrong-wrong"}).status_code == 401
            console.clock.now += timedelta(seconds=10)
        refused = post_form(c, "/login", {"email": "ann@acme.example", "password": PASSWORD})
        assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
        assert console.audit("ann@acme.example") == ["login_failed"] * 5 + ["lockout", "login_refused"]
        console.clock.now += timedelta(minutes=15)
        console.sign_in("ann@acme.example")

    def test_an_address_failing_on_many_accounts_is_refused_for_all(self, console: Console) -> None:
        c = console.client()
        for i in range(20):
            post_form(c, "/login", {"email": f"guess{i}@acme.example", "password": "wrong-wrong-wrong"})
        refused = post_form(c, "/login", {"email": "bob@bolt.example", "password": PASSWORD})
        assert refused.status_code == 429
        assert console.audit("bob@bolt.example") == ["login_refused"]


class TestPasswords:
    def test_a_weak_new_password_is_refused_with_the_reasons_and_a_strong_one_ends_every_session(
        self, console: Console
    ) -> None:
        c = console.sign_in("ann@acme.example")
        other_device = console.sign_in("ann@acme.example")
        weak = post_form(c, "/account/password", {"current": PASSWORD, "new": "ann-acme-2026", "again": "ann-acme-2026"})
        assert weak.status_code == 400 and "contains your name or e-mail address" in weak.text
        new = "quartz-lantern-fjord-mosaic"
        done = post_form(c, "/account/password", {"current": PASSWORD, "new": new, "again": new})
        assert done.headers["location"] == "/login?notice=password-changed"
        assert other_device.get("/numbers").headers["location"] == "/login"
        console.sign_in("ann@acme.example", new)
        assert "password_changed" in console.audit("ann@acme.example")

    def test_an_old_password_brings_a_reminder_on_every_page(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        assert "days old" not in c.get("/numbers").text
        console.clock.now += timedelta(days=171)  # 181 days since it was set
        c = console.sign_in("ann@acme.example")
        assert "Your password is 181 days old" in c.get("/numbers").text


class TestCalls:
    def test_calls_page_by_page_newest_first_without_repeats(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        seen: list[str] = []
        url = "/calls"
        while url:
            page = c.get(url)
            assert page.status_code == 200
            seen += re.findall(r"\+3161000(\d{4})", page.text)
            more = re.search(r'href="(/calls\?[^"]+after=[^"]+)"', page.text)
            url = more.group(1).replace("&amp;", "&") if more else ""
        assert seen == [f"{i:04d}" for i in range(120)]

    def test_filters_by_number_outcome_and_date(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        page = c.get("/calls", params={"number": ACME_NUMBERS[1], "outcome": "abandoned"})
        callers = re.findall(r"\+3161000(\d{4})", page.text)
        assert callers == [f"{i:04d}" for i in range(120) if i % 2 == 1 and i % 3 == 0][:50]
        day = c.get("/calls", params={"from": "2026-12-06", "to": "2026-12-06"})
        assert len(re.findall(r"\+3161000(\d{4})", day.text)) == 24
        bad = c.get("/calls", params={"from": "yesterday"})
        assert bad.status_code == 400 and "from: a date such as 2026-12-07" in bad.text

    def test_csv_export_has_every_call_of_the_filter(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        r = c.get("/calls.csv", params={"from": "2026-11-01"})
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 120 and {row["number"] for row in rows} == set(ACME_NUMBERS)


class TestFairUse:
    def test_the_customer_sees_the_last_six_months_against_the_standard_and_what_they_mean(
            self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        r = c.get("/fair-use")
        assert r.status_code == 200
        assert "<svg" in r.text and "As computed 2026-12-01 07:00 (Europe/Amsterdam (CET, UTC+01:00))" in r.text
        shown = [m for m in ("May 2026", "June 2026", "July 2026", "August 2026", "September 2026", "October 2026",
                             "November 2026") if m in r.text]
        assert shown == ["June 2026", "July 2026", "August 2026", "September 2026", "October 2026", "November 2026"]
        assert "we will call you" in r.text and "EUR 0.04 per call set-up" in r.text  # November: contact
        assert "999" not in r.text  # bolt's month

    def test_before_any_report_the_page_says_so(self, console: Console) -> None:
        asyncio.run(_sql(console.url, "DELETE FROM fair_use_results"))
        r = console.sign_in("ann@acme.example").get("/fair-use")
        assert r.status_code == 200 and "No month has been worked out for you yet" in r.text and "<svg" not in r.text


async def _sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class TestAuthorization:
    """A customer's session against another customer's data and staff pages; staff against customer pages."""

    CUSTOMER_REFUSED = [
        f"/numbers/{BOLT_NUMBER}", f"/numbers/%2B31209990001",
        f"/calls?number=%2B31209990001", f"/calls.csv?number=%2B31209990001",
        "/staff/customers", "/staff/customers/bolt", "/staff/customers/acme", "/staff/audit",
        "/no-such-page",
    ]

    @pytest.mark.parametrize("path", CUSTOMER_REFUSED)
    def test_a_customer_is_refused_other_customers_data_and_staff_pages_with_nothing_leaked(
        self, console: Console, path: str
    ) -> None:
        c = console.sign_in("ann@acme.example")
        r = c.get(path)
        assert (r.status_code, r.text) == (404, "Not found")

    def test_a_customer_s_lists_hold_nothing_of_another_customer(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        for path in ("/numbers", "/calls?from=2026-11-01", "/calls.csv?from=2026-11-01", "/fair-use",
                     "/account/password", "/account/totp"):
            r = c.get(path)
            assert r.status_code == 200, path
            leaked = [s for s in BOLT_SECRETS if s.lower() in r.text.lower()]
            assert not leaked, (path, leaked)

    def test_a_forged_page_link_stays_within_the_customer_s_own_calls(self, console: Console) -> None:
        from console.core.call_filter import Cursor
        c = console.sign_in("ann@acme.example")
        after = Cursor(T0 + timedelta(days=1), "zzz").encode()  # "after" a call that is no one's
        r = c.get("/calls", params={"after": after})
        assert r.status_code == 200 and "bolt-call" not in r.text and BOLT_NUMBER not in r.text

    @pytest.mark.parametrize("path", ["/numbers", f"/numbers/{ACME_NUMBERS[0]}", "/calls", "/calls.csv", "/fair-use"])
    def test_staff_pages_are_not_customer_pages(self, console: Console, path: str) -> None:
        c = console.client()
        post_form(c, "/login", {"email": "sam@fairline.example", "password": PASSWORD})
        enrol(console, c, "sam@fairline.example")
        assert (c.get(path).status_code, c.get(path).text) == (404, "Not found")

    @pytest.mark.parametrize("path", ["/numbers", f"/numbers/{ACME_NUMBERS[0]}", "/calls", "/calls.csv",
                                      "/staff/customers", "/staff/customers/acme", "/staff/audit",
                                      "/account/password", "/account/totp", "/login/totp"])
    def test_without_a_session_every_page_leads_to_the_login(self, console: Console, path: str) -> None:
        r = console.client().get(path)
        assert (r.status_code, r.headers["location"]) == (303, "/login")

    @pytest.mark.parametrize("path", ["/logout", "/account/password", "/account/totp", "/login/totp"])
    def test_without_a_session_every_action_is_refused(self, console: Console, path: str) -> None:
        c = console.client()
        token = csrf_of(c, "/login")  # a real pre-login token: still no session
        r = c.post(path, data={"csrf_token": token, "code": "123456"})
        assert r.status_code == 403


def fairline(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`fairline ARGV` as an operator types it, with the scratch database in $DATABASE_URL."""
    return subprocess.run([sys.executable, "-m", "ari_app.cli", *argv], env={**os.environ, "DATABASE_URL": url},
                          capture_output=True, text=True, timeout=60)


def shown_password(out: str) -> str:
    found = re.search(r": password (\S+)\n", out)
    assert found, out
    return found.group(1)


class TestUsersCommands:
    def test_add_reset_and_disable_as_an_operator_uses_them(self, console: Console) -> None:
        def now() -> None:  # the commands audit at the real time: the console's clock follows it here
            console.clock.now = datetime.now(timezone.utc)

        added = fairline(console.url, "users", "add", "Carol@Acme.example", "--name", "Carol Acme", "--customer", "acme")
        assert added.returncode == 0, added.stderr
        first = shown_password(added.stdout)
        assert "Shown this once" in added.stdout and passwords.problems(first, passwords.Holder("Carol Acme", "")) == []
        stored = console.sql("SELECT password_hash, role, customer_id FROM console_users WHERE email = 'carol@acme.example'")
        assert stored[0]["password_hash"].startswith("$argon2id$") and first not in stored[0]["password_hash"]
        assert (stored[0]["role"], stored[0]["customer_id"]) == ("customer", "acme")
        now()
        c = console.sign_in("carol@acme.example", first)
        assert ACME_NUMBERS[0] in c.get("/numbers").text

        for _ in range(5):  # locked out...
            now()
            post_form(console.client(), "/login", {"email": "carol@acme.example", "password": "wrong-wrong-wrong"})
        reset = fairline(console.url, "users", "reset", "carol@acme.example")
        assert reset.returncode == 0, reset.stderr
        second = shown_password(reset.stdout)
        now()
        assert c.get("/numbers").headers["location"] == "/login"  # a reset ends the sessions
        assert post_form(console.client(), "/login", {"email": "carol@acme.example", "password": first}).status_code == 401
        console.sign_in("carol@acme.example", second)  # ...and a reset lifts the lock

        disabled = fairline(console.url, "users", "disable", "carol@acme.example")
        assert (disabled.returncode, disabled.stdout) == (0, "carol@acme.example: disabled; its sessions ended\n")
        assert post_form(console.client(), "/login", {"email": "carol@acme.example", "password": second}).status_code == 401
        listed = fairline(console.url, "users", "list").stdout
        assert "carol@acme.example\tcustomer\tacme\tdisabled\t" in listed
        assert console.audit("carol@acme.example")[:2] == ["user_added", "login"]
        assert {"user_reset", "user_disabled", "lockout"} <= set(console.audit("carol@acme.example"))

    def test_a_customer_not_in_the_configuration_or_an_account_twice_is_refused(self, console: Console) -> None:
        unknown = fairline(console.url, "users", "add", "dan@x.example", "--name", "Dan", "--customer", "nosuch")
        assert unknown.returncode == 2
        assert "--customer nosuch: no such customer in the newest configuration version" in unknown.stderr
        twice = fairline(console.url, "users", "add", "ann@acme.example", "--name", "Ann", "--staff")
        assert twice.returncode == 2 and "ann@acme.example has an account already" in twice.stderr
        assert fairline(console.url, "users", "reset", "nobody@x.example").returncode == 2


def test_without_its_database_the_console_answers_503_saying_so() -> None:
    """No stack needed: a database port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        app = create_app(ConsoleSettings(f"postgresql://fairline:x@127.0.0.1:{port}/fairline"))
        with TestClient(app, base_url="https://testserver") as c:
            r = c.get("/login")
    assert (r.status_code, r.text) == (503, "The console cannot reach its database just now. Try again in a minute.")
