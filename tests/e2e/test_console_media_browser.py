"""Recordings and the greeting upload in headless Chromium, against `fairline console`: the player loads its
file under the page's CSP (no script, media from the console only), a bad upload is refused next to its
field, a good one is saved. Screenshots for docs/console.md."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.test_console_browser import CHROMIUM, DEADLINE_S, free_port, shot, sign_in
from tests.e2e.test_console_db import BOLT_NUMBER, PASSWORD
from tests.e2e.test_console_media_db import media_database as media_database  # noqa: F401  (the fixture)
from tests.e2e.test_console_media_db import sox

pytestmark = pytest.mark.e2e


@pytest.fixture
def media_console(media_database: tuple[str, Path, dict[str, Path]]) -> Iterator[tuple[str, Path]]:  # noqa: F811
    """`fairline console` over the media database, with a greetings directory of its own."""
    url, tmp_path, _ = media_database
    greetings_dir = tmp_path / "browser-greetings"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ari_app.cli", "console", "--plain-http",
                             "--listen", f"127.0.0.1:{port}", "--greetings-dir", str(greetings_dir)],
                            env={**os.environ, "DATABASE_URL": url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{address}/login", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "fairline console did not answer"
                time.sleep(0.1)
        yield address, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_customer_plays_a_recording_and_a_bad_greeting_is_refused_next_to_its_field(
    media_console: tuple[str, Path]
) -> None:
    url, tmp_path = media_console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 520})
            sign_in(page, url, "ann@acme.example", PASSWORD)
            page.wait_for_url(f"{url}/numbers")
            page.click("text=Recordings")
            page.fill("input[name=from]", "2026-12-01")
            page.fill("input[name=to]", "2026-12-07")
            page.click("button:has-text('Show')")
            page.wait_for_selector("table tbody tr")
            assert page.locator("audio").count() == 3  # the purged one has no player
            assert BOLT_NUMBER not in page.inner_text("main")
            # The browser's own player fetches the file (the page has no script; CSP: media-src 'self').
            player = page.locator("audio").first
            player.evaluate("a => a.load()")
            deadline = time.monotonic() + DEADLINE_S
            while not player.evaluate("a => a.readyState >= 1 && a.duration > 1"):  # its metadata loaded
                assert player.evaluate("a => a.error") is None
                assert time.monotonic() < deadline, "the player did not load its file"
                page.wait_for_timeout(50)
            assert player.evaluate("a => a.error") is None
            shot(page, "recordings")

            page.click("text=Greeting")
            page.set_input_files("input[name=greeting]", files=[{
                "name": "greeting.wav", "mimeType": "audio/wav", "buffer": b"This is a letter, not audio.\n" * 20}])
            page.click("button:has-text('Upload')")
            page.wait_for_selector("#greeting-error")
            assert "not an audio file" in page.inner_text("#greeting-error")
            shot(page, "greeting-refused")

            page.set_input_files("input[name=greeting]", str(sox(tmp_path / "browser-hello.wav", 2.0)))
            page.click("button:has-text('Upload')")
            page.wait_for_selector("text=Your greeting is saved as configuration version")
            assert "your own greeting" in page.inner_text("main")
        finally:
            browser.close()
