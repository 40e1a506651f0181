"""The billing pages in headless Chromium (Debian's package, driven by Playwright) on `fairline console`: a
customer opens November's invoice and prints it (the menu left out, A4); staff note the call to a `contact`
customer, mark them heavy user from their page, look at their queue service levels, and change their call
flow with the agreed fee, which then shows on their invoice. The screenshots of
docs/console.md's billing sections are taken here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import SCRATCH_DATABASE, LiveStack
from tests.e2e.test_console_billing_db import seeded  # noqa: F401  (the fixture)
from tests.e2e.test_console_browser import CHROMIUM, DEADLINE_S, free_port, shot, sign_in
from tests.e2e.test_console_db import ACME_NUMBERS, BOLT_NUMBER, PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def console_url(live_stack: LiveStack, seeded: str) -> Iterator[str]:  # noqa: F811
    """`fairline console --plain-http` on a copy of the seeded billing database, until the test ends."""
    s = live_stack.stack
    s.psql("postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
    s.psql("postgres", f"CREATE DATABASE {SCRATCH_DATABASE} TEMPLATE {seeded}")
    database = s.database_url.rsplit("/", 1)[0] + "/" + SCRATCH_DATABASE
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ari_app.cli", "console", "--plain-http",
                             "--listen", f"127.0.0.1:{port}"], env={**os.environ, "DATABASE_URL": database},
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
        s.psql("postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")


def test_an_invoice_printed_and_staff_s_worklist_heavy_user_mark_and_service_levels(console_url: str,
                                                                                    tmp_path: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            sign_in(page, console_url, "ann@acme.example", PASSWORD)
            page.wait_for_url(f"{console_url}/numbers")
            page.click("nav >> text=Invoices")
            page.click("text=2026-11")
            page.wait_for_url(f"{console_url}/invoices/2026-11")
            assert "configuration v2: Second phone for the holidays" in page.inner_text("main")
            assert BOLT_NUMBER not in page.inner_text("main")
            shot(page, "invoice")

            page.emulate_media(media="print")
            assert not page.locator("header").is_visible() and not page.locator(".noprint").is_visible()
            assert page.locator(".totals").is_visible()
            shot(page, "invoice-print")
            pdf = tmp_path / "invoice-2026-11.pdf"
            page.pdf(path=str(pdf), prefer_css_page_size=True)
            printed = pdf.read_bytes()
            sizes = re.findall(rb"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]", printed)
            assert printed.startswith(b"%PDF") and sizes  # every page A4: 595 x 842 points
            assert all(round(float(w)) == 595 and round(float(h)) == 842 for w, h in sizes), sizes
            page.emulate_media(media="screen")
            page.click("button:has-text('Sign out')")

            sign_in(page, console_url, "sam@fairline.example", PASSWORD)
            page.wait_for_url(f"{console_url}/account/totp")
            secret = page.inner_text(".secret").replace(" ", "")
            page.fill("input[name=code]", pyotp.TOTP(secret).now())
            page.click("button[type=submit]:has-text('Turn on')")
            page.wait_for_url(f"{console_url}/staff/customers")

            page.click("nav >> text=To call")
            assert page.locator("table.worklist tbody tr").count() == 2
            page.click("table.worklist >> text=Acme BV")
            page.fill("input[name=spoke_with]", "Ann de Vries (owner)")
            page.fill("textarea[name=note]", "Explained fair use; agreed to be billed as heavy user for November.")
            page.click("button:has-text('Save note')")
            page.wait_for_url(f"{console_url}/staff/contacts/acme?saved=1")
            page.click("nav >> text=To call")
            assert "agreed to be billed as heavy user" in page.inner_text("table.worklist")
            shot(page, "staff-worklist")

            page.goto(f"{console_url}/staff/customers/acme")
            page.click("text=Heavy user")
            page.fill("input[name=month]", "2026-11")
            page.check("input[value=mark]")
            page.fill("textarea[name=reason]", "Contact status in November; agreed by phone with Ann de Vries.")
            page.click("button:has-text('Record the decision')")
            page.wait_for_selector("text=recorded; the month's calls are re-priced")
            assert "agreed by phone" in page.inner_text("table.marks")
            shot(page, "staff-heavy-user")

            page.goto(f"{console_url}/staff/customers/acme")
            page.click("text=Queue service levels")
            assert "grow the team or spread the calls over more numbers" in page.inner_text(".hint")
            shot(page, "staff-service-levels")

            # A change made on acme's behalf with the agreed fee: the fee is on acme's invoice of this month,
            # with the change it paid for.
            page.goto(f"{console_url}/staff/customers/acme/numbers/{ACME_NUMBERS[0]}/edit")
            page.fill("textarea[name=targets]", "+31612340003")
            page.fill("input[name=reason]", "Night phone as agreed")
            page.fill("input[name=fee_eur]", "17.50")
            page.click("button:has-text('Save')")
            page.wait_for_url(re.compile(r".*/history\?saved=v[0-9]+.*"))
            saved = re.search(r"saved=(v[0-9]+)", page.url)
            assert saved is not None
            page.goto(f"{console_url}/staff/customers/acme/invoices/{datetime.now(UTC):%Y-%m}")
            invoice = page.inner_text("main")
            assert "17.50" in invoice and f"configuration {saved.group(1)}: Night phone as agreed" in invoice, invoice
            shot(page, "staff-fee-on-invoice")
        finally:
            browser.close()
