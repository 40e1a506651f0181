"""Queues with real SIP: sipp callers wait in fairline's queues, sipp agents answer or do not.

Each queued number first rings a phone that is unreachable at once, then its queue, except
one whose route is the queue itself (tests/e2e/fairline.yaml). Agents are the sipp phones behind the trunk: the last digit
says what they do (scenarios/uas_targets.xml). Times are the app's own, from the CDRs.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, SCENARIOS, LiveStack, poll, talk
from tests.e2e.test_reload import fairline

pytestmark = pytest.mark.e2e


def at(row: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(row[key])


def by_did(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["did"]: r for r in rows}


def logs_of(live: LiveStack, event: str) -> list[dict[str, Any]]:
    return [e for e in live.logs() if e.get("event") == event]


def test_an_agent_answers_within_the_minute_and_the_caller_talks_to_them(live: LiveStack) -> None:
    result = live.call("+31201230012", talk(live, 6), caller="+31612345678")
    assert result.returncode == 0, result.stderr
    [row] = live.wait_cdrs(1)
    assert (row["disposition"], row["queue_name"], row["queue_disposition"]) == ("answered", "e2e-answer", "answered")
    assert (row["answered_target"], row["target_kind"], row["queue_overflows"]) == ("+31612340061", "mobile", 0)
    # The agent rings 1 s before answering; the caller waited that long, not more than 3 s.
    assert Decimal("0.9") <= row["queue_wait_seconds"] <= 3
    [visit] = row["queue_visits"]
    assert (visit["queue"], visit["outcome"]) == ("e2e-answer", "answered")
    # Connected: the caller was bridged with the agent, and the agent got the caller's id.
    assert logs_of(live, "call.bridged")
    [ring] = logs_of(live, "queue.ringing")
    assert ring["agent"] == "+31612340061"


def test_a_queue_only_number_answers_the_caller_at_once_and_rings_only_the_agent(live: LiveStack) -> None:
    result = live.call("+31201230018", talk(live, 4), caller="+31612345678")
    assert result.returncode == 0, result.stderr
    [row] = live.wait_cdrs(1)
    assert (row["disposition"], row["queue_name"], row["queue_disposition"]) == ("answered", "e2e-straight", "answered")
    assert row["answered_target"] == "+31612340181"
    # Answered on entering the queue; the agent rings 1 s before answering: the whole wait.
    assert at(row, "answered_at") - at(row, "started_at") < timedelta(seconds=1)
    assert Decimal("0.9") <= row["queue_wait_seconds"] <= 3
    # No phone rang before the queue: fairline never handed the call to Dial().
    assert not logs_of(live, "call.dialing")
    [ring] = logs_of(live, "queue.ringing")
    assert ring["agent"] == "+31612340181"


@pytest.mark.slow
def test_busy_agent_caller_overflows_at_sixty_seconds_and_a_caller_without_overflow_hears_a_message(
        live: LiveStack) -> None:
    # The first caller keeps e2e-overflow's only agent busy for 75 s; the second must not be
    # offered that agent, and overflows at 60 s to +31201230006, whose phone answers.
    # At the same time, e2e-timeout (agent busy 486, no overflow) ends its caller at 60 s.
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(live.call, "+31201230013", talk(live, 75), caller="+31612345601", timeout=100)
        poll(lambda: any(e.get("queue") == "e2e-overflow" for e in logs_of(live, "queue.connected")), timeout=10)
        second = pool.submit(live.call, "+31201230013", str(SCENARIOS / "uac_answered.xml"), caller="+31612345602",
                             timeout=100)
        third = pool.submit(live.call, "+31201230014", str(SCENARIOS / "uac_answered.xml"), caller="+31612345603",
                            timeout=100)
        for call in (first, second, third):
            result = call.result()
            assert result.returncode == 0, result.stderr
    rows = {r["caller"]: r for r in live.wait_cdrs(3)}
    busy, overflowed, timed_out = rows["+31612345601"], rows["+31612345602"], rows["+31612345603"]

    assert (busy["queue_disposition"], busy["answered_target"]) == ("answered", "+31612340071")

    # The cap: 60 s after entering the queue, within a second, ringing included.
    assert 60 <= overflowed["queue_wait_seconds"] < 61
    assert (overflowed["queue_disposition"], overflowed["queue_overflows"], overflowed["queue_name"]) == (
        "overflowed", 1, "e2e-overflow")
    assert (overflowed["disposition"], overflowed["answered_target"]) == ("answered", "+31201230925")
    [visit] = overflowed["queue_visits"]
    entered = datetime.fromisoformat(visit["entered_at"])
    assert at(overflowed, "ended_at") - entered >= timedelta(seconds=62)  # then the overflow's phone talked
    rung_for_second = [e for e in logs_of(live, "queue.ringing") if e.get("call_id") == overflowed["call_id"]]
    assert rung_for_second == []  # the only agent was on a call: never offered a second one
    # While waiting, the caller heard their place in line every 20 s: at 20 s and at 40 s.
    told = [e for e in logs_of(live, "call.playing") if e.get("call_id") == overflowed["call_id"]
            and "queue-" in e.get("media", "")]
    assert len(told) == 2, told

    # The busy (486) agent is tried again every 5 s; once its next try would come after the cap, nobody can
    # answer in time and the caller is sent on then (decision 0029): in the last 5 s before the cap.
    assert 55 <= timed_out["queue_wait_seconds"] < 61
    assert (timed_out["queue_disposition"], timed_out["queue_overflows"], timed_out["hangup_cause"]) == (
        "queue_timeout", 0, 16)
    # A clear message, then the call ends cleanly: a few seconds after, not more.
    [visit] = timed_out["queue_visits"]
    ended_after = (at(timed_out, "ended_at") - datetime.fromisoformat(visit["entered_at"])).total_seconds()
    assert timed_out["queue_wait_seconds"] + 1 <= ended_after < timed_out["queue_wait_seconds"] + 10


def test_a_caller_who_hangs_up_while_queued_is_recorded_as_abandoned(live: LiveStack) -> None:
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(live.call, "+31201230015", talk(live, 8), caller="+31612345621")
        # Meanwhile `fairline queues` shows the caller waiting and the agent ringing for them.
        seen: list[dict[str, Any]] = []
        assert poll(lambda: bool(seen.extend(waiting_in(live, "e2e-abandon")) or seen), timeout=7), seen
        result = call.result()
    assert result.returncode == 0, result.stderr
    queue = seen[0]
    assert [c["caller"] for c in queue["waiting"]] == ["+31612345621"]
    assert 0 <= queue["waiting"][0]["waited_seconds"] < 8
    assert [(a["agent"], a["state"]) for a in queue["agents"]] == [("+31612340093", "ringing")]
    [row] = live.wait_cdrs(1)
    assert (row["queue_name"], row["queue_disposition"], row["answered_target"]) == (
        "e2e-abandon", "abandoned", None)
    # Answered at once (the unreachable first target fails in milliseconds), then 8 s in the queue.
    assert Decimal("7.5") <= row["queue_wait_seconds"] <= 9
    assert poll(lambda: bool(logs_of(live, "queue.abandoned")), timeout=5)


def waiting_in(live: LiveStack, name: str) -> list[dict[str, Any]]:
    """The queue `name` as `fairline queues --json` shows it, if a caller waits there."""
    shown = fairline("queues", "--json", "--spool-dir", str(live.stack.state_dir / "spool"))
    assert shown.returncode == 0, shown.stderr
    return [q for q in json.loads(shown.stdout)["queues"] if q["name"] == name and q["waiting"]]


def test_two_callers_one_agent_served_in_arrival_order_after_the_wrap_up(live: LiveStack) -> None:
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(live.call, "+31201230016", talk(live, 4), caller="+31612345611")
        poll(lambda: any(e.get("queue") == "e2e-order" for e in logs_of(live, "queue.joined")), timeout=10)
        second = pool.submit(live.call, "+31201230016", talk(live, 15), caller="+31612345612")
        for call in (first, second):
            result = call.result()
            assert result.returncode == 0, result.stderr
    rows = {r["caller"]: r for r in live.wait_cdrs(2)}
    a, b = rows["+31612345611"], rows["+31612345612"]
    [va], [vb] = a["queue_visits"], b["queue_visits"]
    assert va["entered_at"] < vb["entered_at"]
    assert (va["outcome"], vb["outcome"]) == ("answered", "answered")
    a_connected = datetime.fromisoformat(va["entered_at"]) + timedelta(seconds=float(va["waited_seconds"]))
    b_connected = datetime.fromisoformat(vb["entered_at"]) + timedelta(seconds=float(vb["waited_seconds"]))
    assert a_connected < b_connected  # first come, first served
    # The agent's wrap-up: 3 s after the first call ended, then 1 s of ringing, before the second connects.
    assert b_connected - at(a, "ended_at") >= timedelta(seconds=3.9)
    assert b_connected - at(a, "ended_at") < timedelta(seconds=6)


def test_a_queue_asking_for_ninety_seconds_is_refused_and_fairline_keeps_its_configuration(
        live: LiveStack, tmp_path: Path) -> None:
    config = tmp_path / "fairline.yaml"
    config.write_text((ROOT / "tests" / "e2e" / "fairline.yaml").read_text().replace(
        "  - name: e2e-abandon         # the agent never answers\n",
        "  - name: e2e-abandon         # the agent never answers\n    max_wait_seconds: 90\n"))
    result = fairline("reload", "--config", str(config), "--database-url", live.stack.database_url)
    assert result.returncode == 2
    assert "max_wait_seconds 90 is refused: queues may not keep callers waiting for more than one minute" in (
        result.stderr)
    assert "nothing stored" in result.stderr and not logs_of(live, "config.applied")
