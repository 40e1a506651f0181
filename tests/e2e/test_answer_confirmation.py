"""Answer confirmation with real SIP (issue 18, decision 0031): a phone that must confirm takes the call
only when the person presses 1 (sipp sends the key as RFC 4733 DTMF); a voicemail box that answers and
says nothing does not, and the route goes on.

The phones act by the last digit of their number (scenarios/uas_targets.xml): 0 answers and never
presses a key, 1 answers and presses 1 after 1.5 s. The numbers are in tests/e2e/fairline.yaml.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import SCENARIOS, LiveStack, talk
from tests.e2e.test_reconcile import assert_reconciled
from tests.e2e.test_routing import only_cdr, seconds

pytestmark = pytest.mark.e2e

VOICEMAIL_THEN_PERSON = "+31201230700"
CONFIRMING_QUEUE = "+31201230701"


def ringing_caller(live: LiveStack) -> str:
    """uac_talk.xml, but the call fails unless the caller hears ringing (180) before the answer; each phone
    the route rings may send its own 180."""
    path: Path = live.stack.state_dir / "uac_talk_ringing.xml"
    path.write_text((SCENARIOS / "uac_talk.xml").read_text().replace(
        '<recv response="180" optional="true"/>\n  <recv response="183" optional="true"/>',
        '<recv response="180"/>\n  <label id="ringing"/>\n  <recv response="180" optional="true" next="ringing"/>\n'
        '  <recv response="183" optional="true" next="ringing"/>'))
    return str(path)


def test_a_voicemail_box_that_answers_does_not_take_the_call_the_next_phone_that_presses_1_does(
        live: LiveStack) -> None:
    since, began = datetime.now(UTC), time.monotonic()
    result = live.call(VOICEMAIL_THEN_PERSON, ringing_caller(live), timeout=60)
    took = time.monotonic() - began

    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["answered_target"], row["target_kind"]) == ("answered", "+31612340911", "mobile")
    assert (row["answer_confirmed"], row["unconfirmed_answers"]) == (True, 1)
    # The voicemail box answered after 1 s of ringing; the caller was answered only once the second phone
    # pressed 1, after the box had heard the whole prompt ("telephone number", 11 digits, "press 1") and
    # 5 s of silence.
    to_answer = seconds(row, "started_at", "answered_at")
    assert to_answer > 1 + 8 + 5, to_answer
    print(f"\ncaller answered {to_answer:.1f} s after the call came in; the call took {took:.1f} s")
    assert_reconciled(live, since, calls=1)


def test_a_queue_agent_on_an_external_phone_confirms_too(live: LiveStack) -> None:
    """Both agents ring at once: the voicemail box answers and hears the prompt, the person presses 1 and
    takes the caller; the box is hung up."""
    since = datetime.now(UTC)
    result = live.call(CONFIRMING_QUEUE, talk(live, 8), timeout=60)  # answered at once, with music on hold

    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["answered_target"], row["answer_confirmed"]) == (
        "answered", "+31612340931", True)
    assert row["queue_disposition"] == "answered"
    assert_reconciled(live, since, calls=1)
