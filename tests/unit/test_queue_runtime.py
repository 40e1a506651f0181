"""The queues at run time: the queue core driven with a fake ARI, a fake clock and timers fired by hand.

What matters to callers and agents: who is rung (and with what request), that the call flow
hears about connections, positions and the cap, and that no agent leg is left ringing or
talking when its caller is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ari_app.core import flow
from ari_app.core.model import AnswerConfirmation, Config, Customer, ForwardTo, Queue
from ari_app.errors import AriError, ChannelGone
from ari_app.queue_runtime import Queues
from ari_app.core.queueing import QueueSpec, RingStrategy, Timer
from ari_app.commands.queues_cli import render
from tests.unit.test_runtime import FakeAri, turn_until

T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
ANNA, BOB = "+31612345601", "+31612345602"
CALLER = "+31201112233"


class FakeTimer:
    def __init__(self, seconds: float, fire: Callable[[], None]) -> None:
        self.seconds, self.fire, self.cancelled = seconds, fire, False

    def cancel(self) -> None:
        self.cancelled = True

    def is_(self, name: Timer, key: str) -> bool:
        return isinstance(self.fire, functools.partial) and self.fire.args[1:] == (name, key)


class Timers:
    """Timers the test fires by hand, as the clock says."""

    def __init__(self) -> None:
        self.all: list[FakeTimer] = []

    def __call__(self, seconds: float, fire: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(seconds, fire)
        self.all.append(timer)
        return timer

    def running(self, name: Timer, key: str) -> list[FakeTimer]:
        return [t for t in self.all if not t.cancelled and t.is_(name, key)]

    def fire(self, name: Timer, key: str) -> None:
        [timer] = self.running(name, key)
        timer.cancelled = True
        timer.fire()

    def fire_immediate(self) -> None:
        """The work put off to the next loop turn (scheduled in 0 s)."""
        for timer in [t for t in self.all if t.seconds == 0 and not t.cancelled]:
            timer.cancelled = True
            timer.fire()


def config(strategy: RingStrategy = RingStrategy.RINGALL, agents: tuple[str, ...] = (ANNA, BOB),
           **queues: Queue) -> Config:
    support = Queue("acme", QueueSpec("support", agents, strategy, ring_seconds=15, wrapup_seconds=5),
                    ForwardTo("+31201234568"))
    return Config(customers={"acme": Customer("acme", "Acme BV")}, numbers={},
                  queues={"support": support, **queues}, confirmation=AnswerConfirmation(mobiles=False))


class Harness:
    def __init__(self, cfg: Config, ari: FakeAri | None = None, status_file: Path | None = None) -> None:
        self.ari = ari or FakeAri()
        self.now = T0
        self.timers = Timers()
        self.fed: list[flow.QueueEvent] = []
        self.queues = Queues(self.ari, cfg, self.fed.append, lambda call_id: CALLER, status_file=status_file,  # type: ignore[arg-type]
                             clock=lambda: self.now, schedule=self.timers)

    def later(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def originated(self) -> list[dict[str, str]]:
        return [p for m, path, p in self.ari.requests if (m, path) == ("POST", "/channels") and p is not None]

    def hung_up(self) -> list[str]:
        return [path.removeprefix("/channels/") for m, path, _ in self.ari.requests if m == "DELETE"]

    def leg(self, agent: str, call_id: str = "c1") -> str:
        return next(c for c, leg in self.queues.legs.items() if leg.agent == agent and leg.call_id == call_id)

    def agent_state(self, agent: str, queue: str = "support") -> str:
        return type(self.queues.states[queue].agent(agent).status).__name__

    async def settle(self) -> None:
        await turn_until(lambda: not self.queues._tasks, "the queue's requests")


async def test_joining_rings_every_free_agent_into_the_app_with_the_callers_id() -> None:
    h = Harness(config())

    h.queues.join("c1", "support")
    await h.settle()

    assert h.originated() == [
        {"endpoint": f"PJSIP/{agent}@carrier-out", "app": "fairline", "appArgs": "queue-agent",
         "channelId": h.leg(agent), "timeout": "15", "originator": "c1", "callerId": CALLER}
        for agent in (ANNA, BOB)]
    assert h.timers.running(Timer.MAX_WAIT, "c1")[0].seconds == 60


async def test_an_agent_who_must_confirm_is_rung_through_fairline_confirm_with_time_for_the_prompt() -> None:
    """Decision 0031: the agent's leg comes up (and into the app) only once the agent pressed 1."""
    h = Harness(dataclasses.replace(config(), confirmation=AnswerConfirmation()))

    h.queues.join("c1", "support")
    await h.settle()

    assert [(o["endpoint"], o["timeout"]) for o in h.originated()] == [
        (f"Local/{agent}-15@fairline-confirm/n", "45") for agent in (ANNA, BOB)]


