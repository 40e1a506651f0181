"""A call queue as a pure state machine: callers wait, free agents are offered to them, nobody waits past the cap.

No I/O and no clock: `step(spec, state, event)` returns the next state and the actions the runtime
executes (ring agents, connect, start timers, overflow...). Every time comes from an event's `at`.

The promise kept here (issue 5): a caller waits at most `max_wait_seconds` (never more than 60) from
entering the queue, ringing included; then the call overflows. The cap is a timer the flow asks for on
entry; when it fires, the flow re-checks that the caller is still waiting (a timer can fire late, or for a
caller an agent answered meanwhile) before acting. A caller who comes from another queue brings what is
left of their minute (`CallerJoined.within`, decision 0029) and gets no more than that.

A caller no agent can answer before their cap (every agent unreachable, or resting or wrapping up past
the cap) is sent on at once (`Overflow(no_agent=True)`) instead of hearing music for nothing.

Runtime contract for the actions:

- `StartTimer(name, key)` replaces a running timer of the same name and key; `CancelTimer` of a timer
  that is not running does nothing. A timer that fires becomes `TimerFired(name, key, at)`.
- `RingAgents` rings each agent on its own leg for `ring_seconds`; a leg that is refused, unreachable
  or rings out comes back as `AgentNoAnswer`, one that is answered as `AgentAnswered`.
- `CancelRinging(call_id)` hangs up every leg of that caller that is not connected, answered or not:
  an agent who picks up in the same instant the caller overflows gets a hang-up, not a silent line.

What is not here: the overflow destination, the hop limit and the total wait across hops belong to the
call flow that sends the caller on (`Overflow` says only that, and after how long).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import datetime, timedelta
from typing import TypeAlias, assert_never

MAX_WAIT_POLICY_SECONDS = 60  # the policy's promise to callers; configuration may ask for less, never more
RETRY_SECONDS = 5  # an agent who did not answer is not offered again for this long (Asterisk's `retry` default)
EXPECTED_WAIT_STEP_SECONDS = 10  # an expected wait is told rounded up to this: callers hear "30 seconds", not "27"


class RingStrategy(enum.StrEnum):
    """Which free agents a waiting caller rings."""

    RINGALL = "ringall"  # every free agent at once
    ROUNDROBIN = "roundrobin"  # one at a time, the next free agent after the last one rung
    LONGESTIDLE = "longestidle"  # one at a time, the free agent whose last call ended longest ago


class Timer(enum.StrEnum):
    """The timers a queue asks for, and what their key is."""

    MAX_WAIT = "max_wait"  # key: call id; the caller's cap
    POSITION = "position"  # key: call id; the next position announcement
    WRAPUP = "wrapup"  # key: agent; end of the wrap-up after a call
    RETRY = "retry"  # key: agent; end of the pause after a ring nobody answered


@dataclasses.dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue as configured; refuses values that break the policy or make no sense."""

    name: str
    agents: tuple[str, ...]  # E.164, in the order round robin follows
    strategy: RingStrategy
    ring_seconds: int
    wrapup_seconds: int
    max_wait_seconds: int = MAX_WAIT_POLICY_SECONDS
    position_every_seconds: int = 20

    def __post_init__(self) -> None:
        if self.max_wait_seconds > MAX_WAIT_POLICY_SECONDS:
            raise ValueError(
                f"queue {self.name}: max_wait_seconds {self.max_wait_seconds} is refused: queues may not keep "
                f"callers waiting for more than one minute ({MAX_WAIT_POLICY_SECONDS} s); "
                f"set it to {MAX_WAIT_POLICY_SECONDS} or less and configure an overflow"
            )
        problems = [
            (self.max_wait_seconds < 1, f"max_wait_seconds must be at least 1, not {self.max_wait_seconds}"),
            (not self.agents, "needs at least one agent"),
            (len(set(self.agents)) != len(self.agents), f"lists an agent twice: {', '.join(self.agents)}"),
            (self.ring_seconds < 1, f"ring_seconds must be at least 1, not {self.ring_seconds}"),
            (self.wrapup_seconds < 0, f"wrapup_seconds must be 0 or more, not {self.wrapup_seconds}"),
            (self.position_every_seconds < 1,
             f"position_every_seconds must be at least 1, not {self.position_every_seconds}"),
        ]
        for broken, problem in problems:
            if broken:
                raise ValueError(f"queue {self.name}: {problem}")


