"""The queues at run time: drives the pure queue core (queueing.py) with ARI, timers and the call flows.

- Agents are rung by originating one channel per agent into the app (`POST /channels`, Stasis
  argument "queue-agent", Asterisk's own ring timeout). An agent who answers enters the app
  (`AgentLegUp`); one who is busy, unreachable or rings out shows up as the channel's destruction.
- Timers are the event loop's; a timer that fires becomes the core's `TimerFired` at the clock's time.
- What concerns a caller (an agent connected, their position due, the wait cap reached) goes to
  that call's flow, which plays, bridges and overflows.
- An agent is offered one fairline call at a time across all queues: a ring to an agent who is
  ringing or talking for another queue is reported to the core as not answered at once, so the
  core rests that agent and the caller hunts on (decision 0011).
- Queue state is held here, by queue name, and survives a configuration reload; a queue removed
  from the configuration keeps its last spec until its callers are gone.
- `status_file` gets a JSON picture of every queue after each change, for `fairline queues`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
import os
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from ari_app.core import flow
from ari_app.core import queueing
from ari_app.ari.client import AriClient
from ari_app.core.model import CONFIRM_SECONDS, Config
from ari_app.errors import AriError, ChannelGone
from ari_app.ari.event_parser import AGENT_LEG
from plumbing.clock import utc_now
from plumbing.tasks import spawn

# Q.850 causes of an agent's leg that say the phone could not be reached at all, as opposed to a person who was
# busy (17), did not answer (18, 19) or declined (21): no route or number (1, 3, 28), absent or out of order
# (20, 27), the network failing or congested (34: SIP 503, 38, 41, 42, 47). Only these send a caller on at once
# when no other agent can answer (decision 0029).
UNREACHABLE_CAUSES = frozenset({1, 3, 20, 27, 28, 34, 38, 41, 42, 47})
STATUS_EVERY_S = 1.0  # the status file is rewritten at most this often (600 agents: about 2 ms each time)
AGENT_LEG_MARK = "-agent-"  # in the id of every channel that rings an agent: <call id>-agent-<n>


class Cancellable(Protocol):
    def cancel(self) -> None: ...


Schedule = Callable[[float, Callable[[], None]], Cancellable]  # run the callable after so many seconds


def loop_timer(seconds: float, fire: Callable[[], None]) -> Cancellable:
    return asyncio.get_running_loop().call_later(seconds, fire)


@dataclasses.dataclass(slots=True)
class Leg:
    """A channel fairline originated to ring one agent for one waiting caller."""

    channel_id: str
    queue: str
    call_id: str
    agent: str
    up: bool = False  # the agent answered (the channel is in the app)
    connected: bool = False  # bridged with the caller
    adopted: bool = False  # found bridged after a restart: the queue's state for it was lost


class Queues:
    def __init__(self, ari: AriClient, config: Config, feed: Callable[[flow.QueueEvent], None],
                 caller_of: Callable[[str], str | None], *, status_file: Path | None = None,
                 clock: Callable[[], datetime] = utc_now, schedule: Schedule = loop_timer) -> None:
        self.ari = ari
        self.config = config
        self.feed = feed  # into the call flow of the call an event is about
        self.caller_of = caller_of  # the caller id of a call, presented to the agents rung for it
        self.status_file = status_file
        self.clock = clock
        self.schedule = schedule
        self.log = structlog.get_logger("fairline.queues")
        self.node = ""  # the node whose Asterisk holds these queues' callers (Asterisk's systemname)
        self.states: dict[str, queueing.QueueState] = {}
        self.specs: dict[str, queueing.QueueSpec] = {}  # the last spec each live queue ran with
        self.where: dict[str, str] = {}  # call id -> the queue it waits in or was connected from
        self.legs: dict[str, Leg] = {}  # by channel id
        self._timers: dict[tuple[str, queueing.Timer, str], Cancellable] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._leg_numbers = itertools.count(1)
        self._status_due: Cancellable | None = None

    # ---- what the app tells the queues

    def join(self, call_id: str, queue: str, within: float | None = None) -> None:
        """Put the caller in line; `within`: what is left of their minute after earlier queues (decision 0029)."""
        self.where[call_id] = queue
        self.log.info("queue.joined", call_id=call_id, queue=queue,
                      **({"left_of_minute_s": round(within, 3)} if within is not None else {}))
        self._step(queue, queueing.CallerJoined(call_id, self.clock(), within))

    def caller_gone(self, call_id: str, at: datetime) -> None:
        """The caller left the queue's hands: hung up, sent on, or released; end what is left of it here."""
        self._adopted_caller_gone(call_id)
        queue = self.where.pop(call_id, None)
        if queue is None:
            return
        self._step(queue, queueing.CallerLeft(call_id, at))
        for leg in [leg for leg in self.legs.values() if leg.call_id == call_id]:
            del self.legs[leg.channel_id]
            self._hang_up(leg, "normal")
            if leg.connected:
                self._step(queue, queueing.CallEnded(call_id, leg.agent, at))

    def _adopted_caller_gone(self, call_id: str) -> None:
        for leg in [leg for leg in self.legs.values() if leg.call_id == call_id and leg.adopted]:
            del self.legs[leg.channel_id]
            self._hang_up(leg, "normal")

    def reload(self, config: Config) -> None:
        self.config = config
        for name in list(self.states):
            if name in config.queues:
                self._step(name, queueing.Reloaded(self.clock()))

    def adopt_connected(self, channel_id: str, call_id: str) -> None:
        """After a restart: an agent's channel found bridged with a caller. Its hang-up releases the caller.

        The queue's state was lost with the previous process, so the agent is not marked busy;
        its queue may offer it another call meanwhile (decision 0015).
        """
        self.legs[channel_id] = Leg(channel_id, "", call_id, "", up=True, connected=True, adopted=True)

    def is_leg(self, channel_id: str) -> bool:
        return channel_id in self.legs

    def agent_answered(self, channel_id: str, at: datetime) -> None:
        leg = self.legs.get(channel_id)
        if leg is None:  # rung by an earlier fairline, or cancelled in the meantime: nobody waits for it
            self.log.warning("queue.unknown_agent_leg", channel_id=channel_id)
            self._spawn(self._delete(channel_id, "normal"), f"queue-hangup-{channel_id}")
            return
        leg.up = True
        self._step(leg.queue, queueing.AgentAnswered(leg.call_id, leg.agent, at))
        if not leg.connected:  # the caller is gone or was given to another agent a moment ago
            self.legs.pop(channel_id, None)
            self._hang_up(leg, "normal")

    def leg_destroyed(self, channel_id: str, at: datetime, cause: int | None) -> None:
        leg = self.legs.pop(channel_id, None)
        if leg is None:
            return
        log = self.log.bind(call_id=leg.call_id, queue=leg.queue, agent=leg.agent)
        if leg.adopted:
            log.info("queue.agent_hung_up")
            self.feed(flow.AgentHungUp(leg.call_id, at))
            return
        if leg.connected:
            log.info("queue.agent_hung_up")
            self._step(leg.queue, queueing.CallEnded(leg.call_id, leg.agent, at))
            self.feed(flow.AgentHungUp(leg.call_id, at))
        else:
            unreachable = cause in UNREACHABLE_CAUSES
            log.info("queue.agent_not_answered", cause=cause, unreachable=unreachable)
            self._step(leg.queue, queueing.AgentNoAnswer(leg.call_id, leg.agent, at, unreachable))

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._status_due is not None:
            self._status_due.cancel()

    # ---- the core and its actions

    def _spec(self, queue: str) -> queueing.QueueSpec:
        configured = self.config.queues.get(queue)
        if configured is not None:
            self.specs[queue] = configured.spec
        return self.specs[queue]

    def _step(self, queue: str, event: queueing.Event) -> None:
        state = self.states.get(queue, queueing.QueueState())
        self.states[queue], actions = queueing.step(self._spec(queue), state, event)
        for action in actions:
            self._do(queue, action)
        if not self.states[queue].waiting and queue not in self.config.queues and not any(
                leg.queue == queue for leg in self.legs.values()):
            del self.states[queue], self.specs[queue]  # removed from the configuration, and now idle
        self.status_changed()

    def _do(self, queue: str, action: queueing.Action) -> None:
        match action:
            case queueing.RingAgents():
                for agent in action.agents:
                    self._ring(queue, action.call_id, agent, action.ring_seconds)
            case queueing.CancelRinging():
                for leg in [leg for leg in self.legs.values() if leg.call_id == action.call_id and not leg.connected]:
                    del self.legs[leg.channel_id]
                    self._hang_up(leg, "normal")
            case queueing.Connect():
                leg = next(leg for leg in self.legs.values()
                           if leg.call_id == action.call_id and leg.agent == action.agent and leg.up)
                leg.connected = True
                self.log.info("queue.connected", call_id=action.call_id, queue=queue, agent=action.agent)
                self.feed(flow.QueueConnected(action.call_id, self.clock(), action.agent, leg.channel_id))
            case queueing.StartTimer():
                key = (queue, action.name, action.key)
                if key in self._timers:
                    self._timers.pop(key).cancel()
                self._timers[key] = self.schedule(action.seconds, functools.partial(self._fire, *key))
            case queueing.CancelTimer():
                handle = self._timers.pop((queue, action.name, action.key), None)
                if handle is not None:
                    handle.cancel()
            case queueing.AnnouncePosition():
                self.feed(flow.PositionDue(action.call_id, self.clock(), action.position, action.expected_seconds))
            case queueing.Overflow():
                configured = self.config.queues.get(queue)
                self.log.info("queue.no_agent_can_answer" if action.no_agent else "queue.wait_cap_reached",
                              call_id=action.call_id, queue=queue, waited_s=round(action.waited_seconds, 3),
                              customer=configured.customer_id if configured is not None else None)
                self.where.pop(action.call_id, None)
                self.feed(flow.QueueOverflowed(action.call_id, self.clock()))
            case queueing.Abandoned():
                self.log.info("queue.abandoned", call_id=action.call_id, queue=queue,
                              waited_s=round(action.waited_seconds, 3))

    def _fire(self, queue: str, name: queueing.Timer, key: str) -> None:
        self._timers.pop((queue, name, key), None)
        try:
            self._step(queue, queueing.TimerFired(name, key, self.clock()))
        except Exception:  # a bug here must not stop the other queues' timers
            self.log.exception("queue.timer_crashed", queue=queue, timer=name.value, key=key)

    def _ring(self, queue: str, call_id: str, agent: str, ring_seconds: int) -> None:
        if any(leg.agent == agent and leg.queue != queue for leg in self.legs.values()):
            # One fairline call at a time: the agent rings or talks for another queue.
            self.schedule(0, functools.partial(self._step, queue, queueing.AgentNoAnswer(call_id, agent, self.clock())))
            return
        leg = Leg(f"{call_id}{AGENT_LEG_MARK}{next(self._leg_numbers)}", queue, call_id, agent)
        self.legs[leg.channel_id] = leg  # before the request: its events may come before the answer
        self._spawn(self._originate(leg, ring_seconds), f"queue-ring-{leg.channel_id}")

    async def _originate(self, leg: Leg, ring_seconds: int) -> None:
        endpoint, timeout = f"PJSIP/{leg.agent}@{flow.TRUNK}", ring_seconds
        if self.config.agent_confirms(leg.queue, leg.agent):  # the leg comes up once the agent pressed 1
            endpoint, timeout = f"Local/{leg.agent}-{ring_seconds}@{flow.CONFIRM}/n", ring_seconds + CONFIRM_SECONDS
        params = {"endpoint": endpoint, "app": self.ari.app, "appArgs": AGENT_LEG,
                  "channelId": leg.channel_id, "timeout": str(timeout), "originator": leg.call_id}
        caller = self.caller_of(leg.call_id)
        if caller is not None:
            params["callerId"] = caller
        try:
            await self.ari.request("POST", "/channels", params)
            self.log.info("queue.ringing", call_id=leg.call_id, queue=leg.queue, agent=leg.agent,
                          channel_id=leg.channel_id)
        except AriError as exc:
            self.log.warning("queue.ring_failed", call_id=leg.call_id, queue=leg.queue, agent=leg.agent,
                             error=str(exc))
            if self.legs.pop(leg.channel_id, None) is not None:  # Asterisk would not ring it: as good as unreachable
                self._step(leg.queue, queueing.AgentNoAnswer(leg.call_id, leg.agent, self.clock(), unreachable=True))

    def _hang_up(self, leg: Leg, reason: str) -> None:
        self._spawn(self._delete(leg.channel_id, reason), f"queue-hangup-{leg.channel_id}")

    async def _delete(self, channel_id: str, reason: str) -> None:
        try:
            await self.ari.request("DELETE", f"/channels/{channel_id}", {"reason": reason})
        except ChannelGone:
            pass
        except AriError as exc:
            self.log.error("queue.agent_hangup_failed", channel_id=channel_id, error=str(exc))

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        spawn(work, name=name, log=self.log, crashed="queue.task_crashed", keep=self._tasks)

    # ---- status for `fairline queues`

    def status(self) -> dict[str, Any]:
        """Every live or configured queue: waiting callers (oldest first) and agents with their state."""
        names = sorted(set(self.config.queues) | set(self.states))
        return {"written_at": self.clock().isoformat(), "pid": os.getpid(), "node": self.node,
                "queues": [self._queue_status(name) for name in names]}

    def _queue_status(self, name: str) -> dict[str, Any]:
        spec = self.config.queues[name].spec if name in self.config.queues else self.specs[name]
        state = self.states.get(name, queueing.QueueState())
        agents = [state.agent(e164) for e164 in spec.agents] + [a for a in state.agents if a.e164 not in spec.agents]
        return {
            "name": name,
            "customer": self.config.queues[name].customer_id if name in self.config.queues else None,
            "strategy": spec.strategy.value, "max_wait_seconds": spec.max_wait_seconds,
            "waiting": [{"call_id": c.call_id, "caller": self.caller_of(c.call_id), "entered_at": c.entered_at.isoformat()}
                        for c in state.waiting],
            "agents": [_agent_status(a, in_config=a.e164 in spec.agents) for a in agents],
        }

    def status_changed(self) -> None:
        if self.status_file is None or self._status_due is not None:
            return
        self._status_due = self.schedule(STATUS_EVERY_S, self._write_status)

    def _write_status(self) -> None:
        self._status_due = None
        if self.status_file is None:
            return
        tmp = self.status_file.with_name(self.status_file.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.status(), separators=(",", ":")) + "\n")
            os.replace(tmp, self.status_file)
        except OSError as exc:
            self.log.error("queue.status_not_written", file=str(self.status_file), error=str(exc))


def _agent_status(agent: queueing.Agent, *, in_config: bool) -> dict[str, Any]:
    status = agent.status
    out: dict[str, Any] = {"agent": agent.e164, "state": type(status).__name__.lower(), "in_config": in_config}
    if isinstance(status, (queueing.Ringing, queueing.Busy)):
        out["call_id"] = status.call_id
    if isinstance(status, (queueing.WrapUp, queueing.Resting)):
        out["until"] = status.until.isoformat()
    if agent.last_call_ended is not None:
        out["last_call_ended"] = agent.last_call_ended.isoformat()
    return out