async def test_first_agent_to_answer_is_connected_and_the_others_stop_ringing() -> None:
    h = Harness(config())
    h.queues.join("c1", "support")
    anna, bob = h.leg(ANNA), h.leg(BOB)

    h.queues.agent_answered(bob, h.later(4))
    await h.settle()

    assert h.fed == [flow.QueueConnected("c1", T0 + timedelta(seconds=4), BOB, bob)]
    assert h.hung_up() == [anna]
    assert (h.agent_state(BOB), h.agent_state(ANNA)) == ("Busy", "Free")
    assert h.timers.running(Timer.MAX_WAIT, "c1") == []


async def test_an_agent_who_does_not_answer_rests_and_the_caller_keeps_waiting() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")

    h.queues.leg_destroyed(h.leg(ANNA), h.later(15), cause=19)

    assert h.agent_state(ANNA) == "Resting"
    assert h.fed == []
    h.timers.fire(Timer.RETRY, ANNA)
    await h.settle()
    assert len(h.originated()) == 2  # rung again after the rest


async def test_the_cap_sends_the_caller_on_and_hangs_up_the_ringing_agents() -> None:
    h = Harness(config())
    h.queues.join("c1", "support")
    legs = [h.leg(ANNA), h.leg(BOB)]

    h.later(60)
    h.timers.fire(Timer.MAX_WAIT, "c1")
    await h.settle()

    assert h.fed == [flow.QueueOverflowed("c1", T0 + timedelta(seconds=60))]
    assert sorted(h.hung_up()) == sorted(legs)
    assert h.queues.legs == {} and h.queues.states["support"].waiting == ()


async def test_a_caller_who_hangs_up_while_waiting_is_abandoned_and_nothing_keeps_ringing() -> None:
    h = Harness(config())
    h.queues.join("c1", "support")
    legs = [h.leg(ANNA), h.leg(BOB)]

    with capture_logs() as logs:
        h.queues.caller_gone("c1", h.later(7))
    await h.settle()

    assert sorted(h.hung_up()) == sorted(legs)
    assert [e["waited_s"] for e in logs if e["event"] == "queue.abandoned"] == [7.0]
    assert h.timers.running(Timer.MAX_WAIT, "c1") == []


async def test_caller_gone_while_connected_hangs_up_the_agent_who_then_wraps_up() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")
    anna = h.leg(ANNA)
    h.queues.agent_answered(anna, h.later(3))

    h.queues.caller_gone("c1", h.later(30))
    await h.settle()

    assert h.hung_up() == [anna]
    assert h.agent_state(ANNA) == "WrapUp"
    assert h.timers.running(Timer.WRAPUP, ANNA)[0].seconds == 5


async def test_agent_hanging_up_tells_the_flow_and_the_agent_wraps_up() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")
    anna = h.leg(ANNA)
    h.queues.agent_answered(anna, h.later(3))

    h.queues.leg_destroyed(anna, h.later(30), cause=16)

    assert h.fed[-1] == flow.AgentHungUp("c1", T0 + timedelta(seconds=33))
    assert h.agent_state(ANNA) == "WrapUp"


async def test_the_next_caller_waits_for_the_wrap_up() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")
    h.queues.join("c2", "support")
    h.queues.agent_answered(h.leg(ANNA), h.later(3))
    h.queues.caller_gone("c1", h.later(30))
    await h.settle()
    assert len(h.originated()) == 1

    h.timers.fire(Timer.WRAPUP, ANNA)
    await h.settle()

    assert [p["originator"] for p in h.originated()] == ["c1", "c2"]


async def test_an_agent_on_a_call_of_another_queue_is_not_offered_a_second_one() -> None:
    sales = Queue("acme", QueueSpec("sales", (ANNA,), RingStrategy.RINGALL, ring_seconds=15, wrapup_seconds=0))
    h = Harness(config(agents=(ANNA,), sales=sales))
    h.queues.join("c1", "support")
    h.queues.agent_answered(h.leg(ANNA), h.later(3))

    h.queues.join("c2", "sales")
    h.timers.fire_immediate()
    await h.settle()

    assert [p["originator"] for p in h.originated()] == ["c1"]
    assert h.agent_state(ANNA, "sales") == "Resting"


