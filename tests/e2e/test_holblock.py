"""Blocked callers and closed days on the real stack (issue 18, decision 0030), through fairline and the fallback.

The numbers are in tests/e2e/fairline.yaml (+3120123050x, phones +316123407xx, answering). Whether a
phone was rung is read from Asterisk's messages.log: Dial() logs "Called PJSIP/<phone>@carrier-out"
for each INVITE it sends.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import LiveStack, poll
from tests.e2e.test_limits import messages, messages_size
from tests.e2e.test_reconcile import settled
from tests.e2e.test_reload import fairline

pytestmark = pytest.mark.e2e

OWN_LIST = "+31201230500"  # blocks +31612347799 (busy); its customer blocks +3161234778... and withheld
ANNOUNCED = "+31201230501"  # its customer's blocked callers hear ss-noservice, then busy
CLOSED = "+31201230502"  # open all week; closed on a listed date, then +31612340721 rings
BLOCKED_CALLER = "+31612347799"
CUSTOMER_BLOCKED = "+31612347781"
FREE_CALLER = "+31612345678"


def called(live: LiveStack, start: int, phone: str) -> bool:
    return f"Called PJSIP/{phone}@carrier-out" in messages(live, start)


def blocked_lines(live: LiveStack) -> list[str]:
    return [line for line in live.stack.log("asterisk").read_text(errors="replace").splitlines()
            if "fairline-blocked: " in line]


class StoppedFairline:
    """fairline stopped (SIGTERM) for the block, started again after: calls take the dialplan fallback."""

    def __init__(self, live: LiveStack) -> None:
        self.stack = live.stack

    def __enter__(self) -> None:
        assert self.stack.fairline is not None
        self.stack.fairline.send_signal(signal.SIGTERM)
        assert self.stack.fairline.wait(timeout=10) == 0

    def __exit__(self, *_: object) -> None:
        self.stack.start_fairline()


def test_a_blocked_caller_is_refused_busy_by_fairline_and_no_phone_rings(live: LiveStack) -> None:
    since, start = datetime.now(UTC), messages_size(live)
    assert live.call(OWN_LIST, "uac_blocked_busy.xml", caller=BLOCKED_CALLER).returncode == 0  # 486
    assert live.call(OWN_LIST, "uac_blocked_busy.xml", caller=CUSTOMER_BLOCKED).returncode == 0  # the customer's list
    assert live.call(ANNOUNCED, "uac_blocked_announced.xml", caller="anonymous").returncode == 0  # 183, then 486
    rows = live.wait_cdrs(3)
    assert [(r["caller"], r["disposition"], r["hangup_cause"], r["answered_at"], r["answered_target"])
            for r in rows] == [(BLOCKED_CALLER, "blocked", 17, None, None), (CUSTOMER_BLOCKED, "blocked", 17, None, None),
                               (None, "blocked", 17, None, None)]
    assert all(r["list_price_eur"] == 0 and r["billable_seconds"] == 0 for r in rows)
    assert not called(live, start, "+31612340701") and not called(live, start, "+31612340711")

    # Anyone else gets through: the phones were there to ring.
    assert live.call(OWN_LIST, "uac_talk.xml", caller=FREE_CALLER).returncode == 0
    assert called(live, start, "+31612340701")
    assert [r["disposition"] for r in live.wait_cdrs(4)] == ["blocked"] * 3 + ["answered"]
    status, report = settled(live, since, calls=4)
    assert (status, report["matched"], report["blocked"]) == (0, 4, 0), report  # fairline's CDRs, Asterisk's records


def test_a_blocked_caller_is_refused_by_the_fallback_while_fairline_is_down(live: LiveStack) -> None:
    since, start, lines = datetime.now(UTC), messages_size(live), len(blocked_lines(live))
    with StoppedFairline(live):
        assert live.call(OWN_LIST, "uac_blocked_busy.xml", caller=BLOCKED_CALLER).returncode == 0
        assert live.call(OWN_LIST, "uac_blocked_busy.xml", caller="0031612347781").returncode == 0
        assert live.call(ANNOUNCED, "uac_blocked_announced.xml", caller="anonymous").returncode == 0
    assert not called(live, start, "+31612340701") and not called(live, start, "+31612340711")
    refused = blocked_lines(live)[lines:]
    assert len(refused) == 3 and f"fairline-blocked: {OWN_LIST} from {BLOCKED_CALLER}: a blocked caller" in refused[0]
    assert live.cdrs() == []  # fairline never saw them
    report: dict[str, Any] = {}

    def all_counted() -> bool:
        nonlocal report
        report = settled(live, since, calls=0)[1]
        return bool(report["blocked"] == 3)

    assert poll(all_counted, timeout=20), report
    assert (report["missing_in_fairline"], report["missing_in_asterisk"], report["asterisk_calls"]) == ([], [], 0)


def today_and_tomorrow() -> str:
    """Today's date range in Amsterdam, to tomorrow: a test that runs over midnight still calls on a closed day."""
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date()
    return f"{today}/{today + timedelta(days=1)}"


def reload_and_publish(live: LiveStack) -> None:
    """`fairline reload` of the stack's file; back once fairline runs it and Asterisk runs its fallback."""
    s = live.stack
    reload = fairline("reload", "--config", str(s.app_config), "--database-url", s.database_url)
    assert reload.returncode == 0, reload.stderr
    version = "v" + s.psql("fairline", "SELECT max(id) FROM config_versions").strip()

    def seen(event: str) -> bool:
        return any(e.get("event") == event and e.get("version") == version for e in live.logs())

    assert poll(lambda: seen("config.applied"), timeout=30), f"{version} never applied"
    assert poll(lambda: seen("fallback.published"), timeout=30), f"{version}'s fallback never published"


def test_a_call_on_a_listed_closed_date_takes_the_closed_route_through_fairline_and_the_fallback(
        live: LiveStack) -> None:
    s = live.stack
    original = s.app_config.read_text()
    start = messages_size(live)
    assert live.call(CLOSED, "uac_talk.xml").returncode == 0  # an ordinary day: the daytime route
    assert [r["answered_target"] for r in live.wait_cdrs(1)] == ["+31612340731"]
    try:
        s.app_config.write_text(original.replace('dates: ["2020-01-01"]', f'dates: ["{today_and_tomorrow()}"]'))
        reload_and_publish(live)

        assert live.call(CLOSED, "uac_talk.xml").returncode == 0
        assert [r["answered_target"] for r in live.wait_cdrs(2)] == ["+31612340731", "+31612340721"]

        fallback_start = messages_size(live)
        with StoppedFairline(live):
            assert live.call(CLOSED, "uac_talk.xml").returncode == 0  # the fallback knows the date too
        assert called(live, fallback_start, "+31612340721")
        assert not called(live, fallback_start, "+31612340731")
    finally:
        s.app_config.write_text(original)
        reload_and_publish(live)
    assert called(live, start, "+31612340731")
