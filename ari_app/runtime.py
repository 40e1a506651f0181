"""The running ARI application: keeps the events websocket up, feeds the call flow, executes its actions.

One reader task parses events and steps each call's flow synchronously (so state
changes happen in event order); each call has a worker task that executes its
actions in order, so a slow REST request for one call never delays another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any
from datetime import datetime, timezone
from pathlib import Path

import structlog

from ari_app import admission, consent, events, recording_store
from ari_app.core import flow
from ari_app.ari import AriClient
from ari_app.config import Config
from ari_app.errors import AriError, AriUnauthorized, ChannelGone, FairlineError
from ari_app.queue_runtime import AGENT_LEG_MARK, Queues
from rating.cdr import RatedCdr, rate_record
from rating.tariff import RateTable

MIN_ASTERISK_MAJOR = 22
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
SHUTDOWN_GRACE_S = 5.0


EVENTS_USED = ("StasisStart", "StasisEnd", "ChannelStateChange", "ChannelHangupRequest", "ChannelDestroyed",
               "PlaybackFinished", "Dial", "ChannelDtmfReceived", "RecordingFinished", "RecordingFailed")
DIAL_CONTEXT = "fairline-dial"  # dialplan/extensions.conf: Dial() of what the extension names, then back to fairline


_IN_QUEUE = (flow.Phase.QUEUED, flow.Phase.CONNECTED)  # the queues hold part of the call
RECORDING_GRACE_S = 10.0  # after a recorded call ends, how long its CDR waits for the stored recording
# A routed call's first step: subscribe, then continue into Dial() (decision 0017).
ROUTE_ROUND_TRIPS = 2
LATENCY_WEIGHT = 0.2  # of the newest request in the running estimate of ARI's latency
SHED_CONTEXT, SHED_LABEL = "from-carrier", "shed"  # dialplan/extensions.conf: the fallback, without its warning
# The share of new calls, in percent, the dialplan lets into the app; the others take the fallback
# without costing fairline anything (ari_app/admission.py, decision 0016).
ADMIT_VARIABLE = "FAIRLINE_ADMIT"
RECORDER_SUFFIX = "-recorder"  # the snoop channel that records call X is X-recorder
RECORDING_VARIABLE = "FAIRLINE_RECORDING"  # on a call's recorder channel: "mode|evidence", for adoption


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingDirs:
    asterisk: Path  # where Asterisk writes recordings (its astspooldir/recording), as fairline sees that directory
    store: Path  # fairline's recordings directory: only fairline's user may read it


class UnsupportedAsterisk(FairlineError):
    """The Asterisk fairline talks to is older than the one it was built for."""


def asterisk_major(version: str) -> int:
    """22 for '22.10.1+dfsg+~cs6.17.60671434-1' and for Certified Asterisk's 'certified-22.8-cert4'."""
    m = re.match(r"\s*(?:certified[/-])?(\d+)\.", version)
    if not m:
        raise UnsupportedAsterisk(f"cannot read Asterisk's version from {version!r}")
    return int(m.group(1))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _bridge_id(call_id: str) -> str:
    return f"{call_id}-bridge"


def backoff_delays(first: float = BACKOFF_FIRST_S, cap: float = BACKOFF_MAX_S) -> "list[float]":
    """Reconnect delays: doubling from `first` up to `cap` (run() adds jitter)."""
    if not 0 < first <= cap:
        raise ValueError(f"expected 0 < first <= cap, got first={first}, cap={cap}")
    delays, d = [], first
    while d < cap:
        delays.append(d)
        d *= 2
    delays.append(cap)
    return delays


@dataclasses.dataclass
class CallSession:
    call: flow.Call
    log: structlog.typing.FilteringBoundLogger
    actions: "asyncio.Queue[list[flow.Action] | None]"
    worker: "asyncio.Task[None] | None" = None


