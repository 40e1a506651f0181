"""The console in headless Chromium (Debian's package, driven by Playwright): a customer added with
`fairline users add` signs in with the generated password, turns on TOTP, signs in again with password
and code, and sees their numbers and calls; a member of staff must set up TOTP before
anything else. The screenshots of docs/console.md are taken here."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.e2e.test_console_db import ACME_NUMBERS, BOLT_NUMBER, _prepare, fairline, shown_password

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Where the screenshots go: results/ (not committed), so a test run leaves the tree clean. The copies
# docs/console.md shows are refreshed with FAIRLINE_SCREENSHOTS=docs/console (docs/console.md).
SHOTS = ROOT / os.environ.get("FAIRLINE_SCREENSHOTS", "results/console")
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium; installed by `make setup` (asterisk-docker/stack.py)
DEADLINE_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def console_process(database_url: str, *options: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`fairline console --plain-http` on a free loopback port over `database_url`, until the block ends;
    yields its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ari_app.cli", "console", "--plain-http",
                             "--listen", f"127.0.0.1:{port}", *options],
                            env={**(env or os.environ), "DATABASE_URL": database_url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/login", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "fairline console did not answer"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def console_url(scratch_database: str) -> Iterator[str]:
    """`fairline console` on a loopback port, plain HTTP (cookies without Secure: --plain-http), until the test ends."""
    asyncio.run(_prepare(scratch_database))
    with console_process(scratch_database) as url:
        yield url


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_a_customer_signs_in_with_password_and_totp_and_sees_their_numbers_and_calls(
    console_url: str, scratch_database: str
) -> None:
    added = fairline(scratch_database, "users", "add", "erin@acme.example", "--name", "Erin Acme", "--customer", "acme")
    assert added.returncode == 0, added.stderr
    password = shown_password(added.stdout)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(f"{console_url}/login")
            shot(page, "login")
            sign_in(page, console_url, "erin@acme.example", password)
            page.wait_for_url(f"{console_url}/numbers")

            page.click("text=Two-factor")
            secret = page.inner_text(".secret").replace(" ", "")
            shot(page, "totp-enrol")
            page.fill("input[name=code]", pyotp.TOTP(secret).now())
            page.click("button[type=submit]:has-text('Turn on')")
            page.wait_for_url(f"{console_url}/numbers")
            page.click("button:has-text('Sign out')")
            page.wait_for_url(re.compile(r".*/login\?notice=signed-out$"))

            sign_in(page, console_url, "erin@acme.example", password)
            page.wait_for_url(f"{console_url}/login/totp")
            # The next step's code (one step of drift is accepted): the enrolment used this step's.
            page.fill("input[name=code]", pyotp.TOTP(secret).at(datetime.now(timezone.utc) + timedelta(seconds=30)))
            page.click("button[type=submit]")
            page.wait_for_url(f"{console_url}/numbers")
            numbers = page.inner_text("main")
            assert all(n in numbers for n in ACME_NUMBERS) and BOLT_NUMBER not in numbers
            shot(page, "numbers")

            page.click("text=My calls")
            page.fill("input[name=from]", "2026-12-01")
            page.fill("input[name=to]", "2026-12-07")
            page.click("button:has-text('Show')")
            page.wait_for_selector("table tbody tr")
            rows = page.locator("table tbody tr")
            assert rows.count() == 50 and page.locator("text=Older calls").count() == 1
            assert BOLT_NUMBER not in page.inner_text("main")
            assert "on the clock of Europe/Amsterdam (CET, UTC+01:00)" in page.inner_text("main")  # acme's numbers
            shot(page, "calls", full_page=False)

            # Fair use: the last six months stored by the report (May is the seventh back), in order, each bar
            # with its handled calls, against the standard; November's status is contact.
            page.click("nav >> text=Fair use")
            page.wait_for_selector("svg")
            texts = page.locator("svg text").all_text_contents()  # SVG text has no inner text
            bars = [(t, texts[i + 1]) for i, t in enumerate(texts) if re.fullmatch(r"[A-Z][a-z]{2} 20[0-9]{2}", t)]
            assert bars == [("Jun 2026", "40"), ("Jul 2026", "50"), ("Aug 2026", "60"), ("Sep 2026", "95"),
                            ("Oct 2026", "110"), ("Nov 2026", "125")], texts  # each month's label, then its calls
            assert (page.locator("svg rect title", has_text="Nov 2026: 125 calls").text_content() or "").endswith(
                "(contact)")
            shot(page, "fair-use")

            # Staff: TOTP is set up at the first sign-in, before any page; then every customer.
            page.click("button:has-text('Sign out')")
            staff = fairline(scratch_database, "users", "add", "sue@fairline.example", "--name", "Sue Staff", "--staff")
            sign_in(page, console_url, "sue@fairline.example", shown_password(staff.stdout))
            page.wait_for_url(f"{console_url}/account/totp")
            staff_secret = page.inner_text(".secret").replace(" ", "")
            page.fill("input[name=code]", pyotp.TOTP(staff_secret).now())
            page.click("button[type=submit]:has-text('Turn on')")
            page.wait_for_url(f"{console_url}/staff/customers")
            assert "Bolt Secret Holding" in page.inner_text("main")
            shot(page, "staff-customers")
        finally:
            browser.close()
