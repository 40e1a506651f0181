"""The queue: a pure state machine from (spec, state, event) to (next state, actions), and the promises it keeps."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.core.queueing import (
    FREE,
    RETRY_SECONDS,
    Abandoned,
    Action,
    Agent,
    AgentAnswered,
    AgentNoAnswer,
    AnnouncePosition,
    Busy,
    CallEnded,
    CallerJoined,
    CallerLeft,
    CancelRinging,
    CancelTimer,
    Connect,
    Event,
    Free,
    Overflow,
    QueueSpec,
    QueueState,
    Reloaded,
    Resting,
    RingAgents,
    Ringing,
    RingStrategy,
    StartTimer,
    Timer,
    TimerFired,
    WrapUp,
    step,
)

A, B, C = "+31600000001", "+31600000002", "+31600000003"
STRANGER = "+31600000009"  # in no queue
T0 = datetime(2026, 11, 25, 13, 17, 15, tzinfo=UTC)
MW, POS, WRAP, RETRY = Timer.MAX_WAIT, Timer.POSITION, Timer.WRAPUP, Timer.RETRY


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def queue(strategy: RingStrategy = RingStrategy.RINGALL, agents: tuple[str, ...] = (A, B, C), *,
          wrapup: int = 10, max_wait: int = 60, every: int = 20) -> QueueSpec:
    return QueueSpec("support", agents, strategy, ring_seconds=15, wrapup_seconds=wrapup,
                     max_wait_seconds=max_wait, position_every_seconds=every)


RINGALL = queue()
ROUNDROBIN = queue(RingStrategy.ROUNDROBIN)
LONGESTIDLE = queue(RingStrategy.LONGESTIDLE, (A, B), wrapup=0)
ONE = queue(agents=(A,))
ONE_NO_WRAPUP = queue(agents=(A,), wrapup=0)


def join(call: str, t: float) -> CallerJoined:
    return CallerJoined(call, at(t))


def left(call: str, t: float) -> CallerLeft:
    return CallerLeft(call, at(t))


def answered(call: str, agent: str, t: float) -> AgentAnswered:
    return AgentAnswered(call, agent, at(t))


def no_answer(call: str, agent: str, t: float) -> AgentNoAnswer:
    return AgentNoAnswer(call, agent, at(t))


def ended(call: str, agent: str, t: float) -> CallEnded:
    return CallEnded(call, agent, at(t))


def fired(name: Timer, key: str, t: float) -> TimerFired:
    return TimerFired(name, key, at(t))


def timers(call: str, max_wait: int = 60, every: int = 20) -> list[Action]:
    return [StartTimer(MW, call, max_wait), StartTimer(POS, call, every)]


def run(spec: QueueSpec, events: list[Event], state: QueueState = QueueState()) -> tuple[QueueState, list[Action]]:
    """Feed `events` in order; the final state and every action asked for."""
    asked: list[Action] = []
    for event in events:
        state, actions = step(spec, state, event)
        asked += actions
    return state, asked


# ---- (spec, history, event) -> actions

TRANSITIONS = [
    # A caller joins
    pytest.param(RINGALL, [], join("c1", 0), [*timers("c1"), RingAgents("c1", (A, B, C), 15)],
                 id="first-caller-rings-every-free-agent"),
    pytest.param(ROUNDROBIN, [], join("c1", 0), [*timers("c1"), RingAgents("c1", (A,), 15)],
                 id="round-robin-rings-the-first-agent"),
    pytest.param(ROUNDROBIN, [join("c1", 0)], join("c2", 1), [*timers("c2"), RingAgents("c2", (B,), 15)],
                 id="round-robin-gives-a-second-free-agent-to-the-second-caller"),
    pytest.param(RINGALL, [join("c1", 0)], join("c2", 1), timers("c2"),
                 id="ring-all-second-caller-waits-while-the-first-rings-everyone"),
    pytest.param(ONE, [join("c1", 0)], join("c2", 1), timers("c2"), id="caller-finding-no-free-agent-only-waits"),
    pytest.param(queue(max_wait=20, every=20), [], join("c1", 0),
                 [StartTimer(MW, "c1", 20), RingAgents("c1", (A, B, C), 15)],
                 id="no-position-timer-when-the-cap-comes-first"),
    pytest.param(queue(max_wait=45), [], join("c1", 0), [*timers("c1", 45), RingAgents("c1", (A, B, C), 15)],
                 id="shorter-cap-is-honoured"),
    # Round robin and longest idle choose
    pytest.param(ROUNDROBIN, [join("c1", 0), answered("c1", A, 1), ended("c1", A, 2), fired(WRAP, A, 12)],
                 join("c2", 13), [*timers("c2"), RingAgents("c2", (B,), 15)],
                 id="round-robin-resumes-after-the-last-agent-rung"),
    pytest.param(ROUNDROBIN, [join("c1", 0), join("c2", 0), join("c3", 0), answered("c1", A, 1),
                              ended("c1", A, 2), fired(WRAP, A, 12)],
                 join("c4", 13), [*timers("c4"), RingAgents("c4", (A,), 15)], id="round-robin-wraps-around"),
    pytest.param(LONGESTIDLE, [join("c1", 0), answered("c1", A, 1), ended("c1", A, 2)],
                 join("c2", 3), [*timers("c2"), RingAgents("c2", (B,), 15)],
                 id="longest-idle-offers-an-agent-without-a-call-first"),
    pytest.param(LONGESTIDLE, [join("c1", 0), join("c2", 0), answered("c1", A, 1), answered("c2", B, 1),
                               ended("c2", B, 5), ended("c1", A, 8)],
                 join("c3", 9), [*timers("c3"), RingAgents("c3", (B,), 15)],
                 id="longest-idle-offers-the-agent-whose-call-ended-first"),
    pytest.param(LONGESTIDLE, [join("c1", 0), join("c2", 0), answered("c1", A, 1), answered("c2", B, 1),
                               ended("c1", A, 5), ended("c2", B, 8)],
                 join("c3", 9), [*timers("c3"), RingAgents("c3", (A,), 15)],
                 id="longest-idle-ignores-configuration-order"),
    # An agent does not answer
    pytest.param(ROUNDROBIN, [join("c1", 0)], no_answer("c1", A, 15),
                 [StartTimer(RETRY, A, 5), RingAgents("c1", (B,), 15)], id="round-robin-hunts-on-to-the-next-agent"),
    pytest.param(queue(RingStrategy.LONGESTIDLE), [join("c1", 0)], no_answer("c1", A, 15),
                 [StartTimer(RETRY, A, 5), RingAgents("c1", (B,), 15)], id="longest-idle-hunts-on-to-the-next-agent"),
    pytest.param(RINGALL, [join("c1", 0)], no_answer("c1", A, 3), [StartTimer(RETRY, A, 5)],
                 id="ring-all-agent-that-failed-rests-while-the-others-ring"),
    pytest.param(ONE, [join("c1", 0)], no_answer("c1", A, 15), [StartTimer(RETRY, A, 5)],
                 id="only-agent-failed-caller-waits-for-its-rest"),
    pytest.param(ONE, [join("c1", 0), no_answer("c1", A, 15)], fired(RETRY, A, 20), [RingAgents("c1", (A,), 15)],
                 id="only-agent-is-rung-again-after-its-rest"),
    pytest.param(queue(RingStrategy.ROUNDROBIN, (A, B)), [join("c1", 0), no_answer("c1", A, 2)], join("c2", 3),
                 timers("c2"), id="resting-agent-is-not-offered-to-a-new-caller"),
    # An agent answers
    pytest.param(RINGALL, [join("c1", 0)], answered("c1", B, 4),
                 [Connect("c1", B), CancelRinging("c1"), CancelTimer(MW, "c1"), CancelTimer(POS, "c1")],
                 id="ring-all-answer-connects-and-stops-the-other-phones"),
    pytest.param(ROUNDROBIN, [join("c1", 0)], answered("c1", A, 4),
                 [Connect("c1", A), CancelTimer(MW, "c1"), CancelTimer(POS, "c1")],
                 id="round-robin-answer-has-no-other-phone-to-stop"),
    pytest.param(RINGALL, [join("c1", 0), join("c2", 1)], answered("c1", B, 4),
                 [Connect("c1", B), CancelRinging("c1"), CancelTimer(MW, "c1"), CancelTimer(POS, "c1"),
                  RingAgents("c2", (A, C), 15)],
                 id="phones-an-answer-frees-go-to-the-next-caller"),
    pytest.param(ROUNDROBIN, [join("c1", 0)], answered("c1", A, 60.5),
                 [Connect("c1", A), CancelTimer(MW, "c1"), CancelTimer(POS, "c1")],
                 id="answer-after-the-cap-before-its-timer-still-connects"),
    # A connected call ends; wrap-up
    pytest.param(RINGALL, [join("c1", 0), answered("c1", A, 4)], ended("c1", A, 30), [StartTimer(WRAP, A, 10)],
                 id="end-of-a-call-starts-the-wrap-up"),
    pytest.param(ONE, [join("c1", 0), answered("c1", A, 1), join("c2", 2), join("c3", 3)], ended("c1", A, 20),
                 [StartTimer(WRAP, A, 10)], id="agent-in-wrap-up-is-not-offered"),
    pytest.param(ONE, [join("c1", 0), answered("c1", A, 1), join("c2", 2), join("c3", 3), ended("c1", A, 20)],
                 fired(WRAP, A, 30), [RingAgents("c2", (A,), 15)],
                 id="after-wrap-up-the-agent-takes-the-longest-waiting-caller"),
    pytest.param(ONE_NO_WRAPUP, [join("c1", 0), answered("c1", A, 1), join("c2", 2)], ended("c1", A, 20),
                 [RingAgents("c2", (A,), 15)], id="without-wrap-up-the-agent-is-offered-at-once"),
    # The cap
    pytest.param(RINGALL, [join("c1", 0)], fired(MW, "c1", 60),
                 [CancelRinging("c1"), CancelTimer(POS, "c1"), Overflow("c1", 60.0)],
                 id="cap-stops-the-ringing-and-overflows"),
    pytest.param(ONE, [join("c1", 0), no_answer("c1", A, 15)], fired(MW, "c1", 61.5),
                 [CancelTimer(POS, "c1"), Overflow("c1", 61.5)], id="late-cap-timer-reports-the-real-wait"),
    pytest.param(RINGALL, [join("c1", 0), join("c2", 10)], fired(MW, "c1", 60),
                 [CancelRinging("c1"), CancelTimer(POS, "c1"), Overflow("c1", 60.0), RingAgents("c2", (A, B, C), 15)],
                 id="overflow-hands-the-ringing-phones-to-the-next-caller"),
    # Position announcements
    pytest.param(ONE, [join("c1", 0), join("c2", 1)], fired(POS, "c2", 21),
                 [AnnouncePosition("c2", 2), StartTimer(POS, "c2", 20)], id="position-announced-and-asked-again"),
    pytest.param(ONE, [join("c1", 0)], fired(POS, "c1", 40), [AnnouncePosition("c1", 1)],
                 id="no-announcement-asked-for-at-or-after-the-cap"),
    pytest.param(ONE, [join("c1", 0), join("c2", 1), left("c1", 5)], fired(POS, "c2", 21),
                 [AnnouncePosition("c2", 1), StartTimer(POS, "c2", 20)],
                 id="position-counts-only-callers-still-waiting"),
    # The caller hangs up
    pytest.param(RINGALL, [join("c1", 0)], left("c1", 12),
                 [CancelRinging("c1"), CancelTimer(MW, "c1"), CancelTimer(POS, "c1"), Abandoned("c1", 12.0)],
                 id="caller-hanging-up-while-ringing-is-abandoned"),
    pytest.param(RINGALL, [join("c1", 0), join("c2", 3)], left("c1", 12),
                 [CancelRinging("c1"), CancelTimer(MW, "c1"), CancelTimer(POS, "c1"), Abandoned("c1", 12.0),
                  RingAgents("c2", (A, B, C), 15)],
                 id="abandoned-callers-phones-go-to-the-next-caller"),
    pytest.param(ONE, [join("c1", 0), join("c2", 1)], left("c2", 7.25),
                 [CancelTimer(MW, "c2"), CancelTimer(POS, "c2"), Abandoned("c2", 6.25)],
                 id="caller-hanging-up-with-nothing-ringing-is-abandoned"),
]

# ---- (spec, history, event) that must change nothing and ask for nothing

CONNECTED: list[Event] = [join("c1", 0), answered("c1", A, 4)]
ILLEGAL = [
    pytest.param(RINGALL, CONNECTED, fired(MW, "c1", 60), id="cap-timer-for-a-connected-caller"),
    pytest.param(RINGALL, CONNECTED, fired(POS, "c1", 20), id="position-timer-for-a-connected-caller"),
    pytest.param(RINGALL, [join("c1", 0), left("c1", 5)], fired(MW, "c1", 60), id="cap-timer-for-an-abandoned-caller"),
    pytest.param(RINGALL, [join("c1", 0), fired(MW, "c1", 60)], fired(MW, "c1", 60.1),
                 id="cap-timer-delivered-twice"),
    pytest.param(RINGALL, [join("c1", 0), fired(MW, "c1", 60)], fired(POS, "c1", 60), id="position-after-overflow"),
    pytest.param(RINGALL, [], fired(MW, "ghost", 1), id="cap-timer-for-a-caller-never-seen"),
    pytest.param(ROUNDROBIN, [join("c1", 0)], answered("c1", B, 3), id="answer-from-an-agent-not-rung"),
    pytest.param(ROUNDROBIN, [join("c1", 0), join("c2", 0)], answered("c1", B, 3),
                 id="answer-from-an-agent-ringing-for-another-caller"),
    pytest.param(RINGALL, CONNECTED, answered("c1", B, 4), id="second-answer-after-the-phones-were-stopped"),
    pytest.param(RINGALL, [join("c1", 0), fired(MW, "c1", 60)], answered("c1", A, 60),
                 id="answer-racing-the-overflow"),
    pytest.param(RINGALL, [join("c1", 0)], answered("c1", STRANGER, 3), id="answer-from-an-agent-of-no-queue"),
    pytest.param(ROUNDROBIN, [join("c1", 0), join("c2", 0)], no_answer("c2", A, 3),
                 id="no-answer-for-a-caller-the-agent-is-not-ringing-for"),
    pytest.param(RINGALL, [join("c1", 0), left("c1", 2)], no_answer("c1", A, 3), id="no-answer-after-the-caller-left"),
    pytest.param(ONE, [join("c1", 0), no_answer("c1", A, 15)], no_answer("c1", A, 15), id="no-answer-delivered-twice"),
    pytest.param(RINGALL, CONNECTED, ended("c1", B, 9), id="end-from-an-agent-not-on-that-call"),
    pytest.param(RINGALL, CONNECTED, ended("c2", A, 9), id="end-of-another-call"),
    pytest.param(RINGALL, [*CONNECTED, ended("c1", A, 9)], ended("c1", A, 9), id="end-delivered-twice"),
    pytest.param(RINGALL, CONNECTED, left("c1", 9), id="connected-caller-leaving-is-not-an-abandon"),
    pytest.param(RINGALL, [join("c1", 0), left("c1", 2)], left("c1", 2), id="hang-up-delivered-twice"),
    pytest.param(RINGALL, [join("c1", 0)], join("c1", 1), id="second-join-of-a-waiting-caller"),
    pytest.param(RINGALL, CONNECTED, join("c1", 5), id="join-of-a-connected-caller"),
    pytest.param(RINGALL, [], fired(WRAP, A, 1), id="wrap-up-timer-for-a-free-agent"),
    pytest.param(RINGALL, CONNECTED, fired(WRAP, A, 14), id="wrap-up-timer-for-an-agent-on-a-call"),
    pytest.param(RINGALL, [join("c1", 0)], fired(RETRY, A, 5), id="retry-timer-for-a-ringing-agent"),
    pytest.param(RINGALL, [*CONNECTED, ended("c1", A, 9)], fired(RETRY, A, 19), id="retry-timer-during-wrap-up"),
    pytest.param(ONE, [join("c1", 0), no_answer("c1", A, 15), fired(RETRY, A, 20)], fired(RETRY, A, 20),
                 id="retry-timer-delivered-twice"),
    pytest.param(RINGALL, [join("c1", 0)], Reloaded(at(1)), id="reload-with-nothing-new-to-offer"),
]


class TestStep:
    """One step of the queue, as a table: (spec, history, event) -> actions."""

    @pytest.mark.parametrize(("spec", "history", "event", "actions"), TRANSITIONS)
    def test_transition(self, spec: QueueSpec, history: list[Event], event: Event, actions: list[Action]) -> None:
        state, _ = run(spec, history)

        assert step(spec, state, event)[1] == actions

    @pytest.mark.parametrize(("spec", "history", "event"), ILLEGAL)
    def test_late_or_illegal_event_changes_nothing(self, spec: QueueSpec, history: list[Event], event: Event) -> None:
        state, _ = run(spec, history)

        assert step(spec, state, event) == (state, [])


class TestState:
    """What `fairline queues` will show: callers in line and each agent's state."""

    @pytest.mark.parametrize(("history", "agents"), [
        pytest.param([join("c1", 0)], {A: Ringing("c1"), B: Ringing("c1"), C: Ringing("c1")}, id="ringing"),
        pytest.param(CONNECTED, {A: Busy("c1"), B: FREE, C: FREE}, id="busy-and-free"),
        pytest.param([*CONNECTED, ended("c1", A, 30)], {A: WrapUp(at(40))}, id="wrap-up-until"),
        pytest.param([join("c1", 0), no_answer("c1", B, 15)], {B: Resting(at(20))}, id="resting-until"),
        pytest.param([*CONNECTED, ended("c1", A, 30), fired(WRAP, A, 40)], {A: FREE}, id="free-after-wrap-up"),
    ])
    def test_agent_states(self, history: list[Event], agents: dict[str, object]) -> None:
        state, _ = run(RINGALL, history)

        assert {a: state.agent(a).status for a in agents} == agents

    def test_callers_wait_in_arrival_order_with_their_entry_time(self) -> None:
        state, _ = run(ONE, [join("c1", 0), join("c2", 4.5), join("c3", 9)])

        assert [(c.call_id, c.waited(at(10))) for c in state.waiting] == [("c1", 10.0), ("c2", 5.5), ("c3", 1.0)]

    def test_end_of_a_call_is_when_the_agent_became_idle(self) -> None:
        state, _ = run(RINGALL, [*CONNECTED, ended("c1", A, 30), fired(WRAP, A, 40)])

        assert state.agent(A) == Agent(A, FREE, last_call_ended=at(30))

    def test_a_new_queue_has_every_agent_free(self) -> None:
        assert [QueueState().agent(a) for a in (A, B)] == [Agent(A), Agent(B)]