class App:
    """fairline's call control, connected to one Asterisk and one database."""

    def __init__(self, ari: AriClient, config: Config, rates: RateTable,
                 submit_cdr: Callable[[RatedCdr], None], *, queue_status_file: Path | None = None,
                 recording_dirs: RecordingDirs | None = None, shed_after_s: float | None = None) -> None:
        self.ari = ari
        self._config = config
        self.queues = Queues(ari, config, self.feed, self._caller_of, status_file=queue_status_file)
        self.rates = rates
        self.submit_cdr = submit_cdr  # never blocks: the CDR writer queues and spools
        self.calls: dict[str, CallSession] = {}
        self.log = structlog.get_logger("fairline")
        self._workers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # recorders being started, recordings being stored
        self.recording_dirs = recording_dirs
        self.release_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)
        self.ari_connected = False  # the events websocket is up (for /healthz)
        self.ari_reconnects = 0  # connections after the first (for /metrics)
        # Overload: a new call whose StasisStart reaches fairline later than this is handed to the
        # dialplan fallback at once (one request instead of routing), so Asterisk's event queue drains.
        self.shed_after_s = shed_after_s
        self.calls_shed = 0
        self.calls_routed = 0  # new calls fairline took on (for /metrics: with calls_shed, what reached it)
        self.admission = admission.Admission()
        # Running estimates of one ARI request's round trip, and of how long Asterisk takes from
        # fairline's continue into Dial() to dialling (where an overloaded Asterisk keeps callers
        # waiting). Each halves every second without news, so an overload that has passed does not
        # go on shedding the first calls after a quiet spell.
        self._request_latency = admission.RunningEstimate(LATENCY_WEIGHT)
        self._dial_delay = admission.RunningEstimate(LATENCY_WEIGHT)
        self._dial_sent: dict[str, datetime] = {}
        # Since when fairline handles events: a call that came in while it was not listening (down,
        # reconnecting, adopting) waited for that, not for an overload, and is not shed for it.
        self._listening_since = datetime.min.replace(tzinfo=timezone.utc)
        self._connections = 0

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """A reload: new calls take the new configuration; live queues keep their callers and agents."""
        self._config = config
        self.queues.reload(config)

    def _caller_of(self, call_id: str) -> str | None:
        session = self.calls.get(call_id)
        return session.call.caller if session is not None else None

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected to ARI until `stop` is set; reconnect with back-off when the connection drops."""
        delays = backoff_delays()
        attempt = 0
        while not stop.is_set():
            try:
                await self._check_asterisk()
                attempt = 0
                self.ari_connected = True
                self._connections += 1
                self.ari_reconnects = self._connections - 1
                try:
                    await self._consume(stop)
                finally:
                    self.ari_connected = False
                if not stop.is_set():
                    self.log.warning("ari.disconnected")
            except AriUnauthorized:
                raise
            except AriError as exc:
                self.log.warning("ari.unreachable", error=str(exc))
            if stop.is_set():
                break
            delay = delays[min(attempt, len(delays) - 1)] * random.uniform(0.8, 1.2)
            attempt += 1
            self.log.info("ari.reconnecting", in_s=round(delay, 2))
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
        await self._drain()

    async def _check_asterisk(self) -> None:
        info = await self.ari.request("GET", "/asterisk/info", {"only": "system"})
        version = str(info.get("system", {}).get("version", "")) if isinstance(info, dict) else ""
        major = asterisk_major(version)
        if major < MIN_ASTERISK_MAJOR:
            raise UnsupportedAsterisk(f"Asterisk {version} is too old: fairline needs {MIN_ASTERISK_MAJOR} or newer")
        self.log.info("ari.connected", asterisk_version=version, app=self.ari.app)
        await self._forget_vanished_calls()

    async def _forget_vanished_calls(self) -> None:
        """After a reconnect, end the calls that hung up while we were not listening.

        Their StasisEnd was lost with the connection; without this they would never get a CDR.
        The end time is when we noticed, the best we know.
        """
        for call_id in list(self.calls):
            try:
                await self.ari.request("GET", f"/channels/{call_id}")
            except ChannelGone:
                self.calls[call_id].log.warning("call.ended_while_disconnected")
                self.feed(events.CallDestroyed(call_id, datetime.now(timezone.utc), None))
            except AriError as exc:
                self.log.warning("call.check_failed", call_id=call_id, error=str(exc))

    async def _consume(self, stop: asyncio.Event) -> None:
        reader = asyncio.create_task(self._read_events())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not reader.done():
                reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass

    async def _read_events(self) -> None:
        async for message in self.ari.events(on_connect=self._on_connect):
            self.handle(message)

    async def _on_connect(self) -> None:
        """The events websocket is up; its events wait until this returns."""
        await self._filter_events()
        self.admission = admission.Admission()  # whatever share an earlier fairline left: all calls again
        await self._admit(self.admission.percent)
        await self._adopt_channels()
        self._listening_since = _now()

    async def _filter_events(self) -> None:
        """Ask Asterisk for the events fairline acts on only: fewer events, less load on the app's queue."""
        try:
            await self.ari.request("PUT", f"/applications/{self.ari.app}/eventFilter",
                                   body={"allowed": [{"type": t} for t in EVENTS_USED], "disallowed": []})
        except AriError as exc:  # an optimisation: without it fairline ignores the extra events
            self.log.warning("ari.event_filter_failed", error=str(exc))

    async def _adopt_channels(self) -> None:
        """Take over the calls a previous fairline left in Asterisk (decision 0015).

        Runs once the websocket is up and before its first event is handled, so no event of an
        adopted call is missed. A channel fairline already knows is left alone.
        """
        try:
            channels = await self.ari.request("GET", "/channels")
            bridges = await self.ari.request("GET", "/bridges")
        except AriError as exc:
            self.log.warning("adoption.skipped", error=str(exc))
            return
        in_bridges = {str(b.get("id")): [str(c) for c in b.get("channels", [])]
                      for b in (bridges if isinstance(bridges, list) else []) if isinstance(b, dict)}
        for channel in channels if isinstance(channels, list) else []:
            try:
                await self._adopt(channel, in_bridges)
            except (AriError, KeyError, TypeError, ValueError, events.BadEvent) as exc:
                self.log.warning("adoption.failed", call_id=str(channel.get("id") if isinstance(channel, dict) else ""),
                                 error=str(exc))

    async def _adopt(self, channel: dict[str, Any], in_bridges: dict[str, list[str]]) -> None:
        cid = str(channel["id"])
        dialplan = channel.get("dialplan") or {}
        in_app = dialplan.get("app_name") == "Stasis" and str(dialplan.get("app_data", "")).split(",")[0] == self.ari.app
        # In fairline-dial's Dial(); a channel back in Stasis from there still shows that context.
        in_dial = dialplan.get("context") == DIAL_CONTEXT and dialplan.get("app_name") == "Dial"
        if cid in self.calls or self.queues.is_leg(cid) or not (in_app or in_dial):
            return
        if cid.endswith(RECORDER_SUFFIX):
            return  # ends with the call it records
        if AGENT_LEG_MARK in cid:
            if not any(cid in members for members in in_bridges.values()):
                self.log.warning("adoption.agent_leg_released", channel_id=cid)  # rung for a caller now lost
                await self._forgiving("DELETE", f"/channels/{cid}")
            return
        now = _now()
        number = (channel.get("caller") or {}).get("number")
        caller = None if not isinstance(number, str) or number.strip().lower() in events.WITHHELD else number
        started = events.parse_time(channel.get("creationtime"), "channel.creationtime")
        from_carrier = dialplan.get("context") != DIAL_CONTEXT  # still where it came in: the exten is the DID
        did = str(dialplan.get("exten", "")) if from_carrier else await self._variable(cid, "FAIRLINE_DID")
        answered = await self._answer_time(cid) if channel.get("state") == "Up" else None
        bridge = in_bridges.get(_bridge_id(cid), [])
        agent = next((c for c in bridge if c != cid), None)
        where = flow.Found.DIALING if in_dial else flow.Found.BRIDGED if agent is not None else flow.Found.HELD
        log = self.log.bind(call_id=cid)
        if where is flow.Found.HELD and answered is None:  # never answered: route it from the start
            log.warning("call.adopted_after_restart", where="new", did=did)
            self.feed(events.CallStarted(cid, now, did, caller, started, str(channel.get("state", ""))))
            return
        if in_dial:
            await self.ari.request("POST", f"/applications/{self.ari.app}/subscription", {"eventSource": f"channel:{cid}"})
        if agent is not None:
            self.queues.adopt_connected(agent, cid)
        recording = None
        if await self._recorder_exists(cid):
            recording = await self._recording_terms(cid)
        log.warning("call.adopted_after_restart", where=where, did=did, answered=answered is not None,
                    recorded=recording is not None)
        self.feed(flow.Adopted(cid, now, did, caller, started, answered, where, agent, recording))

    async def _variable(self, channel_id: str, name: str) -> str:
        answer = await self.ari.request("GET", f"/channels/{channel_id}/variable", {"variable": name})
        return str(answer.get("value", "")) if isinstance(answer, dict) else ""

    async def _answer_time(self, channel_id: str) -> datetime | None:
        """When Asterisk answered the channel (its CDR's answer time), so an adopted call is billed exactly."""
        raw = await self._variable(channel_id, "CDR(answer,u)")
        try:
            stamp = float(raw)
        except ValueError:
            return None
        return datetime.fromtimestamp(stamp, timezone.utc) if stamp > 0 else None

    async def _recorder_exists(self, call_id: str) -> bool:
        try:
            await self.ari.request("GET", f"/channels/{call_id}{RECORDER_SUFFIX}")
        except ChannelGone:
            return False
        return True

    async def _recording_terms(self, call_id: str) -> tuple[consent.Mode, str] | None:
        """The mode and evidence a recording started under, kept on the channel for a restarted fairline."""
        mode, _, evidence = (await self._variable(f"{call_id}{RECORDER_SUFFIX}", RECORDING_VARIABLE)).partition("|")
        try:
            return consent.Mode(mode), evidence
        except ValueError:
            return None

    def handle(self, message: str) -> None:
        """Parse one events-websocket message and step the flow of the call it is about."""
        try:
            event = events.parse(message)
        except events.BadEvent as exc:
            self.log.warning("ari.bad_event", error=str(exc), message=message[:300])
            return
        if isinstance(event, events.Ignored):
            return
        self.log.debug("ari.event", call_id=event.channel_id, event_type=type(event).__name__)
        try:
            if isinstance(event, events.CallStarted) and self._lagging(event):
                self._spawn(self._shed(event))
            elif isinstance(event, events.AgentLegUp):
                self.queues.agent_answered(event.channel_id, event.at)
            elif isinstance(event, events.RecorderUp):
                self._spawn(self._record(event.channel_id))
            elif isinstance(event, events.RecordingEnded):
                self._spawn(self._store_recording(event))
            elif self.queues.is_leg(event.channel_id):
                if isinstance(event, events.CallDestroyed):
                    self.queues.leg_destroyed(event.channel_id, event.at, event.cause)
            else:
                if isinstance(event, events.CallStarted) and (percent := self.admission.routed(time.monotonic())):
                    self._spawn(self._admit(percent))  # the load is gone: let more calls in again
                if isinstance(event, events.TargetDialed) and event.channel_id in self._dial_sent:
                    self._note_dial_delay(max(0.0, (event.at - self._dial_sent.pop(event.channel_id)).total_seconds()))
                self.feed(event)
        except Exception:
            # A bug in handling one call must not stop the events of all the others.
            self.log.exception("call.handler_crashed", call_id=event.channel_id, message=message[:300])

    def _lagging(self, event: events.CallStarted) -> bool:
        """Would routing this call keep its caller waiting past the budget? (decision 0016)

        The wait so far counts from the channel's creation (its StasisStart may be on time while
        Asterisk itself is behind), and routing needs ROUTE_ROUND_TRIPS round trips at the latency
        Asterisk answers them with now.
        """
        if self.shed_after_s is None or event.channel_id in self.calls:
            return False
        return self._expected_wait(event) > self.shed_after_s

    def _expected_wait(self, event: events.CallStarted) -> float:
        waited = (_now() - max(min(event.at, event.started_at), self._listening_since)).total_seconds()
        return waited + ROUTE_ROUND_TRIPS * self.request_latency_s + self.dial_delay_s

    @property
    def request_latency_s(self) -> float:
        return self._request_latency.at(time.monotonic())

    @property
    def dial_delay_s(self) -> float:
        return self._dial_delay.at(time.monotonic())

    def _note_dial_delay(self, seconds: float) -> None:
        self._dial_delay.note(seconds, time.monotonic())

    def _note_latency(self, seconds: float) -> None:
        """One ARI request's round trip, into the running estimate (shed calls keep it current too)."""
        self._request_latency.note(seconds, time.monotonic())

    async def _shed(self, event: events.CallStarted) -> None:
        """Hand a new call to the dialplan fallback (the number's first target), as if fairline were down."""
        self.calls_shed += 1
        self.log.warning("call.shed", call_id=event.channel_id, did=event.did,
                         lag_s=round((_now() - min(event.at, event.started_at)).total_seconds(), 3),
                         expected_wait_s=round(self._expected_wait(event), 3), reason="overload")
        try:
            started = time.monotonic()
            await self.ari.request("POST", f"/channels/{event.channel_id}/continue",
                                   {"context": SHED_CONTEXT, "extension": event.did, "label": SHED_LABEL})
            self._note_latency(time.monotonic() - started)
        except ChannelGone:
            pass
        except AriError as exc:  # the call stays in the app: route it after all rather than leave it
            self.log.error("call.shed_failed", call_id=event.channel_id, error=str(exc))
            self.feed(event)
        if (percent := self.admission.shed(time.monotonic())) is not None:
            await self._admit(percent)

    async def _admit(self, percent: int) -> None:
        """Tell the dialplan what share of new calls to let into the app (a global variable)."""
        try:
            await self.ari.request("POST", "/asterisk/variable", {"variable": ADMIT_VARIABLE, "value": str(percent)})
        except AriError as exc:  # the calls it would have kept away come to the app and are shed one by one
            self.log.error("call.admission_failed", percent=percent, error=str(exc))
            return
        log = self.log.warning if percent < 100 else self.log.info
        log("call.admission", percent=percent)

    def feed(self, event: events.CallEvent | flow.ActionFailed | flow.QueueEvent | flow.RecordingEvent | flow.Adopted) -> None:
        session = self.calls.get(event.channel_id)
        if session is None:
            if isinstance(event, events.DialReturned):
                self.log.warning("call.adopted", call_id=event.channel_id, status=event.status, did=event.did)
            elif not isinstance(event, (events.CallStarted, flow.Adopted)):
                self.log.debug("ari.event_for_unknown_call", call_id=event.channel_id, event_type=type(event).__name__)
                return
            session = self._open(event)
        before = session.call.phase
        session.call, actions = flow.step(session.call, event, self.config)
        after = session.call.phase
        if after is not before:
            session.log.debug("call.phase", phase=after.value, on=type(event).__name__)
            if before in _IN_QUEUE and after not in _IN_QUEUE:
                self.queues.caller_gone(event.channel_id, event.at)
        if actions:
            session.actions.put_nowait(actions)
        if session.call.phase is flow.Phase.ENDED:
            self._dial_sent.pop(event.channel_id, None)
            session.actions.put_nowait(None)
            del self.calls[event.channel_id]

    def _open(self, event: events.CallStarted | events.DialReturned | flow.Adopted) -> CallSession:
        log = self.log.bind(call_id=event.channel_id)
        log.info("call.started", did=event.did, caller=event.caller)
        self.calls_routed += 1
        session = CallSession(flow.Call(call_id=event.channel_id), log, asyncio.Queue())
        self.calls[event.channel_id] = session
        session.worker = asyncio.create_task(self._work(session), name=f"call-{event.channel_id}")
        self._workers.add(session.worker)
        session.worker.add_done_callback(self._worker_done)
        return session

    def _worker_done(self, task: "asyncio.Task[None]") -> None:
        self._workers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("call.worker_crashed", task=task.get_name(), exc_info=task.exception())

    async def _work(self, session: CallSession) -> None:
        call_id = session.call.call_id
        while (actions := await session.actions.get()) is not None:
            for action in actions:
                try:
                    await self._execute(call_id, action, session.log)
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
                        self.feed(flow.ActionFailed(call_id, datetime.now(timezone.utc)))
                    break

    async def _execute(self, call_id: str, action: flow.Action, log: structlog.typing.FilteringBoundLogger) -> None:
        path = f"/channels/{call_id}"
        if isinstance(action, flow.Answer):
            started = time.monotonic()
            await self.ari.request("POST", path + "/answer")
            # A queued caller waits for this one: an overloaded Asterisk shows in it (decision 0016).
            self._note_latency(time.monotonic() - started)
        elif isinstance(action, flow.Progress):
            await self.ari.request("POST", path + "/progress")
        elif isinstance(action, flow.Play):
            await self.ari.request("POST", path + "/play", {"media": action.media, "playbackId": action.playback_id})
            log.info("call.playing", media=action.media)
        elif isinstance(action, flow.Dial):
            extension = action.extension
            if extension is None:  # too long for an extension: the dial goes in FAIRLINE_DIAL
                extension = "s"
                setting = self.ari.request("POST", path + "/variable", {"variable": "FAIRLINE_DIAL",
                                                                        "value": action.dial})
                if action.follow:  # both must be done before the channel leaves the app; neither waits for the other
                    await asyncio.gather(self._follow(call_id), setting)
                else:
                    await setting
            elif action.follow:  # the subscription must be in place before the channel leaves the app
                await self._follow(call_id)
            await self.ari.request("POST", path + "/continue", {"context": DIAL_CONTEXT, "extension": extension,
                                                                "priority": "1"})
            self._dial_sent[call_id] = _now()  # its Dial event tells how long Asterisk took to act on it
            log.info("call.dialing", dial=action.dial)
        elif isinstance(action, flow.JoinQueue):
            self.queues.join(call_id, action.name)
        elif isinstance(action, flow.StartMoh):
            await self.ari.request("POST", path + "/moh")
        elif isinstance(action, flow.StopMoh):
            await self._forgiving("DELETE", path + "/moh", also=(409,))  # no music playing is fine
        elif isinstance(action, flow.StopPlayback):
            await self._forgiving("DELETE", f"/playbacks/{action.playback_id}")  # it may have just ended
        elif isinstance(action, flow.Bridge):
            bridge = _bridge_id(call_id)
            await self.ari.request("POST", "/bridges", {"type": "mixing", "bridgeId": bridge})
            await self.ari.request("POST", f"/bridges/{bridge}/addChannel",
                                   {"channel": f"{call_id},{action.agent_channel}"})
            log.info("call.bridged", agent_channel=action.agent_channel)
        elif isinstance(action, flow.DestroyBridge):
            await self._forgiving("DELETE", f"/bridges/{_bridge_id(call_id)}")
        elif isinstance(action, flow.AwaitDigit):
            self._later(action.seconds, lambda: flow.DigitTimeout(call_id, _now()))
        elif isinstance(action, flow.StartRecording):
            session = self.calls.get(call_id)
            if session is not None:
                await self._start_recorder(session.call, log)
        elif isinstance(action, flow.AwaitRecording):
            self._later(RECORDING_GRACE_S, lambda: flow.RecordingLost(
                call_id, _now(), f"not stored within {RECORDING_GRACE_S:.0f} s of the call's end"))
        elif isinstance(action, flow.Hangup):
            await self._release(call_id, action.reason, log)
        elif isinstance(action, flow.WriteCdr):
            self._write_cdr(action, log)

    async def _follow(self, call_id: str) -> None:
        """Subscribe to the call's channel, so its events still come once it leaves the app for Dial()."""
        started = time.monotonic()
        await self.ari.request("POST", f"/applications/{self.ari.app}/subscription", {"eventSource": f"channel:{call_id}"})
        self._note_latency(time.monotonic() - started)

    def _later(self, seconds: float, event: Callable[[], flow.RecordingEvent]) -> None:
        """Feed the event made by `event` in `seconds` (the flow ignores it if the call moved on)."""
        asyncio.get_running_loop().call_later(seconds, lambda: self.feed(event()))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_recorder(self, call: flow.Call, log: structlog.typing.FilteringBoundLogger) -> None:
        """A snoop channel on the caller hears both parties; it records once it is in the app (RecorderUp)."""
        call_id = call.call_id
        if self.recording_dirs is None:
            log.error("recording.not_set_up", reason="no recordings directory configured")
            self.feed(flow.RecordingLost(call_id, _now(), "recording is not set up: no recordings directory"))
            return
        try:
            await self.ari.request("POST", f"/channels/{call_id}/snoop", {
                "spy": "both", "whisper": "none", "app": self.ari.app, "appArgs": events.SNOOP_LEG,
                "snoopId": f"{call_id}{RECORDER_SUFFIX}"})
        except AriError as exc:  # the call goes on unrecorded; never a reason to drop it
            log.error("recording.not_started", error=str(exc))
            self.feed(flow.RecordingLost(call_id, _now(), f"could not start: {exc}"))

    async def _record(self, recorder_id: str) -> None:
        """Record on the snoop channel, which first gets the mode and evidence: a restarted fairline reads them there
        (the caller's own channel may be in Dial(), where ARI cannot set variables)."""
        call_id = recorder_id.removesuffix(RECORDER_SUFFIX)
        session = self.calls.get(call_id)
        try:
            if session is not None and session.call.record_mode is not None:
                await self.ari.request("POST", f"/channels/{recorder_id}/variable", {
                    "variable": RECORDING_VARIABLE,
                    "value": f"{session.call.record_mode.value}|{session.call.record_evidence}"})
            await self.ari.request("POST", f"/channels/{recorder_id}/record", {
                "name": call_id, "format": "wav", "ifExists": "overwrite", "beep": "false", "terminateOn": "none"})
            self.log.info("recording.started", call_id=call_id)
        except AriError as exc:
            self.log.error("recording.not_started", call_id=call_id, error=str(exc))
            self.feed(flow.RecordingLost(call_id, _now(), f"could not start: {exc}"))

    async def _store_recording(self, event: events.RecordingEnded) -> None:
        """Move the finished file from Asterisk's spool into the recordings directory, hashed, then tell the flow."""
        call_id, log = event.channel_id, self.log.bind(call_id=event.channel_id)
        if event.failed is not None or self.recording_dirs is None:
            log.error("recording.failed", reason=event.failed)
            self.feed(flow.RecordingLost(call_id, event.at, event.failed or "no recordings directory"))
            return
        source = self.recording_dirs.asterisk / f"{call_id}.wav"
        try:
            stored = await asyncio.to_thread(recording_store.store, source, self.recording_dirs.store, call_id, event.at)
        except recording_store.RecordingStoreError as exc:
            log.error("recording.not_stored", error=str(exc), source=str(source))  # loud: the recording is at risk
            self.feed(flow.RecordingLost(call_id, event.at, str(exc)))
            return
        log.info("recording.stored", file=stored.path, seconds=str(stored.duration_seconds))
        if call_id not in self.calls:
            log.warning("recording.stored_after_cdr", file=stored.path)
        self.feed(flow.RecordingStored(call_id, event.at, stored))

    async def _forgiving(self, method: str, path: str, also: tuple[int, ...] = ()) -> None:
        """A request whose object may be gone already, which is then done."""
        try:
            await self.ari.request(method, path)
        except AriError as exc:
            if exc.status != 404 and exc.status not in also:
                raise

    async def _release(self, call_id: str, reason: str, log: structlog.typing.FilteringBoundLogger) -> None:
        """Hang the caller up; a failing request is retried while the call is still there (no silence)."""
        for delay in (*self.release_retry_delays, None):
            try:
                await self.ari.request("DELETE", f"/channels/{call_id}", {"reason": reason})
                log.info("call.released", reason=reason)
                return
            except ChannelGone:
                raise
            except AriError as exc:
                if delay is None or call_id not in self.calls:
                    raise
                log.warning("call.release_retry", error=str(exc), in_s=delay)
                await asyncio.sleep(delay)

    def _write_cdr(self, action: flow.WriteCdr, log: structlog.typing.FilteringBoundLogger) -> None:
        record = action.record
        number = self.config.number(record.did)
        rated = rate_record(record, number.customer_id if number else None, number.number_type if number else None,
                            self.rates)
        if rated.rating_error:
            log.error("cdr.not_priced", error=rated.rating_error)
        self.submit_cdr(rated)
        log.info("call.ended", disposition=record.disposition.value, hangup_cause=record.hangup_cause,
                 billable_seconds=rated.price.billable_seconds, list_price_eur=str(rated.price.list_price_eur))

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
