"""Overload shedding on the real stack (decision 0016): calls fairline sheds, and the dialplan's share.

A shed call takes the dialplan fallback (the number's first target). It also halves the
global FAIRLINE_ADMIT, the share of new calls (percent) `[from-carrier]` lets into the app;
the others take the fallback without entering the app at all.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import LiveStack
from tests.e2e.test_health import metrics
from tests.unit.test_health import value

pytestmark = [pytest.mark.e2e, pytest.mark.alone]  # make test runs it with no other test beside it

FIRST_TARGET_ANSWERS = "+31201230006"  # its route's first phone answers (the fallback rings only that one)
ROUTED = "fairline_calls_routed_total"


def admitted(live: LiveStack) -> int | None:
    """FAIRLINE_ADMIT as Asterisk holds it, None when unset."""
    m = re.search(r"FAIRLINE_ADMIT=(\d+)", live.stack.asterisk_rx("dialplan show globals"))
    return int(m.group(1)) if m else None


def admit(live: LiveStack, percent: int) -> None:
    live.stack.asterisk_rx(f"dialplan set global FAIRLINE_ADMIT {percent}")


def restart_fairline(live: LiveStack) -> None:
    s = live.stack
    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=10) == 0
    s.start_fairline()
    # Asterisk lists the app as soon as its websocket is up; fairline then sets the share (on_connect).
    deadline = time.monotonic() + 10
    while admitted(live) != 100 and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def all_admitted(live: LiveStack) -> Iterator[None]:
    """Every test leaves every call admitted for the tests after it."""
    yield
    admit(live, 100)


def test_calls_the_share_keeps_out_ring_the_first_target_without_fairline(live: LiveStack,
                                                                          all_admitted: None) -> None:
    assert admitted(live) == 100  # set by the dialplan, and by fairline on connecting
    before = value(metrics(live), ROUTED)
    admit(live, 0)

    result = live.call(FIRST_TARGET_ANSWERS, "uac_answered.xml")

    assert result.returncode == 0, result.stderr  # the caller was connected, by the fallback
    assert value(metrics(live), ROUTED) == before
    assert not [e for e in live.logs() if e["event"] == "call.started"]

    admit(live, 100)
    assert live.call(FIRST_TARGET_ANSWERS, "uac_answered.xml").returncode == 0
    assert value(metrics(live), ROUTED) == before + 1
    assert len(live.wait_cdrs(1)) == 1


def test_a_fairline_that_sheds_a_call_halves_the_share_and_a_restart_restores_it(
        live: LiveStack, all_admitted: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A budget of 1 ms: every call is "late", as under overload.
    monkeypatch.setenv("FAIRLINE_SHED_AFTER_MS", "1")
    restart_fairline(live)
    try:
        assert live.call(FIRST_TARGET_ANSWERS, "uac_answered.xml").returncode == 0
        assert admitted(live) == 50
        shown = metrics(live)
        assert (value(shown, "fairline_calls_shed_total"), value(shown, ROUTED)) == (1, 0)
        assert value(shown, "fairline_admitted_percent") == 50
        assert [e["percent"] for e in live.logs() if e["event"] == "call.admission"][-1] == 50
        assert live.cdrs() == []  # shed calls have no fairline CDR (`fairline reconcile --import` gives them one)
    finally:
        monkeypatch.delenv("FAIRLINE_SHED_AFTER_MS")
        restart_fairline(live)
    assert admitted(live) == 100