async def test_a_failed_ring_request_counts_as_no_answer() -> None:
    ari = FakeAri(failures={("POST", "/channels"): AriError("POST", "/channels", 500, "boom")})
    h = Harness(config(agents=(ANNA,)), ari)

    with capture_logs() as logs:
        h.queues.join("c1", "support")
        await h.settle()

    assert h.agent_state(ANNA) == "Resting"
    assert h.queues.legs == {}
    assert any(e["event"] == "queue.ring_failed" for e in logs)


async def test_an_answer_nobody_waits_for_is_hung_up() -> None:
    h = Harness(config(agents=(ANNA,)))

    h.queues.agent_answered("left-from-an-earlier-run", h.later(1))
    await asyncio.sleep(0)

    assert h.hung_up() == ["left-from-an-earlier-run"]


async def test_an_agent_answering_just_after_the_caller_left_is_hung_up() -> None:
    ari = FakeAri()
    h = Harness(config(agents=(ANNA,)), ari)
    h.queues.join("c1", "support")
    anna = h.leg(ANNA)
    gate = ari.gates[("DELETE", f"/channels/{anna}")] = asyncio.Event()
    h.queues.caller_gone("c1", h.later(5))  # the cancel is on its way...
    h.queues.legs[anna] = h.queues.legs.get(anna) or _leg(anna)  # ...but the answer came first
    gate.set()

    h.queues.agent_answered(anna, h.later(0.01))
    await h.settle()

    assert h.fed == [] and h.hung_up().count(anna) >= 1 and anna not in h.queues.legs


def _leg(channel: str) -> Any:
    from ari_app.queue_runtime import Leg
    return Leg(channel, "support", "c1", ANNA)


async def test_ring_failure_for_a_gone_leg_does_not_count_twice() -> None:
    ari = FakeAri(failures={("DELETE", "/channels/x"): ChannelGone("DELETE", "/channels/x", 404, "gone")})
    h = Harness(config(agents=(ANNA,)), ari)
    h.queues.agent_answered("x", h.later(1))
    await asyncio.sleep(0)
    assert h.hung_up() == ["x"]


async def test_reload_keeps_the_callers_and_a_removed_queue_runs_until_idle() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")

    h.queues.reload(Config(customers={}, numbers={}, queues={}))
    assert [c.call_id for c in h.queues.states["support"].waiting] == ["c1"]

    h.queues.caller_gone("c1", h.later(5))
    await h.settle()
    assert "support" not in h.queues.states


async def test_reload_offers_a_newly_added_agent_to_the_waiting_caller() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")

    h.queues.reload(config(agents=(ANNA, BOB)))
    await h.settle()

    assert [p["endpoint"] for p in h.originated()] == [f"PJSIP/{ANNA}@carrier-out", f"PJSIP/{BOB}@carrier-out"]


async def test_status_file_shows_waiting_callers_and_agents_for_fairline_queues(tmp_path: Path) -> None:
    status = tmp_path / "queues.json"
    h = Harness(config(agents=(ANNA, BOB), strategy=RingStrategy.ROUNDROBIN), status_file=status)
    h.queues.join("c1", "support")
    h.queues.join("c2", "support")
    h.queues.agent_answered(h.leg(ANNA), h.later(2))
    write = [t for t in h.timers.all if t.seconds > 0 and getattr(t.fire, "__name__", "") == "_write_status"]
    write[0].fire()

    written = json.loads(status.read_text())
    [support] = written["queues"]
    assert [c["call_id"] for c in support["waiting"]] == ["c2"]
    assert [(a["agent"], a["state"], a.get("call_id")) for a in support["agents"]] == [
        (ANNA, "busy", "c1"), (BOB, "ringing", "c2")]
    for q in support["waiting"]:
        q["waited_seconds"] = 12.0
    for a in support["agents"]:
        a.setdefault("in_config", True)
    shown = render(written["queues"])
    assert "queue support (acme): 1 waiting, roundrobin, wait cap 60 s" in shown
    assert f"  1. {CALLER:<16} waiting  12.0 s   call c2" in shown
    assert f"  agent {ANNA:<16} busy (call c1)" in shown


@pytest.fixture(autouse=True)
def _no_real_loop_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every timer here is a FakeTimer: a real loop timer would be a test that waits on the wall clock."""
    monkeypatch.setattr("ari_app.queue_runtime.loop_timer", _refuse)


def _refuse(*_: Any) -> Any:
    raise AssertionError("a real timer was started")