# ---- agent states


@dataclasses.dataclass(frozen=True, slots=True)
class Free:
    """Can be offered to a waiting caller."""


@dataclasses.dataclass(frozen=True, slots=True)
class Ringing:
    call_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Busy:
    """Connected to a caller of this queue."""

    call_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class WrapUp:
    """After a call; `until` is for display and for re-arming after a restart, the timer is what frees."""

    until: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Resting:
    """Did not answer; not offered to anyone for RETRY_SECONDS, so an unreachable phone is not rung in a loop."""

    until: datetime
    unreachable: bool = False  # the phone could not be reached (not a person who did not or could not answer)


AgentStatus: TypeAlias = Free | Ringing | Busy | WrapUp | Resting
FREE = Free()


@dataclasses.dataclass(frozen=True, slots=True)
class Agent:
    e164: str
    status: AgentStatus = FREE
    last_call_ended: datetime | None = None  # None: no call yet, so idle longest


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    call_id: str
    entered_at: datetime
    cap_seconds: float = MAX_WAIT_POLICY_SECONDS  # this caller's wait cap here: the queue's, or less (decision 0029)

    @property
    def deadline(self) -> datetime:
        return self.entered_at + timedelta(seconds=self.cap_seconds)

    def waited(self, at: datetime) -> float:
        """Seconds in this queue at `at`."""
        return (at - self.entered_at).total_seconds()


@dataclasses.dataclass(frozen=True, slots=True)
class QueueState:
    """One queue's callers and agents. Holds no spec, so it survives a configuration reload as it is.

    An agent the state has not seen yet is free and has had no call: adding an agent to the
    configuration needs no migration. An agent removed from it is never offered again, but a
    call it is ringing for or connected to runs its course.
    """

    waiting: tuple[Caller, ...] = ()  # in arrival order: the first is served first
    agents: tuple[Agent, ...] = ()
    last_rung: str | None = None  # round robin resumes after this agent
    answered_wait: float | None = None  # moving average of the waits that ended with an agent's answer (seconds)

    def agent(self, e164: str) -> Agent:
        return next((a for a in self.agents if a.e164 == e164), Agent(e164))

    def caller(self, call_id: str) -> Caller | None:
        return next((c for c in self.waiting if c.call_id == call_id), None)

    def ringing_for(self, call_id: str) -> tuple[str, ...]:
        return tuple(a.e164 for a in self.agents if a.status == Ringing(call_id))


# ---- events the runtime feeds in


@dataclasses.dataclass(frozen=True, slots=True)
class CallerJoined:
    call_id: str
    at: datetime
    within: float | None = None  # what is left of the caller's minute (decision 0029); None: the queue's own cap


@dataclasses.dataclass(frozen=True, slots=True)
class CallerLeft:
    """The caller hung up."""

    call_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AgentAnswered:
    call_id: str
    agent: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AgentNoAnswer:
    """The agent's leg was busy, unreachable or rang out; `unreachable`: the phone could not be reached at all."""

    call_id: str
    agent: str
    at: datetime
    unreachable: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class CallEnded:
    """A connected call ended, whoever hung up."""

    call_id: str
    agent: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class TimerFired:
    name: Timer
    key: str  # call id or agent, see Timer
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Reloaded:
    """The configuration changed under a live queue: agents it added may be offered now."""

    at: datetime


Event: TypeAlias = CallerJoined | CallerLeft | AgentAnswered | AgentNoAnswer | CallEnded | TimerFired | Reloaded