class TestFairness:
    def test_two_callers_and_one_agent_are_served_in_arrival_order(self) -> None:
        """The agent frees up after wrap-up and the caller who joined first gets it, whatever order they were rung in."""
        _, asked = run(ONE, [join("c1", 0), join("c2", 1), answered("c1", A, 3), ended("c1", A, 20),
                             join("c3", 21), fired(WRAP, A, 30), answered("c2", A, 32)])

        assert [a.call_id for a in asked if isinstance(a, Connect)] == ["c1", "c2"]

    def test_agent_back_from_rest_goes_to_the_longest_waiting_caller(self) -> None:
        _, asked = run(ONE, [join("c1", 0), no_answer("c1", A, 2), join("c2", 3), fired(RETRY, A, 7)])

        assert asked[-1] == RingAgents("c1", (A,), 15)


class TestReload:
    """The state holds no configuration: it carries on under a new spec."""

    def test_agent_added_by_a_reload_is_offered_to_the_waiting_callers(self) -> None:
        state, _ = run(ONE, [join("c1", 0), join("c2", 1)])

        assert step(queue(RingStrategy.RINGALL, (A, B)), state, Reloaded(at(2)))[1] == [RingAgents("c1", (B,), 15)]

    def test_agent_removed_by_a_reload_finishes_its_call_and_is_offered_no_more(self) -> None:
        state, _ = run(ROUNDROBIN, [join("c1", 0)])  # A rings for c1
        reloaded = queue(RingStrategy.ROUNDROBIN, (B, C))

        state, asked = run(reloaded, [answered("c1", A, 2), join("c2", 3), ended("c1", A, 9), fired(WRAP, A, 19),
                                      join("c3", 20), join("c4", 21)], state)

        assert Connect("c1", A) in asked
        assert [a.agents for a in asked if isinstance(a, RingAgents)] == [(B,), (C,)]


