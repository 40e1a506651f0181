"""The running ARI application: keeps the events websocket up, feeds the call flow, executes its actions.

One reader task parses events and steps each call's flow synchronously (so state
changes happen in event order); each call has a worker task that executes its
actions in order, so a slow REST request for one call never delays another.

App wires the parts, each with one job: the session with Asterisk (session.py), load
shedding (shedding.py), the action executor (executor.py), adoption after a restart
(adoption.py) and recording (recorder.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from ari_app.core import flow
from ari_app.core.admission import Admission
from ari_app.ari import event_parser
from ari_app.ari.client import AriClient
from ari_app.core.model import Config
from ari_app.core import events
from ari_app.errors import AriError, ChannelGone
from ari_app.queue_runtime import Queues
from ari_app.runtime.adoption import Adoption
from ari_app.runtime.config_watch import ConfigOrigin
from ari_app.runtime.executor import Executor
from ari_app.runtime.messages import Messages
from ari_app.runtime.recorder import Recorder, RecordingDirs
from ari_app.runtime.resync import Resync
from ari_app.runtime.session import Session
from ari_app.runtime.shedding import Shedding
from plumbing.clock import utc_now
from plumbing.metrics import LatencyHistogram
from plumbing.tasks import spawn
from rating.core.cdr import RatedCdr
from rating.core.tariff import RateTable

__all__ = ["App", "CallSession", "RecordingDirs"]

SHUTDOWN_GRACE_S = 5.0

_IN_QUEUE = (flow.Phase.QUEUED, flow.Phase.CONNECTED)  # the queues hold part of the call
# When fairline stops, callers in these phases wait on it alone: they are handed back to the dialplan.
_HANDED_BACK = (flow.Phase.NEW, flow.Phase.NOTICE, flow.Phase.CONSENT, flow.Phase.QUEUED)
HAND_BACK_CONTEXT, HAND_BACK_LABEL = "from-carrier", "fallback"  # dialplan/extensions.conf

# What a call's flow is fed: the call events, and what fairline's own parts report about the call.
FedEvent = events.CallEvent | flow.ActionFailed | flow.QueueEvent | flow.RecordingEvent | flow.Adopted


@dataclasses.dataclass
class CallSession:
    call: flow.Call
    log: structlog.typing.FilteringBoundLogger
    actions: "asyncio.Queue[list[flow.Action] | None]"
    config: Config  # the configuration the call started under: a new version applies to new calls only
    worker: "asyncio.Task[None] | None" = None


class App:
    """fairline's call control, connected to one Asterisk and one database."""

    def __init__(self, ari: AriClient, config: Config, rates: RateTable,
                 submit_cdr: Callable[[RatedCdr], None], *, queue_status_file: Path | None = None,
                 recording_dirs: RecordingDirs | None = None, shed_after_s: float | None = None,
                 asterisk_cdr: Path | None = None) -> None:
        self.ari = ari
        self._config = config
        self.config_origin = ConfigOrigin("file")  # set by whoever sets config (cli.py)
        self.queues = Queues(ari, config, self.feed, self._caller_of, status_file=queue_status_file)
        self.rates = rates  # a reload sets it with the configuration; the executor prices with it
        self.calls: dict[str, CallSession] = {}
        self.calls_routed = 0  # new calls fairline took on (for /metrics: with calls_shed, what reached it)
        self.log = structlog.get_logger("fairline")
        self._workers: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # calls being shed, recorders being started, recordings stored
        self.session = Session(ari, self.log, handle=self.handle, on_connect=self._on_connect)
        self.shedding = Shedding(ari, self.log, shed_after_s=shed_after_s, calls=self.calls, route=self.feed)
        self.recorder = Recorder(ari, self.log, recording_dirs, call_of=self._call_of, feed=self.feed)
        self.messages = Messages(ari, self.log, recording_dirs, feed=self.feed)
        self.adoption = Adoption(ari, self.log, queues=self.queues, known=self.calls.__contains__, feed=self.feed)
        self.resync = Resync(ari, self.log, queues=self.queues, calls=lambda: [s.call for s in self.calls.values()],
                             feed=self.feed, asterisk_cdr=asterisk_cdr)
        self.executor = Executor(ari, queues=self.queues, recorder=self.recorder, messages=self.messages,
                                 shedding=self.shedding,
                                 feed=self.feed, is_live=self.calls.__contains__, is_queued=self._is_queued,
                                 config=lambda: self.config,
                                 rates=lambda: self.rates, submit_cdr=submit_cdr)

    # ---- the public surface (cli.py, health.py, the tests)

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """A new version: new calls take it; calls in progress keep the flow they started with, and live
        queues their callers and agents."""
        self._config = config
        self.queues.reload(config)

    @property
    def ari_connected(self) -> bool:
        """The events websocket is up (for /healthz)."""
        return self.session.connected

    @property
    def ari_reconnects(self) -> int:
        """Connections after the first (for /metrics)."""
        return self.session.reconnects

    @property
    def calls_shed(self) -> int:
        return self.shedding.calls_shed

    @property
    def admission(self) -> Admission:
        return self.shedding.admission

    @property
    def asterisk_delay(self) -> LatencyHistogram:
        return self.shedding.asterisk_delay

    @property
    def event_delay(self) -> LatencyHistogram:
        return self.shedding.event_delay

    @property
    def request_latency_s(self) -> float:
        return self.shedding.request_latency_s

    @property
    def dial_delay_s(self) -> float:
        return self.shedding.dial_delay_s

    @property
    def recording_dirs(self) -> RecordingDirs | None:
        return self.recorder.dirs

    @property
    def release_retry_delays(self) -> tuple[float, ...]:
        return self.executor.release_retry_delays

    @release_retry_delays.setter
    def release_retry_delays(self, delays: tuple[float, ...]) -> None:
        self.executor.release_retry_delays = delays

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected to ARI until `stop` is set (reconnecting with back-off); then hand the callers who
        wait on fairline back to the dialplan, and finish the calls' work."""
        await self.session.run(stop)
        await self._hand_back()
        await self._drain()

    # ---- events in

    def handle(self, message: str) -> None:
        """Parse one events-websocket message and step the flow of the call it is about."""
        try:
            event = event_parser.parse(message)
        except event_parser.BadEvent as exc:
            self.log.warning("ari.bad_event", error=str(exc), message=message[:300])
            return
        if isinstance(event, events.Ignored):
            return
        self.log.debug("ari.event", call_id=event.channel_id, event_type=type(event).__name__)
        try:
            if isinstance(event, events.CallStarted):
                self.shedding.started(event)
            if isinstance(event, events.CallStarted) and self.shedding.lagging(event):
                self._spawn(self.shedding.shed(event), f"shed-{event.channel_id}")
            elif isinstance(event, events.AgentLegUp):
                self.queues.agent_answered(event.channel_id, event.at)
            elif isinstance(event, events.RecorderUp):
                self._spawn(self.recorder.record(event.channel_id), f"record-{event.channel_id}")
            elif isinstance(event, events.RecordingEnded):
                self._spawn(self.recorder.store(event), f"store-recording-{event.channel_id}")
            elif isinstance(event, events.MessageEnded):
                self._spawn(self.messages.store(event), f"store-message-{event.channel_id}")
            elif self.queues.is_leg(event.channel_id) and event.channel_id not in self.calls:
                # (A caller's channel whose id looks like a leg's, "X-agent-1", is still a call: Asterisk
                # refuses a second channel of that id, so the leg never came to be.)
                if isinstance(event, events.CallDestroyed):
                    self.queues.leg_destroyed(event.channel_id, event.at, event.cause)
            else:
                if isinstance(event, events.CallStarted) and (percent := self.shedding.routed()):
                    self._spawn(self.shedding.admit(percent), "admit")  # the load is gone: let more calls in again
                if isinstance(event, events.TargetDialed):
                    self.shedding.target_dialed(event)
                if isinstance(event, events.DialReturned) and self.resync.stale(event, self._call_of(event.channel_id)):
                    self.log.info("call.stale_dial_return", call_id=event.channel_id, status=event.status)
                    return
                self.feed(event)
        except Exception:
            # A bug in handling one call must not stop the events of all the others.
            self.log.exception("call.handler_crashed", call_id=event.channel_id, message=message[:300])

    def feed(self, event: FedEvent) -> None:
        """Step the flow of the call `event` is about; queue the actions it asks for on the call's worker."""
        session = self.calls.get(event.channel_id)
        if session is None:
            if isinstance(event, events.DialReturned):
                self.log.warning("call.adopted", call_id=event.channel_id, status=event.status, did=event.did)
            elif not isinstance(event, (events.CallStarted, flow.Adopted)):
                self.log.debug("ari.event_for_unknown_call", call_id=event.channel_id, event_type=type(event).__name__)
                return
            session = self._open(event)
        before = session.call.phase
        session.call, actions = flow.step(session.call, event, session.config)
        after = session.call.phase
        if after is not before:
            session.log.debug("call.phase", phase=after.value, on=type(event).__name__)
            if before in _IN_QUEUE and after not in _IN_QUEUE:
                self.queues.caller_gone(event.channel_id, event.at)
        if actions:
            session.actions.put_nowait(actions)
        if session.call.phase is flow.Phase.ENDED:
            self.shedding.forget(event.channel_id)
            session.actions.put_nowait(None)
            del self.calls[event.channel_id]

    # ---- each call's worker

    def _open(self, event: events.CallStarted | events.DialReturned | flow.Adopted) -> CallSession:
        log = self.log.bind(call_id=event.channel_id)
        log.info("call.started", did=event.did, caller=event.caller)
        self.calls_routed += 1
        session = CallSession(flow.Call(call_id=event.channel_id), log, asyncio.Queue(), self.config)
        self.calls[event.channel_id] = session
        session.worker = spawn(self._work(session), name=f"call-{event.channel_id}", log=self.log,
                               crashed="call.worker_crashed", keep=self._workers)
        return session

    async def _work(self, session: CallSession) -> None:
        call_id = session.call.call_id
        while (actions := await session.actions.get()) is not None:
            for action in actions:
                try:
                    await self.executor.execute(call_id, action, session.log)
                except ChannelGone:
                    session.log.info("call.gone_before_action", action=type(action).__name__)
                    break
                except Exception as exc:
                    # Any failure (an ARI error or a bug of ours) releases the caller instead of
                    # leaving them in silence, and the worker lives on to write the CDR.
                    if isinstance(exc, AriError):
                        session.log.error("call.action_failed", action=type(action).__name__, error=str(exc))
                    else:
                        session.log.exception("call.action_crashed", action=type(action).__name__)
                    if call_id in self.calls:
                        self.feed(flow.ActionFailed(call_id, utc_now()))
                    break

    # ---- wiring

    async def _on_connect(self) -> None:
        """The events websocket is up; its events wait until this returns."""
        if self.queues.node != self.session.node:  # the node's name, from Asterisk: `fairline queues`, /metrics
            self.queues.node = self.session.node
            self.queues.status_changed()
        await self.session.filter_events()
        await self.shedding.restart()
        if self.session.down_since is not None:  # a reconnect: what the calls fairline holds missed meanwhile
            await self.resync.after_reconnect(self.session.down_since)
        await self.adoption.adopt_channels()
        self.shedding.listening_since = utc_now()

    def _is_queued(self, call_id: str) -> bool:
        session = self.calls.get(call_id)
        return session is not None and session.call.phase is flow.Phase.QUEUED

    def _caller_of(self, call_id: str) -> str | None:
        session = self.calls.get(call_id)
        return session.call.caller if session is not None else None

    def _call_of(self, call_id: str) -> flow.Call | None:
        session = self.calls.get(call_id)
        return session.call if session is not None else None

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        spawn(work, name=name, log=self.log, keep=self._tasks)

    async def _hand_back(self) -> None:
        """fairline stops: a caller who waits on it (nothing rings yet, a notice, a consent prompt, a queue)
        would wait in Stasis() in silence until a restarted fairline adopts the call, or for good. Each is
        sent to the dialplan's fallback for the number (extensions.conf, `from-carrier`, label `fallback`),
        as a call that came while fairline was down; from there on Asterisk's CDR has it, which `fairline
        reconcile --import` takes in. Calls in Dial() or bridged with an agent go on as they are."""
        for session in list(self.calls.values()):
            call = session.call
            if call.phase not in _HANDED_BACK:
                continue
            try:
                await self.ari.request("POST", f"/channels/{call.call_id}/continue",
                                       {"context": HAND_BACK_CONTEXT, "extension": call.data.did,
                                        "label": HAND_BACK_LABEL})
            except AriError as exc:
                session.log.warning("call.not_handed_back", error=str(exc))
                continue
            session.log.warning("call.handed_back", phase=call.phase.value, to=f"{HAND_BACK_CONTEXT},{call.data.did},"
                                                                             f"{HAND_BACK_LABEL}")
            session.actions.put_nowait(None)
            self.shedding.forget(call.call_id)
            self.queues.caller_gone(call.call_id, utc_now())
            del self.calls[call.call_id]

    async def _drain(self) -> None:
        """On shutdown, let running workers finish what they were doing (CDR writes above all)."""
        self.queues.close()
        for session in list(self.calls.values()):
            session.actions.put_nowait(None)
        if self._workers:
            done, pending = await asyncio.wait(set(self._workers), timeout=SHUTDOWN_GRACE_S)
            for task in pending:
                task.cancel()
        if self.calls:
            self.log.warning("shutdown.calls_left_in_asterisk", calls=sorted(self.calls))
