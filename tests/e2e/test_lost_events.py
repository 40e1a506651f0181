"""Events lost while the ARI websocket is down (issue 17): no caller stranded, every call's end true or flagged.

The websocket dies silently (every packet to and from Asterisk's HTTP port dropped, as in
test_faults.py) while a call is in a phase that waits for an event; the event happens during
the cut and is lost for good (Asterisk does not replay an application's events). Once the
packets flow again fairline reconnects, looks at each call it holds in Asterisk, and drives
its flow on. Before issue 17 each of these callers stayed in silence until they hung up.
"""

from __future__ import annotations

import base64
import json
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.conftest import LiveStack, poll, talk
from tests.e2e.test_faults import events, packets_dropped
from tests.e2e.test_reconcile import assert_reconciled, reconcile, settled
from tests.e2e.test_routing import unanswered

pytestmark = pytest.mark.e2e

LONG_ANNOUNCEMENT = "+31201230019"  # tt-monkeys, 16.2 s, then the release
TT_MONKEYS_S = 16.2
RINGS_8_S = "+31201230009"  # rings a phone that never answers for 8 s, then vm-nobodyavail and 480
TWO_RING_ONE_ANSWERS = "+31201230001"


def ari(live: LiveStack, path: str) -> Any:
    secrets = live.stack.secrets()
    auth = base64.b64encode(f"{secrets['ARI_USER']}:{secrets['ARI_PASSWORD']}".encode()).decode()
    request = urllib.request.Request(live.stack.ari_url + "/ari" + path, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def caller_channel(live: LiveStack, did: str) -> dict[str, Any] | None:
    """The caller's channel for `did` while it is where it came in (from-carrier), if there is one."""
    for channel in ari(live, "/channels") or []:
        plan = channel.get("dialplan", {})
        if channel.get("id", "").endswith("-recorder") or "-agent-" in channel.get("id", ""):
            continue
        if plan.get("exten") == did:
            return dict(channel)
    return None


def in_dial(live: LiveStack, *, answered: bool = False) -> int:
    """How many callers are in fairline-dial's Dial() (answered: and talking to a phone that answered)."""
    return sum(1 for c in ari(live, "/channels") or []
               if c.get("dialplan", {}).get("context") == "fairline-dial" and c["dialplan"].get("app_name") == "Dial"
               and (c.get("state") == "Up" or not answered))


def cut_until(live: LiveStack, after: float) -> None:
    """Drop ARI's packets until fairline noticed (its pings) and at least until monotonic time `after`."""
    logs_before = len(live.logs())
    with packets_dropped(live.stack.ports.http, f"fairline-lost-{live.stack.name}"):
        assert poll(lambda: events(live.logs()[logs_before:], "ari.disconnected"), timeout=20), \
            "fairline did not notice the dead websocket"
        while time.monotonic() < after:
            time.sleep(0.1)
    assert poll(lambda: events(live.logs()[logs_before:], "ari.connected"), timeout=20), "no reconnect"


def call_in_background(live: LiveStack, did: str, scenario: str) -> tuple[ThreadPoolExecutor, Future[Any]]:
    pool = ThreadPoolExecutor(max_workers=1)
    return pool, pool.submit(live.call, did, scenario, timeout=90)


def missed(live: LiveStack, what: str) -> list[dict[str, Any]]:
    return [e for e in events(live.logs(), "call.missed_while_disconnected") if e.get("missed") == what]


def test_an_announcement_that_ended_during_the_cut_releases_the_caller_after_the_reconnect(live: LiveStack) -> None:
    since = datetime.now(UTC)
    pool, caller = call_in_background(live, LONG_ANNOUNCEMENT, "uac_answered.xml")
    with pool:
        assert poll(lambda: (c := caller_channel(live, LONG_ANNOUNCEMENT)) is not None
                    and ari(live, f"/playbacks/{c['id']}-announcement") is not None, timeout=15)
        playing_since = time.monotonic()
        cut_until(live, after=playing_since + TT_MONKEYS_S + 1)  # the announcement ends while nobody listens
        result = caller.result(timeout=60)
    assert result.returncode == 0, result.stderr  # released (BYE), not left in silence
    assert missed(live, "PlaybackDone")
    [row] = live.wait_cdrs(1)
    assert (row["did"], row["disposition"], row["end_estimated"]) == (LONG_ANNOUNCEMENT, "answered", False)
    assert_reconciled(live, since, calls=1)


def test_a_dial_that_returned_during_the_cut_goes_on_with_the_route_after_the_reconnect(live: LiveStack) -> None:
    since = datetime.now(UTC)
    pool, caller = call_in_background(live, RINGS_8_S, unanswered(live, 480))
    with pool:
        assert poll(lambda: in_dial(live), timeout=15)
        dialing_since = time.monotonic()
        cut_until(live, after=dialing_since + 8 + 1)  # Dial() gives up while nobody listens
        result = caller.result(timeout=60)
    assert result.returncode == 0, result.stderr  # the no-answer announcement, then 480: as without the cut
    assert missed(live, "DialReturned")
    [row] = live.wait_cdrs(1)
    assert (row["did"], row["disposition"]) == (RINGS_8_S, "no_answer")
    assert_reconciled(live, since, calls=1)


def test_a_call_that_ended_during_the_cut_ends_when_asterisk_says(live: LiveStack) -> None:
    since = datetime.now(UTC)
    pool, caller = call_in_background(live, TWO_RING_ONE_ANSWERS, talk(live, 5))
    with pool:
        assert poll(lambda: in_dial(live, answered=True) == 1, timeout=15)
        cut_until(live, after=time.monotonic() + 6)  # the caller hangs up while nobody listens
        result = caller.result(timeout=60)
        hung_up = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    [row] = live.wait_cdrs(1)
    ended = datetime.fromisoformat(row["ended_at"])
    assert row["end_estimated"] is False and row["disposition"] == "answered"
    talked = (ended - datetime.fromisoformat(row["answered_at"])).total_seconds()
    assert 4.5 <= talked <= 6.5, talked  # Asterisk's own end, not the reconnect's (about 8 s or more)
    assert ended < hung_up
    assert_reconciled(live, since, calls=1)


def test_answered_calls_when_asterisk_is_killed_end_at_the_kill_flagged_estimated(live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    pool = ThreadPoolExecutor(max_workers=2)
    with pool:
        callers = [pool.submit(live.call, TWO_RING_ONE_ANSWERS, talk(live, 20), timeout=90) for _ in range(2)]
        assert poll(lambda: in_dial(live, answered=True) == 2, timeout=20)
        assert s.asterisk is not None
        killed_at = datetime.now(UTC)
        s.asterisk.send_signal(signal.SIGKILL)  # no CDR of its own for these calls: it never gets to write one
        s.asterisk.wait(timeout=10)
        s.asterisk = None
        s.start_asterisk()
        for c in callers:
            c.result(timeout=120)  # sipp gives up on its dead call; what matters is the CDR
    rows = live.wait_cdrs(2, timeout=30)
    assert len(rows) == 2
    for row in rows:
        assert row["end_estimated"] is True, row
        assert abs((datetime.fromisoformat(row["ended_at"]) - killed_at).total_seconds()) <= 2, row
    # The restarted Asterisk serves the next call (and its CDR file has a record again) ...
    assert live.call("+31201234567", "uac_answered.xml").returncode == 0
    assert len(live.wait_cdrs(3)) == 3
    # ... and the two calls it died with, before writing its records of them, are counted apart: no difference.
    status, report = settled(live, since, calls=1)
    assert (status, report["lost_with_asterisk"], report["missing_in_fairline"], report["missing_in_asterisk"],
            report["matched"]) == (0, 2, [], [], 1)


QUEUE_NOBODY_ANSWERS = "+31201230015"  # its phone unreachable, then queue e2e-abandon, whose agent never answers


def test_stopping_fairline_hands_queued_callers_back_to_the_dialplan(live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    pool, caller = call_in_background(live, QUEUE_NOBODY_ANSWERS, "uac_answered.xml")
    with pool:
        assert poll(lambda: events(live.logs(), "queue.joined"), timeout=15)
        assert s.fairline is not None
        s.fairline.send_signal(signal.SIGTERM)
        try:
            assert s.fairline.wait(timeout=15) == 0
            # The number's fallback rings its first phone (unreachable) and hangs up: the caller is released
            # at once, not held in Stasis() with nobody left to end the queue's minute.
            result = caller.result(timeout=30)
        finally:
            s.start_fairline()
    assert result.returncode == 0, result.stderr
    [handed] = events(live.logs(), "call.handed_back")
    assert handed["phase"] == "queued"
    assert live.cdrs() == []  # fairline no longer had the call; Asterisk's record of it is imported
    status, report = settled(live, since, calls=1)
    assert [m["did"] for m in report["missing_in_fairline"]] == [QUEUE_NOBODY_ANSWERS]
    imported = reconcile(live, since, "--import")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert_reconciled(live, since, calls=1)


AGENT_TALKS_15_S = "+31201230020"  # straight into queue e2e-long-talk: its agent answers, talks 15 s, hangs up


def test_an_agent_who_hung_up_during_the_cut_releases_the_caller_after_the_reconnect(live: LiveStack) -> None:
    since = datetime.now(UTC)
    pool, caller = call_in_background(live, AGENT_TALKS_15_S, "uac_answered.xml")
    with pool:
        assert poll(lambda: events(live.logs(), "queue.connected"), timeout=20)
        connected = time.monotonic()
        cut_until(live, after=connected + 15 + 1)  # the agent hangs up while nobody listens
        result = caller.result(timeout=60)
    assert result.returncode == 0, result.stderr  # released (BYE), not left alone in the bridge
    assert missed(live, "agent hang-up")
    [row] = live.wait_cdrs(1)
    assert (row["did"], row["disposition"], row["queue_disposition"]) == (AGENT_TALKS_15_S, "answered", "answered")
    assert_reconciled(live, since, calls=1)
