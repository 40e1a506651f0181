"""Routing with real SIP: sipp callers -> Asterisk -> fairline decides -> Dial() -> sipp phones.

The phones' behaviour is encoded in the last digit of their number (see
scenarios/uas_targets.xml): 1 answers, 2 is busy, 3 rings forever, 4 is
unreachable, 5 answers and hangs up after 2 s. The numbers are in tests/e2e/fairline.yaml.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCENARIOS, LiveStack, poll

pytestmark = pytest.mark.e2e


def unanswered(live: LiveStack, code: int) -> str:
    """A caller scenario that expects the call to end unanswered with SIP `code`."""
    path: Path = live.stack.state_dir / f"uac_unanswered_{code}.xml"
    path.write_text((SCENARIOS / "uac_unanswered.xml").read_text().replace("[final]", str(code)))
    return str(path)


def seconds(row: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(row[end]) - datetime.fromisoformat(row[start])).total_seconds()


def only_cdr(live: LiveStack) -> dict[str, Any]:
    rows = live.wait_cdrs(1)
    assert len(rows) == 1, rows
    return rows[0]


def assert_priced_as_answered(row: dict[str, Any]) -> None:
    assert row["billable_seconds"] >= 2
    assert row["peak_seconds"] + row["offpeak_seconds"] == row["billable_seconds"]
    assert row["setup_eur"] == Decimal("0.0400")
    assert row["list_price_eur"] == row["setup_eur"] + row["usage_eur"] > Decimal("0.04")
    assert row["fair_use_eligible"] is True and row["charged_eur"] == 0  # local number, within fair use


def test_simultaneous_route_first_to_answer_wins_and_caller_ends_the_call(live: LiveStack) -> None:
    result = live.call("+31201230001", "uac_talk.xml", caller="+31612345678")
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["answered_target"], row["target_kind"]) == ("answered", "+31201230901", "fixed")
    assert (row["customer_id"], row["number_type"], row["caller"]) == ("acme", "local", "+31612345678")
    # The caller was not answered before the target (1 s of ringing), and talked 2 s.
    assert seconds(row, "started_at", "answered_at") >= 0.9
    assert seconds(row, "answered_at", "ended_at") >= 1.9
    assert_priced_as_answered(row)


def test_sequential_route_goes_on_when_the_first_target_is_busy(live: LiveStack) -> None:
    result = live.call("+31201230002", "uac_talk.xml")
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["answered_target"], row["target_kind"]) == ("answered", "+31612340011", "mobile")
    assert_priced_as_answered(row)


def test_nobody_answers_caller_hears_an_announcement_and_no_answer_is_recorded(live: LiveStack) -> None:
    result = live.call("+31201230003", unanswered(live, 480))
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["hangup_cause"], row["answered_at"]) == ("no_answer", 19, None)
    assert seconds(row, "started_at", "ended_at") >= 3  # rang for the route's 3 s, then the announcement
    assert row["list_price_eur"] == 0 and row["billable_seconds"] == 0


def test_busy_target_ends_as_busy(live: LiveStack) -> None:
    result = live.call("+31201230007", unanswered(live, 486))
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["hangup_cause"]) == ("busy", 17)


def test_unreachable_target_ends_as_unreachable(live: LiveStack) -> None:
    result = live.call("+31201230008", unanswered(live, 503))
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["hangup_cause"]) == ("unreachable", 34)


def test_caller_hanging_up_while_targets_ring_cancels_them_and_is_abandoned(live: LiveStack) -> None:
    result = live.call("+31201230003", "uac_cancel.xml")
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["answered_at"], row["list_price_eur"]) == ("abandoned", None, 0)
    assert seconds(row, "started_at", "ended_at") < 3  # cancelled at once, not after the ring time


def test_no_answer_forwards_to_another_number_whose_target_answers(live: LiveStack) -> None:
    result = live.call("+31201230005", "uac_answered.xml")  # the target hangs up after 2 s
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["did"], row["disposition"], row["answered_target"]) == ("+31201230005", "answered", "+31201230925")
    assert row["hangup_cause"] == 16


def test_outside_opening_hours_the_outside_route_rings(live: LiveStack) -> None:
    result = live.call("+31201230004", "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["disposition"], row["answered_target"]) == ("answered", "+31612340015")


def test_a_call_ringing_while_fairline_restarts_is_adopted_not_left_in_silence(live: LiveStack) -> None:
    """fairline dies (SIGKILL) while Dial() rings; the restarted fairline gets the outcome and finishes the call."""
    s = live.stack
    with ThreadPoolExecutor(1) as pool:
        ringing = pool.submit(live.call, "+31201230009", unanswered(live, 480))
        assert poll(lambda: any(e.get("event") == "call.dialing" for e in live.logs()), timeout=10)
        assert s.fairline is not None
        s.fairline.kill()
        s.fairline.wait(timeout=10)
        s.start_fairline()
        result = ringing.result(timeout=40)
    assert result.returncode == 0, result.stderr  # 480 after the announcement: never silence
    row = only_cdr(live)
    assert (row["did"], row["disposition"], row["hangup_cause"]) == ("+31201230009", "no_answer", 19)
    assert seconds(row, "started_at", "ended_at") >= 8  # started when the call arrived, not at adoption
    # Found in Dial() by the restarted fairline as it connected, and subscribed to again.
    assert [e.get("where") for e in live.logs() if e.get("event") == "call.adopted_after_restart"] == ["dialing"]


def test_the_target_sees_the_callers_own_number(live: LiveStack) -> None:
    """The target phone answers only if the INVITE it gets presents +31612345678 (else it says 503)."""
    result = live.call("+31201230010", "uac_talk.xml", caller="+31612345678")
    assert result.returncode == 0, result.stderr
    assert only_cdr(live)["answered_target"] == "+31612340056"
    # The phone's check is real: another caller id is refused by it.
    other = live.call("+31201230010", unanswered(live, 503), caller="+31612345679")
    assert other.returncode == 0, other.stderr
    assert [r["disposition"] for r in live.wait_cdrs(2)] == ["answered", "unreachable"]


def test_a_withheld_caller_id_stays_withheld_towards_the_target(live: LiveStack) -> None:
    result = live.call("+31201230011", "uac_talk.xml", caller="anonymous")
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert (row["caller"], row["answered_target"]) == (None, "+31612340057")
