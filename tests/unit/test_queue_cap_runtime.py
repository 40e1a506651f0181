"""The queues at run time keep the minute per caller (decision 0029): the remainder as the cap, unreachable
agents sending the caller on at once, the expected wait told with the position."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from ari_app.core import flow
from ari_app.core.queueing import Timer
from ari_app.queue_runtime import UNREACHABLE_CAUSES
from tests.unit.test_queue_runtime import ANNA, BOB, T0, Harness, config


async def test_a_caller_from_an_earlier_queue_waits_only_what_is_left_of_the_minute() -> None:
    h = Harness(config())

    h.queues.join("c1", "support", within=17.5)
    await h.settle()

    assert [t.seconds for t in h.timers.running(Timer.MAX_WAIT, "c1")] == [17.5]
    assert len(h.originated()) == 2


async def test_nothing_left_of_the_minute_sends_the_caller_on_at_once_ringing_nobody() -> None:
    h = Harness(config())

    with capture_logs() as logs:
        h.queues.join("c1", "support", within=-2.0)
        await h.settle()

    assert h.fed == [flow.QueueOverflowed("c1", T0)]
    assert h.originated() == [] and h.queues.states["support"].waiting == ()
    assert [e["event"] for e in logs if e["event"].startswith("queue.wait")] == ["queue.wait_cap_reached"]


async def test_agents_all_unreachable_send_the_caller_on_as_the_last_leg_fails() -> None:
    h = Harness(config())
    h.queues.join("c1", "support")
    anna, bob = h.leg(ANNA), h.leg(BOB)

    with capture_logs() as logs:
        h.queues.leg_destroyed(anna, h.later(0.1), cause=34)  # SIP 503
        assert h.fed == []
        h.queues.leg_destroyed(bob, h.later(0.1), cause=34)

    assert h.fed == [flow.QueueOverflowed("c1", T0 + timedelta(seconds=0.2))]
    assert h.timers.running(Timer.MAX_WAIT, "c1") == []
    [sent_on] = [e for e in logs if e["event"] == "queue.no_agent_can_answer"]
    assert (sent_on["queue"], sent_on["customer"], sent_on["waited_s"]) == ("support", "acme", 0.2)


@pytest.mark.parametrize("cause", [17, 18, 19, 21, None])
async def test_a_busy_declining_or_silent_agent_is_waited_for(cause: int | None) -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c1", "support")

    h.queues.leg_destroyed(h.leg(ANNA), h.later(0.1), cause=cause)

    assert cause not in UNREACHABLE_CAUSES
    assert h.fed == [] and h.agent_state(ANNA) == "Resting"


async def test_the_position_comes_with_the_wait_ahead_once_someone_was_answered() -> None:
    h = Harness(config(agents=(ANNA,)))
    h.queues.join("c0", "support")
    h.queues.agent_answered(h.leg(ANNA, "c0"), h.later(40))  # answered after 40 s
    h.queues.join("c1", "support")

    h.later(20)
    h.timers.fire(Timer.POSITION, "c1")

    assert h.fed[-1] == flow.PositionDue("c1", h.now, 1, 20)  # 40 - 20 s waited: "20 seconds"
