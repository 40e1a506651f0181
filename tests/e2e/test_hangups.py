"""Callers who hang up at any moment of the flow: each call gets exactly one CDR, and Asterisk's own
records agree (`fairline reconcile`). Issue 14: a hang-up during a prompt used to send the call to Dial()
after the prompt, and it never ended."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import LiveStack, talk
from tests.e2e.test_reconcile import assert_reconciled
from tests.e2e.test_recording import BRITISH, GERMAN, RECORDED, caller_scenario

pytestmark = pytest.mark.e2e

ANNOUNCEMENT = "+31201234567"  # answered, hello-world, released
RINGS_FOREVER = "+31201230003"


def the_cdr_after(live: LiveStack, since: datetime) -> dict[str, object]:
    """The one CDR of the call placed since `since`, once Asterisk's records show the call too."""
    assert_reconciled(live, since, calls=1)
    rows = live.wait_cdrs(1, timeout=20)
    assert len(rows) == 1, rows
    assert not [e for e in live.logs() if e.get("event") == "shutdown.calls_left_in_asterisk"]
    return rows[0]


def test_a_caller_who_hangs_up_during_the_consent_prompt_gets_one_cdr(live: LiveStack) -> None:
    since = datetime.now(UTC)
    # Answered for the prompt (notice and "press 1", several seconds); BYE after 1 s, no key.
    result = live.call(RECORDED, caller_scenario(live, "german-gone", talk_ms=1000), caller=GERMAN)
    assert result.returncode == 0, result.stderr
    row = the_cdr_after(live, since)
    assert (row["disposition"], row["recording_mode"], row["recorded"], row["answered_target"]) == (
        "answered", "consent", False, None)
    assert not [e for e in live.logs() if e.get("event") == "call.dialing"]  # nothing rang after the hang-up


def test_a_caller_who_hangs_up_during_the_recording_notice_gets_one_cdr(live: LiveStack) -> None:
    since = datetime.now(UTC)
    result = live.call(RECORDED, "uac_cancel_early.xml", caller=BRITISH)  # CANCEL during the early-media notice
    assert result.returncode == 0, result.stderr
    row = the_cdr_after(live, since)
    assert (row["disposition"], row["recording_mode"], row["answered_at"]) == ("abandoned", "notify", None)
    assert not [e for e in live.logs() if e.get("event") == "call.dialing"]


def test_a_caller_who_hangs_up_during_an_announcement_gets_one_cdr(live: LiveStack) -> None:
    since = datetime.now(UTC)
    result = live.call(ANNOUNCEMENT, talk(live, 0.3))  # BYE while hello-world plays
    assert result.returncode == 0, result.stderr
    row = the_cdr_after(live, since)
    assert (row["disposition"], row["answered_target"]) == ("answered", None)


def test_a_caller_who_hangs_up_while_it_rings_gets_one_cdr(live: LiveStack) -> None:
    since = datetime.now(UTC)
    result = live.call(RINGS_FOREVER, "uac_cancel.xml")
    assert result.returncode == 0, result.stderr
    row = the_cdr_after(live, since)
    assert (row["disposition"], row["answered_at"]) == ("abandoned", None)