class TestSpec:
    """Configuration values the queue refuses, the policy first."""

    @pytest.mark.parametrize("seconds", [61, 90, 3600])
    def test_cap_over_one_minute_is_refused_citing_the_policy(self, seconds: int) -> None:
        with pytest.raises(ValueError, match="queues may not keep callers waiting for more than one minute"):
            queue(max_wait=seconds)

    @pytest.mark.parametrize("seconds", [1, 30, 60])
    def test_cap_up_to_one_minute_is_accepted(self, seconds: int) -> None:
        assert queue(max_wait=seconds).max_wait_seconds == seconds

    def test_cap_defaults_to_one_minute(self) -> None:
        assert QueueSpec("support", (A,), RingStrategy.RINGALL, 15, 0).max_wait_seconds == 60

    @pytest.mark.parametrize(("changes", "message"), [
        pytest.param({"max_wait_seconds": 0}, "max_wait_seconds must be at least 1", id="no-cap"),
        pytest.param({"agents": ()}, "needs at least one agent", id="no-agents"),
        pytest.param({"agents": (A, B, A)}, "lists an agent twice", id="agent-twice"),
        pytest.param({"ring_seconds": 0}, "ring_seconds must be at least 1", id="no-ring-time"),
        pytest.param({"wrapup_seconds": -1}, "wrapup_seconds must be 0 or more", id="negative-wrap-up"),
        pytest.param({"position_every_seconds": 0}, "position_every_seconds must be at least 1", id="no-interval"),
    ])
    def test_nonsense_is_refused_naming_the_queue(self, changes: dict[str, object], message: str) -> None:
        values: dict[str, object] = {"name": "support", "agents": (A,), "strategy": RingStrategy.RINGALL,
                                     "ring_seconds": 15, "wrapup_seconds": 0, **changes}
        with pytest.raises(ValueError, match=f"queue support: {message}"):
            QueueSpec(**values)  # type: ignore[arg-type]

    @given(st.integers(61, 10**6))
    def test_any_cap_over_one_minute_is_refused(self, seconds: int) -> None:
        with pytest.raises(ValueError, match="one minute"):
            queue(max_wait=seconds)