# ---- actions the runtime executes


@dataclasses.dataclass(frozen=True, slots=True)
class RingAgents:
    call_id: str
    agents: tuple[str, ...]
    ring_seconds: int


@dataclasses.dataclass(frozen=True, slots=True)
class CancelRinging:
    """Hang up every leg of `call_id` that is not connected (see the module's runtime contract)."""

    call_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    call_id: str
    agent: str


@dataclasses.dataclass(frozen=True, slots=True)
class StartTimer:
    name: Timer
    key: str
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class CancelTimer:
    name: Timer
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class AnnouncePosition:
    call_id: str
    position: int  # 1: next in line
    expected_seconds: int | None = None  # the expected wait still ahead, rounded up to 10 s; None: not known


@dataclasses.dataclass(frozen=True, slots=True)
class Overflow:
    """The cap is reached, or no agent can answer before it (`no_agent`): send the caller to the queue's
    overflow, or announce and end if there is none."""

    call_id: str
    waited_seconds: float
    no_agent: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Abandoned:
    call_id: str
    waited_seconds: float


Action: TypeAlias = (
    RingAgents | CancelRinging | Connect | StartTimer | CancelTimer | AnnouncePosition | Overflow | Abandoned
)
Step: TypeAlias = tuple[QueueState, list[Action]]


def step(spec: QueueSpec, state: QueueState, event: Event) -> Step:
    """The queue after `event`, and what the runtime must do about it.

    An event that does not fit the state (a timer for a caller already gone, an answer from an
    agent not ringing for that caller, a duplicate) returns the state unchanged and no actions:
    the runtime's events race with the queue's decisions, and the late one must lose quietly.
    """
    match event:
        case CallerJoined():
            state, actions = _join(spec, state, event)
        case CallerLeft():
            state, actions = _leave(spec, state, event)
        case AgentAnswered():
            state, actions = _answer(spec, state, event)
        case AgentNoAnswer():
            state, actions = _no_answer(spec, state, event)
        case CallEnded():
            state, actions = _call_ended(spec, state, event)
        case TimerFired():
            state, actions = _timer(spec, state, event)
        case Reloaded():
            state, actions = _offer(spec, state, [])
        case _:
            assert_never(event)
    return _send_on_hopeless(spec, state, actions, event.at)


def _join(spec: QueueSpec, state: QueueState, event: CallerJoined) -> Step:
    if state.caller(event.call_id) or any(a.status == Busy(event.call_id) for a in state.agents):
        return state, []
    cap = float(spec.max_wait_seconds) if event.within is None else min(float(spec.max_wait_seconds), event.within)
    if cap <= 0:  # nothing left of the caller's minute: on to the overflow at once, nobody rung
        return state, [Overflow(event.call_id, 0.0)]
    actions: list[Action] = [StartTimer(Timer.MAX_WAIT, event.call_id, cap)]
    if spec.position_every_seconds < cap:  # else the cap comes first: nothing to announce
        actions.append(StartTimer(Timer.POSITION, event.call_id, spec.position_every_seconds))
    joined = dataclasses.replace(state, waiting=(*state.waiting, Caller(event.call_id, event.at, cap)))
    return _offer(spec, joined, actions)


def _leave(spec: QueueSpec, state: QueueState, event: CallerLeft) -> Step:
    caller = state.caller(event.call_id)
    if caller is None:  # already connected, overflowed or gone
        return state, []
    state, actions = _withdraw(state, caller)
    actions += [CancelTimer(Timer.MAX_WAIT, caller.call_id), CancelTimer(Timer.POSITION, caller.call_id),
                Abandoned(caller.call_id, caller.waited(event.at))]
    return _offer(spec, state, actions)


