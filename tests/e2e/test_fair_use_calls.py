"""What fair use counts (decision 0028), from real calls: sipp callers, Asterisk 22, fairline, PostgreSQL.

A call a phone of the customer's took is handled; a caller fairline answered only to queue
them, or to ask for consent, and whom nobody then took, is answered (and priced) but not
handled. The numbers are in tests/e2e/fairline.yaml (+3120123045x).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import LiveStack, talk
from tests.e2e.test_recording import GERMAN, caller_scenario

pytestmark = pytest.mark.e2e

ANSWERED_BY_A_PHONE = "+31201230450"
QUEUE_NOBODY_ANSWERS = "+31201230451"
CONSENT_THEN_NOBODY = "+31201230452"


def the_cdr(live: LiveStack) -> dict[str, Any]:
    [row] = live.wait_cdrs(1, timeout=20)
    return row


def test_a_call_the_phone_answered_is_handled(live: LiveStack) -> None:
    assert live.call(ANSWERED_BY_A_PHONE, talk(live, 2)).returncode == 0
    row = the_cdr(live)
    assert (row["disposition"], row["answered_target"], row["handled"], row["fair_use_eligible"]) == (
        "answered", "+31612340501", True, True)


def test_a_caller_who_gave_up_waiting_in_a_queue_is_answered_and_priced_but_not_handled(live: LiveStack) -> None:
    assert live.call(QUEUE_NOBODY_ANSWERS, talk(live, 3)).returncode == 0
    row = the_cdr(live)
    assert (row["disposition"], row["queue_disposition"], row["answered_target"]) == ("answered", "abandoned", None)
    assert row["billable_seconds"] > 0 and row["list_price_eur"] > 0  # the line was open: heavy users pay for it
    assert row["handled"] is False


def test_a_caller_answered_only_for_the_consent_prompt_is_not_handled(live: LiveStack) -> None:
    """The German caller refuses (2) during the prompt, the phone rings and never answers, the caller hangs up."""
    scenario = caller_scenario(live, "fairuse-refuses", talk_ms=4000, key="2", key_after_ms=1000)
    assert live.call(CONSENT_THEN_NOBODY, scenario, caller=GERMAN).returncode == 0
    row = the_cdr(live)
    assert (row["disposition"], row["answered_target"], row["recording_mode"], row["recorded"]) == (
        "answered", None, "consent", False)
    assert row["handled"] is False