# ---- one minute per caller, in total (decision 0029)


def unreachable(call: str, agent: str, t: float) -> AgentNoAnswer:
    return AgentNoAnswer(call, agent, at(t), unreachable=True)


def sent_on(call: str, waited: float) -> list[Action]:
    return [CancelTimer(MW, call), CancelTimer(POS, call), Overflow(call, waited, no_agent=True)]


class TestWhatIsLeftOfTheMinute:
    def test_a_caller_from_another_queue_waits_only_what_is_left(self) -> None:
        """The cap timer is set to the remainder, and position announcements only fit within it."""
        _, actions = step(RINGALL, QueueState(), CallerJoined("c1", at(0), within=22.5))
        assert actions == [StartTimer(MW, "c1", 22.5), StartTimer(POS, "c1", 20), RingAgents("c1", (A, B, C), 15)]

    def test_the_queue_s_own_cap_holds_when_more_is_left(self) -> None:
        _, actions = step(queue(max_wait=30), QueueState(), CallerJoined("c1", at(0), within=50))
        assert actions[0] == StartTimer(MW, "c1", 30)

    @pytest.mark.parametrize("left", [0, -0.2])
    def test_nothing_left_goes_on_at_once_ringing_nobody(self, left: float) -> None:
        state, actions = step(RINGALL, QueueState(), CallerJoined("c1", at(0), within=left))
        assert (state, actions) == (QueueState(), [Overflow("c1", 0.0)])

    def test_the_remainder_ends_the_wait_like_the_cap(self) -> None:
        state, actions = run(ONE, [CallerJoined("c1", at(0), within=12), fired(MW, "c1", 12)])
        assert actions[-1] == Overflow("c1", 12.0) and state.waiting == ()