def _answer(spec: QueueSpec, state: QueueState, event: AgentAnswered) -> Step:
    agent = state.agent(event.agent)
    caller = state.caller(event.call_id)
    if agent.status != Ringing(event.call_id) or caller is None:
        return state, []
    # Past the cap but before its timer was handled: the caller is talking to a person now, and
    # connecting serves them better than sending them on; the cap is about waiting, not talking.
    state = _set(state, dataclasses.replace(agent, status=Busy(event.call_id)))
    # Asterisk's own estimate (app_queue's holdtime): three parts the old average, one part the new wait.
    waited = caller.waited(event.at)
    average = waited if state.answered_wait is None else (3 * state.answered_wait + waited) / 4
    state, actions = _withdraw(dataclasses.replace(state, answered_wait=average), caller)
    actions = [Connect(event.call_id, event.agent), *actions,
               CancelTimer(Timer.MAX_WAIT, event.call_id), CancelTimer(Timer.POSITION, event.call_id)]
    return _offer(spec, state, actions)


def _no_answer(spec: QueueSpec, state: QueueState, event: AgentNoAnswer) -> Step:
    agent = state.agent(event.agent)
    if agent.status != Ringing(event.call_id):
        return state, []
    # The agent rests instead of being free at once: an unreachable phone fails in milliseconds
    # and would otherwise be rung again and again; meanwhile the caller hunts on (hunt strategies).
    until = event.at + timedelta(seconds=RETRY_SECONDS)
    state = _set(state, dataclasses.replace(agent, status=Resting(until, event.unreachable)))
    return _offer(spec, state, [StartTimer(Timer.RETRY, event.agent, RETRY_SECONDS)])


def _call_ended(spec: QueueSpec, state: QueueState, event: CallEnded) -> Step:
    agent = state.agent(event.agent)
    if agent.status != Busy(event.call_id):
        return state, []
    if spec.wrapup_seconds == 0:
        return _offer(spec, _set(state, Agent(agent.e164, FREE, event.at)), [])
    until = event.at + timedelta(seconds=spec.wrapup_seconds)
    state = _set(state, Agent(agent.e164, WrapUp(until), event.at))
    return state, [StartTimer(Timer.WRAPUP, agent.e164, spec.wrapup_seconds)]


def _timer(spec: QueueSpec, state: QueueState, event: TimerFired) -> Step:
    if event.name in (Timer.WRAPUP, Timer.RETRY):
        agent = state.agent(event.key)
        # Only the timer leaves WrapUp or Resting, so one that finds the agent there is the current one;
        # `until` is not compared: the runtime's timer clock and the events' clock may differ by a hair.
        if not isinstance(agent.status, WrapUp if event.name is Timer.WRAPUP else Resting):
            return state, []
        return _offer(spec, _set(state, dataclasses.replace(agent, status=FREE)), [])
    caller = state.caller(event.key)
    if caller is None:  # connected, abandoned or overflowed since the timer was asked for
        return state, []
    if event.name is Timer.POSITION:
        position = state.waiting.index(caller) + 1
        actions: list[Action] = [AnnouncePosition(caller.call_id, position, _expected(state, caller, event.at))]
        if event.at + timedelta(seconds=spec.position_every_seconds) < caller.deadline:
            actions.append(StartTimer(Timer.POSITION, caller.call_id, spec.position_every_seconds))
        return state, actions
    state, actions = _withdraw(state, caller)
    actions += [CancelTimer(Timer.POSITION, caller.call_id), Overflow(caller.call_id, caller.waited(event.at))]
    return _offer(spec, state, actions)


def _expected(state: QueueState, caller: Caller, at: datetime) -> int | None:
    """The wait still ahead of `caller`, as callers are told it: the queue's average answered wait less what the
    caller waited already, rounded up; None when nobody was answered yet, when the caller waited past the average,
    or when it would pass the caller's cap (they are sent on before that: no wait is promised they will not get)."""
    if state.answered_wait is None:
        return None
    ahead = state.answered_wait - caller.waited(at)
    if ahead <= 0 or at + timedelta(seconds=ahead) > caller.deadline:
        return None
    return math.ceil(ahead / EXPECTED_WAIT_STEP_SECONDS) * EXPECTED_WAIT_STEP_SECONDS


