"""A customer changes a number's route in the console, in headless Chromium, and the next real call follows
it (issue 19, decision 0035). The console runs on the stack's own database, so the stack's fairline applies
the saved version as it would in service; the stack's configuration is stored again at the end, so the other
tests find their numbers as tests/e2e/fairline.yaml says. The screenshots of docs/console.md's "Changing a
call flow" are taken here; the customer also changes one of her queues."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import LiveStack, poll
from tests.e2e.test_console_browser import CHROMIUM, console_process, shot, sign_in
from tests.e2e.test_console_db import fairline, shown_password
from tests.e2e.test_limits import messages, messages_size
from tests.e2e.test_live_config import version_at

pytestmark = pytest.mark.e2e

NUMBER = "+31201230800"  # tests/e2e/fairline.yaml: rings +31612340802, which is busy
BUSY_PHONE = "+31612340802"
NEW_PHONE = "+31612340811"  # answers (the phones act on their last digit)
FAIRLINE = Path(sys.executable).parent / "fairline"


@pytest.fixture
def stack_console(live: LiveStack) -> Iterator[str]:
    """`fairline console` on the stack's database (plain HTTP on loopback); the stack's configuration file
    stored again afterwards, and running, whatever the test did."""
    s = live.stack
    try:
        with console_process(s.database_url, env=s.fairline_env()) as url:
            yield url
    finally:
        back = subprocess.run([str(FAIRLINE), "config", "apply", str(s.app_config), "--author", "stack",
                               "--reason", "back as the tests expect"], capture_output=True, text=True, timeout=60,
                              env=s.fairline_env())
        assert back.returncode == 0, back.stderr
        newest = "v" + s.psql("fairline", "SELECT max(id) FROM config_versions").strip()
        assert poll(lambda: version_at(s.ports.status) == newest, timeout=10)


def test_a_customer_signs_in_with_totp_changes_a_route_and_the_next_call_follows_it(
        live: LiveStack, stack_console: str, tmp_path: Path) -> None:
    s, url = live.stack, stack_console
    busy = tmp_path / "uac_busy.xml"
    busy.write_text((Path(__file__).parent / "scenarios" / "uac_unanswered.xml").read_text().replace("[final]", "486"))
    assert live.call(NUMBER, str(busy)).returncode == 0  # before: the busy phone

    added = fairline(s.database_url, "users", "add", "flo@acme.example", "--name", "Flo Acme", "--customer", "acme")
    assert added.returncode == 0, added.stderr
    password = shown_password(added.stdout)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            sign_in(page, url, "flo@acme.example", password)
            page.wait_for_url(f"{url}/numbers")
            page.click("text=Two-factor")
            secret = page.inner_text(".secret").replace(" ", "")
            page.fill("input[name=code]", pyotp.TOTP(secret).now())
            page.click("button[type=submit]:has-text('Turn on')")
            page.wait_for_url(f"{url}/numbers")
            page.click("button:has-text('Sign out')")
            page.wait_for_url(re.compile(r".*/login\?notice=signed-out$"))
            sign_in(page, url, "flo@acme.example", password)
            page.wait_for_url(f"{url}/login/totp")
            # The next step's code (one step of drift is accepted): the enrolment used this step's.
            page.fill("input[name=code]", pyotp.TOTP(secret).at(datetime.now(timezone.utc) + timedelta(seconds=30)))
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/numbers")

            page.click(f"text={NUMBER}")
            page.click("text=Change the call flow")
            assert page.input_value("textarea[name=targets]").strip() == BUSY_PHONE
            # A premium-rate number is refused next to the phones, with the loader's message; nothing is saved.
            page.fill("textarea[name=targets]", "+319001234567")
            page.fill("input[name=reason]", "the shop's mobile")
            page.click("button:has-text('Save')")
            page.wait_for_selector(".field-error")
            assert "premium-rate number" in page.inner_text("label:has(textarea[name=targets]) + .field-error")
            shot(page, "flow-edit-error")

            page.goto(f"{url}/numbers/{NUMBER}/edit")  # the form afresh, as the number is
            page.fill("textarea[name=targets]", NEW_PHONE)
            page.fill("input[name=reason]", "the shop's mobile")
            shot(page, "flow-edit")
            page.click("button:has-text('Save')")
            page.wait_for_url(re.compile(r".*/history\?saved=v[0-9]+$"))
            saved = re.search(r"saved=(v[0-9]+)", page.url)
            assert saved is not None
            version = saved.group(1)
            assert "flo@acme.example" in page.inner_text("main") and "customer" in page.inner_text("main")
            page.locator("details summary").first.click()  # the change itself, as the store keeps it
            shot(page, "flow-history")

            # A queue of hers: its own form, saved the same way (the stack's file is stored again afterwards).
            page.click("nav >> text=Queues")
            page.click("tr:has-text('e2e-answer') >> text=Change")
            assert page.input_value("textarea[name=agents]").strip() == "+31612340061"
            page.fill("input[name=wrapup_seconds]", "3")
            page.fill("input[name=reason]", "a shorter wrap-up")
            shot(page, "queue-edit")
            page.click("button:has-text('Save')")
            page.wait_for_url(re.compile(r".*/queues/e2e-answer/history\?saved=v[0-9]+$"))
            assert "a shorter wrap-up" in page.inner_text("main")
            shot(page, "queue-history")
            queue_version = page.url.rsplit("=", 1)[1]
        finally:
            browser.close()

    # Every fairline runs the new version within a second or so (the store's NOTIFY); then the call.
    assert poll(lambda: version_at(s.ports.status) == queue_version, timeout=10)  # holds the route's too
    start = messages_size(live)
    assert live.call(NUMBER, "uac_talk.xml").returncode == 0
    assert f"Called PJSIP/{NEW_PHONE}@carrier-out" in messages(live, start)
    assert f"Called PJSIP/{BUSY_PHONE}@carrier-out" not in messages(live, start)
    assert [(r["did"], r["disposition"]) for r in live.wait_cdrs(2)] == [(NUMBER, "busy"), (NUMBER, "answered")]
    author = s.psql("fairline", f"SELECT author || ' ' || role FROM config_versions WHERE version = '{version}'")
    assert author.strip() == "flo@acme.example customer"