class TestNoAgentCanAnswer:
    def test_all_agents_unreachable_sends_the_caller_on_at_the_last_failure(self) -> None:
        state, actions = run(RINGALL, [join("c1", 0), unreachable("c1", A, 0.1), unreachable("c1", B, 0.2)])
        assert not any(isinstance(a, Overflow) for a in actions)  # C still rings
        state, actions = step(RINGALL, state, unreachable("c1", C, 0.3))
        assert actions == [StartTimer(RETRY, C, RETRY_SECONDS), *sent_on("c1", 0.3)]
        assert state.waiting == ()

    def test_hunting_tries_every_agent_before_sending_on(self) -> None:
        _, actions = run(ROUNDROBIN, [join("c1", 0), unreachable("c1", A, 0.1), unreachable("c1", B, 0.2)])
        assert RingAgents("c1", (C,), 15) in actions and not any(isinstance(a, Overflow) for a in actions)

    def test_a_caller_joining_while_every_agent_is_unreachable_goes_on_at_join(self) -> None:
        state, _ = run(ONE, [join("c1", 0), unreachable("c1", A, 0.1)])
        _, actions = step(ONE, state, join("c2", 1))
        assert actions == [*timers("c2"), *sent_on("c2", 0.0)]

    def test_an_agent_who_did_not_answer_is_waited_for_if_the_rest_ends_before_the_cap(self) -> None:
        _, actions = run(ONE, [join("c1", 0), no_answer("c1", A, 15)])
        assert not any(isinstance(a, Overflow) for a in actions)

    def test_an_agent_resting_past_the_cap_is_not_waited_for(self) -> None:
        _, actions = run(ONE, [join("c1", 0), no_answer("c1", A, 56)])
        assert actions[-3:] == sent_on("c1", 56.0)

    @pytest.mark.parametrize(("ends", "waits"), [(50, True), (62, True), (63, False), (64, False)])
    def test_an_agent_in_wrap_up_is_waited_for_only_if_it_ends_before_the_cap(self, ends: int, waits: bool) -> None:
        """The wrap-up ends `ends` s after T0; the second caller joins at 3 s, so their cap is at 63 s."""
        spec = queue(agents=(A,), wrapup=ends - 2)
        state, _ = run(spec, [join("c1", 0), answered("c1", A, 1), ended("c1", A, 2)])
        _, actions = step(spec, state, join("c2", 3))
        assert (actions == timers("c2")) is waits
        assert (actions == [*timers("c2"), *sent_on("c2", 0.0)]) is not waits

    def test_a_busy_agent_is_waited_for(self) -> None:
        state, _ = run(ONE, [join("c1", 0), answered("c1", A, 1)])
        _, actions = step(ONE, state, join("c2", 3))
        assert actions == timers("c2")

    def test_an_agent_that_is_reachable_again_is_rung_for_the_next_caller(self) -> None:
        state, _ = run(ONE, [join("c1", 0), unreachable("c1", A, 0.1), fired(RETRY, A, 5.1)])
        _, actions = step(ONE, state, join("c2", 6))
        assert actions == [*timers("c2"), RingAgents("c2", (A,), 15)]