def _may_answer(agent: Agent, caller: Caller) -> bool:
    """Whether `agent` may still answer `caller` before the caller's cap (decision 0029).

    A busy agent may hang up any second, a ringing one may answer: both may. An agent in wrap-up or
    resting after a ring nobody answered may only if that ends before the cap; an unreachable phone may not.
    """
    match agent.status:
        case Free() | Ringing() | Busy():
            return True
        case WrapUp(until=until):
            return until < caller.deadline
        case Resting(until=until, unreachable=unreachable):
            return not unreachable and until < caller.deadline
        case _:
            assert_never(agent.status)


def _send_on_hopeless(spec: QueueSpec, state: QueueState, actions: list[Action], at: datetime) -> Step:
    """Send on at once every waiting caller whom no agent of the queue may answer before their cap."""
    for caller in state.waiting:
        if any(_may_answer(state.agent(a), caller) for a in spec.agents):
            continue
        state, withdrawn = _withdraw(state, caller)
        actions += [*withdrawn, CancelTimer(Timer.MAX_WAIT, caller.call_id), CancelTimer(Timer.POSITION, caller.call_id),
                    Overflow(caller.call_id, caller.waited(at), no_agent=True)]
    return state, actions


def _withdraw(state: QueueState, caller: Caller) -> Step:
    """Take `caller` out of the line and free the agents ringing for it."""
    ringing = state.ringing_for(caller.call_id)
    state = _set(state, *(dataclasses.replace(state.agent(a), status=FREE) for a in ringing))
    state = dataclasses.replace(state, waiting=tuple(c for c in state.waiting if c != caller))
    return state, [CancelRinging(caller.call_id)] if ringing else []


def _offer(spec: QueueSpec, state: QueueState, actions: list[Action]) -> Step:
    """Offer every free agent, taking callers in arrival order (fairness: the longest waiting goes first).

    Ring all: the first caller gets every free agent, so only the head of the line rings.
    Hunt strategies ring one agent per caller at a time; a second free agent goes to the next
    caller in line rather than idling while callers wait toward their cap.
    """
    free = [a for a in spec.agents if isinstance(state.agent(a).status, Free)]
    for caller in state.waiting:
        if not free:
            break
        if spec.strategy is RingStrategy.RINGALL:
            picks = tuple(free)
        elif state.ringing_for(caller.call_id):
            continue
        else:
            picks = (_pick(spec, state, free),)
        free = [a for a in free if a not in picks]
        state = _set(state, *(dataclasses.replace(state.agent(a), status=Ringing(caller.call_id)) for a in picks))
        if spec.strategy is RingStrategy.ROUNDROBIN:
            state = dataclasses.replace(state, last_rung=picks[0])
        actions.append(RingAgents(caller.call_id, picks, spec.ring_seconds))
    return state, actions


def _pick(spec: QueueSpec, state: QueueState, free: list[str]) -> str:
    """The one agent a hunt strategy rings next, among `free` (in configuration order)."""
    if spec.strategy is RingStrategy.ROUNDROBIN:
        order = spec.agents
        start = order.index(state.last_rung) + 1 if state.last_rung in order else 0
        return next(a for a in (*order[start:], *order[:start]) if a in free)
    never = [a for a in free if state.agent(a).last_call_ended is None]
    if never:
        return never[0]
    return min(free, key=lambda a: state.agent(a).last_call_ended or datetime.max)


def _set(state: QueueState, *agents: Agent) -> QueueState:
    """`state` with `agents` replacing those with the same number, or added."""
    changed = {a.e164: a for a in agents}
    kept = tuple(changed.pop(a.e164, a) for a in state.agents)
    return dataclasses.replace(state, agents=(*kept, *changed.values()))
