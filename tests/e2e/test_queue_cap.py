"""One minute per caller, in total (issue 18, decision 0029), with real SIP: sipp callers, sipp agents.

- A queue whose agents are all unreachable (last digit 4: 503) sends the caller on as soon as the last
  leg failed, not after the cap.
- A caller sent on from one queue to another is released when the minute since the first queue is over:
  measured from the CDR's queue visits (tests/e2e/fairline.yaml: 40 s, "please hold", 17 s).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.conftest import SCENARIOS, LiveStack, poll, talk

pytestmark = pytest.mark.e2e


def logs_of(live: LiveStack, event: str) -> list[dict[str, Any]]:
    return [e for e in live.logs() if e.get("event") == event]


def test_a_queue_with_only_unreachable_agents_sends_the_caller_on_within_two_seconds(live: LiveStack) -> None:
    result = live.call("+31201230601", talk(live, 4), caller="+31612345661")
    assert result.returncode == 0, result.stderr
    [row] = live.wait_cdrs(1)
    [visit] = row["queue_visits"]
    waited = Decimal(visit["waited_seconds"])
    print(f"\nsent on after {waited} s in e2e-cap-unreachable (both agents 503)")
    assert (visit["queue"], visit["outcome"]) == ("e2e-cap-unreachable", "overflowed")
    assert waited < 2
    # Then the overflow number's phone answered and the caller talked to it.
    assert (row["disposition"], row["answered_target"]) == ("answered", "+31612340621")
    failed = [e for e in logs_of(live, "queue.agent_not_answered") if e.get("call_id") == row["call_id"]]
    assert sorted(e["agent"] for e in failed) == ["+31612340604", "+31612340614"]
    assert all(e["cause"] == 34 and e["unreachable"] for e in failed), failed
    [sent_on] = [e for e in logs_of(live, "queue.no_agent_can_answer") if e.get("call_id") == row["call_id"]]
    assert (sent_on["queue"], sent_on["customer"]) == ("e2e-cap-unreachable", "acme")


@pytest.mark.slow
def test_a_caller_sent_from_queue_to_queue_is_released_when_the_minute_is_over(live: LiveStack) -> None:
    result = live.call("+31201230603", str(SCENARIOS / "uac_answered.xml"), caller="+31612345662", timeout=90)
    assert result.returncode == 0, result.stderr
    [row] = live.wait_cdrs(1)
    first, second = row["queue_visits"]
    assert [(v["queue"], v["outcome"]) for v in (first, second)] == [
        ("e2e-cap-first", "overflowed"), ("e2e-cap-second", "queue_timeout")]
    entered = datetime.fromisoformat(first["entered_at"])
    left = datetime.fromisoformat(second["entered_at"]) + timedelta(seconds=float(second["waited_seconds"]))
    in_queues = Decimal(first["waited_seconds"]) + Decimal(second["waited_seconds"])
    minute = (left - entered).total_seconds()
    print(f"\nqueue visits {first['waited_seconds']} s + {second['waited_seconds']} s = {in_queues} s in queues; "
          f"the last queue let go {minute:.3f} s after the first took the caller")
    assert in_queues <= 60
    assert 59 <= minute <= 60.5  # the second queue got what was left of the minute, and no more
    [joined] = [e for e in logs_of(live, "queue.joined") if e.get("queue") == "e2e-cap-second"]
    assert 16 < joined["left_of_minute_s"] < 18.5
    assert (row["queue_disposition"], row["hangup_cause"], row["answered_target"]) == ("queue_timeout", 16, None)
    assert poll(lambda: bool(logs_of(live, "queue.wait_cap_reached")), timeout=5)