class TestExpectedWait:
    def test_nothing_is_said_of_the_wait_before_anyone_was_answered(self) -> None:
        _, actions = run(ONE, [join("c1", 0), fired(POS, "c1", 20)])
        assert AnnouncePosition("c1", 1, None) in actions

    def test_the_wait_ahead_is_the_average_answered_wait_less_what_the_caller_waited(self) -> None:
        # Answered after 44 s: the average. A caller who waited 20 s has about 24 s ahead: "30 seconds".
        state, _ = run(ONE_NO_WRAPUP, [join("c0", 0), answered("c0", A, 44), join("c1", 45)])
        _, actions = step(ONE_NO_WRAPUP, state, fired(POS, "c1", 65))
        assert AnnouncePosition("c1", 1, 30) in actions

    def test_the_average_moves_a_quarter_toward_each_new_answered_wait(self) -> None:
        state, _ = run(ONE_NO_WRAPUP, [join("c0", 0), answered("c0", A, 40), ended("c0", A, 41),
                                       join("c1", 50), answered("c1", A, 54)])
        assert state.answered_wait == 31.0

    def test_no_wait_is_promised_past_the_cap(self) -> None:
        # Average 50 s; c2 has 25 s of their minute left and hears their place after 20 s: 30 s ahead, past it.
        state, _ = run(ONE_NO_WRAPUP, [join("c0", 0), answered("c0", A, 50), join("c1", 51),
                                       CallerJoined("c2", at(52), within=25)])
        _, actions = step(ONE_NO_WRAPUP, state, fired(POS, "c2", 72))
        assert AnnouncePosition("c2", 2, None) in actions

    def test_a_caller_past_the_average_hears_no_wait(self) -> None:
        state, _ = run(ONE_NO_WRAPUP, [join("c0", 0), answered("c0", A, 10), join("c1", 11)])
        _, actions = step(ONE_NO_WRAPUP, state, fired(POS, "c1", 31))
        assert AnnouncePosition("c1", 1, None) in actions


# ---- properties over any history: a fake runtime executes the actions and fires timers on time


def fits(spec: QueueSpec, state: QueueState, event: Event) -> bool:
    """Whether `event` is one the queue should act on, stated independently of the implementation."""
    match event:
        case CallerJoined():
            return state.caller(event.call_id) is None and all(a.status != Busy(event.call_id) for a in state.agents)
        case CallerLeft():
            return state.caller(event.call_id) is not None
        case AgentAnswered() | AgentNoAnswer():
            return state.agent(event.agent).status == Ringing(event.call_id)
        case CallEnded():
            return state.agent(event.agent).status == Busy(event.call_id)
        case TimerFired(name=Timer.WRAPUP):
            return isinstance(state.agent(event.key).status, WrapUp)
        case TimerFired(name=Timer.RETRY):
            return isinstance(state.agent(event.key).status, Resting)
        case TimerFired():
            return state.caller(event.key) is not None
        case Reloaded():
            return False  # same spec: every free agent is already offered, if anyone can take it
    raise AssertionError(event)


def may_answer(agent: Agent, deadline: datetime) -> bool:
    """Whether an agent can still take a call before `deadline`: stated here apart from the implementation."""
    status = agent.status
    if isinstance(status, Resting):
        return not status.unreachable and status.until < deadline
    if isinstance(status, WrapUp):
        return status.until < deadline
    return True


