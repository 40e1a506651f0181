"""Overload shedding on the real stack (decision 0016): calls fairline sheds, and the dialplan's gate.

A shed call takes the dialplan fallback (the number's first target). The first one also
closes the gate: the global FAIRLINE_SHED_UNTIL, a Unix time until which
`[from-carrier]` sends new calls to the fallback without entering the app at all.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import LiveStack, poll
from tests.e2e.test_health import metrics
from tests.unit.test_health import value

pytestmark = pytest.mark.e2e

FIRST_TARGET_ANSWERS = "+31201230006"  # its route's first phone answers (the fallback rings only that one)
ROUTED = "fairline_calls_routed_total"


def gate(live: LiveStack) -> int | None:
    """FAIRLINE_SHED_UNTIL as Asterisk holds it, None when unset."""
    shown = live.stack.asterisk_rx("dialplan show globals")
    m = re.search(r"FAIRLINE_SHED_UNTIL=(\d*)", shown)
    return int(m.group(1) or 0) if m else None


def set_gate(live: LiveStack, until: int) -> None:
    live.stack.asterisk_rx(f"dialplan set global FAIRLINE_SHED_UNTIL {until}")


def restart_fairline(live: LiveStack) -> None:
    s = live.stack
    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=10) == 0
    s.start_fairline()


@pytest.fixture
def open_gate(live: LiveStack) -> Iterator[None]:
    """Every test leaves the gate open for the tests after it."""
    set_gate(live, 0)
    yield
    set_gate(live, 0)


def test_while_the_gate_is_closed_new_calls_ring_the_first_target_without_fairline(live: LiveStack,
                                                                                    open_gate: None) -> None:
    before = value(metrics(live), ROUTED)
    set_gate(live, int(time.time()) + 60)

    result = live.call(FIRST_TARGET_ANSWERS, "uac_answered.xml")

    assert result.returncode == 0, result.stderr  # the caller was connected, by the fallback
    assert value(metrics(live), ROUTED) == before
    assert not [e for e in live.logs() if e["event"] == "call.started"]

    set_gate(live, int(time.time()) - 1)  # a gate in the past is open: fairline routes again
    assert live.call(FIRST_TARGET_ANSWERS, "uac_answered.xml").returncode == 0
    assert value(metrics(live), ROUTED) == before + 1
    assert len(live.wait_cdrs(1)) == 1


def test_a_fairline_that_sheds_a_call_closes_the_gate_for_the_next_ones(live: LiveStack, open_gate: None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A budget of 1 ms: every call is "late", as under overload.
    monkeypatch.setenv("FAIRLINE_SHED_AFTER_MS", "1")
    restart_fairline(live)
    try:
        started = time.time()
        assert live.call(FIRST_TARGET_ANSWERS, "uac_answered.xml").returncode == 0
        until = gate(live)
        assert until is not None and started + 1 <= until <= time.time() + 3
        shown = metrics(live)
        assert (value(shown, "fairline_calls_shed_total"), value(shown, ROUTED)) == (1, 0)
        [closed] = [e for e in live.logs() if e["event"] == "call.shed_gate_closed"]
        assert closed["until"] == until

        assert poll(lambda: value(metrics(live), "fairline_shed_gate_closed") == 0, timeout=5)
        assert live.cdrs() == []  # shed calls have no fairline CDR (`fairline reconcile --import` gives them one)
    finally:
        monkeypatch.delenv("FAIRLINE_SHED_AFTER_MS")
        restart_fairline(live)