class Runtime:
    """A fake runtime: executes the queue's actions, keeps its timers and ringing legs, fires them on time.

    It checks, after every step, the promises that must hold whatever happened before.
    """

    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.state = QueueState()
        self.now = T0
        self.timers: dict[tuple[Timer, str], datetime] = {}
        self.rings: dict[str, tuple[str, datetime]] = {}  # agent -> (caller, rings out at)
        self.talking: dict[str, str] = {}  # agent -> caller
        self.joined: dict[str, datetime] = {}
        self.caps: dict[str, float] = {}  # each caller's cap: the queue's, or what was left of their minute
        self.ends: defaultdict[str, list[Action]] = defaultdict(list)  # caller -> Connect / Overflow / Abandoned
        self.served: list[str] = []

    def feed(self, event: Event) -> None:
        self.state, actions = step(self.spec, self.state, event)
        self.execute(actions)
        self.check(actions)

    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case StartTimer():
                    self.timers[action.name, action.key] = self.now + timedelta(seconds=action.seconds)
                case CancelTimer():
                    self.timers.pop((action.name, action.key), None)
                case RingAgents():
                    for agent in action.agents:
                        assert agent not in self.rings and agent not in self.talking, f"{agent} offered twice"
                        self.rings[agent] = (action.call_id, self.now + timedelta(seconds=action.ring_seconds))
                case CancelRinging():
                    self.rings = {a: r for a, r in self.rings.items() if r[0] != action.call_id}
                case Connect():
                    assert self.rings.pop(action.agent)[0] == action.call_id
                    self.talking[action.agent] = action.call_id
                    assert self.now - self.joined[action.call_id] < timedelta(seconds=self.caps[action.call_id])
                    self.ends[action.call_id].append(action)
                    self.served.append(action.call_id)
                case Overflow():
                    waited = (self.now - self.joined[action.call_id]).total_seconds()
                    assert action.waited_seconds == waited
                    if action.no_agent:  # sent on before the cap: no agent of the queue could answer by then
                        deadline = self.joined[action.call_id] + timedelta(seconds=self.caps[action.call_id])
                        assert waited <= self.caps[action.call_id] + 1e-6
                        assert not any(may_answer(self.state.agent(a), deadline) for a in self.spec.agents)
                    else:  # timers are punctual here; nothing left of the minute: at once
                        assert waited == pytest.approx(max(0.0, self.caps[action.call_id]), abs=1e-6)
                    self.ends[action.call_id].append(action)
                case Abandoned():
                    assert action.waited_seconds == (self.now - self.joined[action.call_id]).total_seconds()
                    self.ends[action.call_id].append(action)
                case AnnouncePosition():
                    assert self.state.waiting[action.position - 1].call_id == action.call_id

    def check(self, actions: list[Action]) -> None:
        state, spec = self.state, self.spec
        hunting = spec.strategy is not RingStrategy.RINGALL
        # No agent rings or talks for two callers: the runtime's legs are exactly what the state says.
        assert self.rings.keys() == {a.e164 for a in state.agents if isinstance(a.status, Ringing)}
        assert all(state.agent(a).status == Ringing(c) for a, (c, _) in self.rings.items())
        assert self.talking == {a.e164: a.status.call_id for a in state.agents if isinstance(a.status, Busy)}
        # Fair order: nobody who joined earlier could have taken an agent offered to a later caller.
        ids = [c.call_id for c in state.waiting]
        for ring in (a for a in actions if isinstance(a, RingAgents)):
            ahead = ids[:ids.index(ring.call_id)]
            assert all(state.ringing_for(c) for c in ahead) if hunting else not ahead
        # No free agent idles while a caller could ring it.
        if any(isinstance(state.agent(a).status, Free) for a in spec.agents):
            assert all(state.ringing_for(c) for c in ids) if hunting else not ids
        # Nobody waits past their cap, nor for an agent who cannot answer by then; every caller ends at most once.
        for caller in state.waiting:
            deadline = caller.entered_at + timedelta(seconds=self.caps[caller.call_id])
            assert deadline >= self.now
            assert any(may_answer(state.agent(a), deadline) for a in spec.agents), "held for nobody"
        assert all(len(e) == 1 for e in self.ends.values())

    def join(self, within: float | None = None) -> None:
        call = f"c{len(self.joined)}"
        self.joined[call] = self.now
        self.caps[call] = self.spec.max_wait_seconds if within is None else min(self.spec.max_wait_seconds, within)
        self.feed(CallerJoined(call, self.now, within))

    def advance(self, seconds: float) -> None:
        """Let time pass, firing timers and ring-outs at their due time, earliest first."""
        target = self.now + timedelta(seconds=seconds)
        while True:
            due = [(t, 0, name.value, key) for (name, key), t in self.timers.items() if t <= target]
            due += [(t, 1, "ring", agent) for agent, (_, t) in self.rings.items() if t <= target]
            if not due:
                break
            self.now, kind, name, key = min(due)
            if kind == 0:
                del self.timers[Timer(name), key]
                self.feed(TimerFired(Timer(name), key, self.now))
            else:
                call, _ = self.rings.pop(key)
                self.feed(AgentNoAnswer(call, key, self.now))
        self.now = target
        assert all(c.entered_at + timedelta(seconds=self.caps[c.call_id]) > self.now
                   for c in self.state.waiting), "a caller waited past the cap"

    def junk(self) -> None:
        """Every event that could arrive now; each one the queue should ignore must change nothing, ask nothing."""
        calls, agents, now = [*self.joined, "ghost"], (A, B, C, STRANGER), self.now
        events: list[Event] = [Reloaded(now)]
        for call in calls:
            events += [CallerJoined(call, now), CallerLeft(call, now), TimerFired(Timer.MAX_WAIT, call, now),
                       TimerFired(Timer.POSITION, call, now)]
            events += [e(call, agent, now) for agent in agents for e in (AgentAnswered, AgentNoAnswer, CallEnded)]
        events += [TimerFired(name, agent, now) for agent in agents for name in (Timer.WRAPUP, Timer.RETRY)]
        for event in events:
            if not fits(self.spec, self.state, event):
                assert step(self.spec, self.state, event) == (self.state, []), event


SPECS = st.builds(
    QueueSpec, name=st.just("support"), agents=st.sampled_from([(A,), (A, B), (A, B, C)]),
    strategy=st.sampled_from(RingStrategy), ring_seconds=st.integers(1, 30), wrapup_seconds=st.integers(0, 20),
    max_wait_seconds=st.integers(1, 60), position_every_seconds=st.integers(1, 60),
)
# joins and answers weigh double, so that histories reach connected calls and wrap-ups often
OPS = st.lists(st.tuples(st.sampled_from(["join", "join", "join_late", "leave", "answer", "answer", "reject",
                                          "unreachable", "hang_up", "wait", "junk"]),
                         st.integers(0, 10**6)), max_size=60)


def play(spec: QueueSpec, ops: list[tuple[str, int]]) -> Runtime:
    """Run `ops` through a fake runtime; picks among what is possible at that moment."""
    rt = Runtime(spec)
    for op, n in ops:
        waiting = [c.call_id for c in rt.state.waiting]
        ringing, talking = sorted(rt.rings), sorted(rt.talking)
        if op == "join":
            rt.join()
        elif op == "join_late":  # from another queue, with what is left of the minute (none, at worst)
            rt.join(n % 61_000 / 1000 - 0.5)
        elif op == "leave" and waiting:
            rt.feed(CallerLeft(waiting[n % len(waiting)], rt.now))
        elif op == "answer" and ringing:
            agent = ringing[n % len(ringing)]
            rt.feed(AgentAnswered(rt.rings[agent][0], agent, rt.now))
        elif op in ("reject", "unreachable") and ringing:  # busy, or unreachable, before the ring time is up
            agent = ringing[n % len(ringing)]
            call, _ = rt.rings.pop(agent)
            rt.feed(AgentNoAnswer(call, agent, rt.now, unreachable=op == "unreachable"))
        elif op == "hang_up" and talking:
            agent = talking[n % len(talking)]
            rt.feed(CallEnded(rt.talking.pop(agent), agent, rt.now))
        elif op == "wait":
            rt.advance(n % 25_000 / 1000)
        elif op == "junk":
            rt.junk()
    return rt


class TestWhateverHappens:
    """Properties over any history of joins, hang-ups, answers, refusals, late events and time passing.

    The fake runtime asserts after every step: no agent rings or talks for two callers, fair order,
    no free agent idles while a caller could ring it, nobody waits past the cap, one end per caller.
    """

    @settings(max_examples=400, deadline=None)
    @given(SPECS, OPS)
    def test_promises_hold_at_every_step(self, spec: QueueSpec, ops: list[tuple[str, int]]) -> None:
        play(spec, ops)

    @settings(max_examples=400, deadline=None)
    @given(SPECS, OPS)
    def test_every_caller_ends_exactly_once_by_the_cap(self, spec: QueueSpec, ops: list[tuple[str, int]]) -> None:
        """Connected, overflowed or abandoned: once the cap has passed for everyone, each caller has one end."""
        rt = play(spec, ops)
        rt.advance(spec.max_wait_seconds)

        assert rt.state.waiting == ()
        assert {c: len(e) for c, e in rt.ends.items()} == {c: 1 for c in rt.joined}

    @settings(max_examples=200, deadline=None)
    @given(SPECS, OPS)
    def test_an_agent_off_the_phone_is_free_again_once_its_timers_ran(self, spec: QueueSpec,
                                                                     ops: list[tuple[str, int]]) -> None:
        """Wrap-up and rest end: no agent is left out of the queue for good."""
        rt = play(spec, ops)
        rt.advance(spec.max_wait_seconds + max(spec.wrapup_seconds, RETRY_SECONDS))

        assert {a: rt.state.agent(a).status for a in spec.agents if a not in rt.talking} == {
            a: FREE for a in spec.agents if a not in rt.talking}

    @settings(max_examples=200, deadline=None)
    @given(SPECS.filter(lambda s: s.strategy is RingStrategy.RINGALL), OPS)
    def test_ring_all_connects_callers_in_arrival_order(self, spec: QueueSpec, ops: list[tuple[str, int]]) -> None:
        """Only the head of the line rings, so whoever is connected was connected in the order they joined."""
        rt = play(spec, ops)
        order = list(rt.joined)

        assert rt.served == sorted(rt.served, key=order.index)

    @settings(max_examples=200, deadline=None)
    @given(SPECS, OPS)
    def test_a_caller_nobody_answers_overflows_exactly_at_the_cap(self, spec: QueueSpec,
                                                                   ops: list[tuple[str, int]]) -> None:
        """...unless no agent can answer before the cap: then at once (the fake runtime checks that it is so)."""
        rt = play(spec, ops)
        rt.join()
        call = f"c{len(rt.joined) - 1}"
        rt.advance(spec.max_wait_seconds - 0.001)
        waited_to_the_last_millisecond = rt.state.caller(call) is not None
        rt.advance(0.001)

        [end] = rt.ends[call]
        if isinstance(end, Overflow) and end.no_agent:
            assert not waited_to_the_last_millisecond and end.waited_seconds < spec.max_wait_seconds
        else:
            assert waited_to_the_last_millisecond
            assert end == Overflow(call, float(spec.max_wait_seconds))


class TestPurity:
    def test_queueing_imports_no_io_library(self) -> None:
        """The functional core imports no asyncio, aiohttp or asyncpg (checked in a fresh interpreter)."""
        code = (
            "import sys, ari_app.core.queueing\n"
            "print(','.join(sorted({'asyncio', 'aiohttp', 'asyncpg'} & set(sys.modules))))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])

        assert out.stdout.strip() == ""
