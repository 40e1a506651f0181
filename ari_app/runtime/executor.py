"""Turns the call flow's actions into ARI requests (and timers, queue entries, CDRs): one `match`, no decisions.

A new action type that is not handled here is a type error (`assert_never`), not an action
silently left undone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import assert_never

import structlog

from ari_app.core import flow
from ari_app.ari.client import AriClient
from ari_app.core.model import Config
from ari_app.errors import AriError, ChannelGone
from ari_app.queue_runtime import Queues
from ari_app.runtime.names import DIAL_CONTEXT, bridge_id
from ari_app.runtime.messages import Messages
from ari_app.runtime.recorder import Recorder
from ari_app.runtime.shedding import Shedding
from plumbing.clock import utc_now
from rating.core.cdr import RatedCdr, rate_record
from rating.core.tariff import RateTable

RECORDING_GRACE_S = 10.0  # after a recorded call ends, how long its CDR waits for the stored recording

Log = structlog.typing.FilteringBoundLogger


async def forgiving(ari: AriClient, method: str, path: str, also: tuple[int, ...] = ()) -> None:
    """A request whose object may be gone already, which is then done."""
    try:
        await ari.request(method, path)
    except AriError as exc:
        if exc.status != 404 and exc.status not in also:
            raise


class Executor:
    """Executes one call's actions; raises what ARI raises (the call's worker decides what a failure means)."""

    def __init__(self, ari: AriClient, *, queues: Queues, recorder: Recorder, messages: Messages, shedding: Shedding,
                 feed: Callable[[flow.RecordingEvent], None], is_live: Callable[[str], bool],
                 is_queued: Callable[[str], bool],
                 config: Callable[[], Config], rates: Callable[[], RateTable], submit_cdr: Callable[[RatedCdr], None]) -> None:
        self.ari = ari
        self.queues = queues
        self.recorder = recorder
        self.messages = messages
        self.shedding = shedding
        self.feed = feed
        self.is_live = is_live  # the call is still handled (not ended)
        self.is_queued = is_queued  # the call is handled and its flow is in a queue
        self.config = config  # the current configuration (a reload swaps it)
        self.rates = rates  # the current tariff (a reload swaps it with the configuration)
        self.submit_cdr = submit_cdr  # never blocks: the CDR writer queues and spools
        self.release_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)

    async def execute(self, call_id: str, action: flow.Action, log: Log) -> None:
        path = f"/channels/{call_id}"
        match action:
            case flow.Answer():
                started = time.monotonic()
                await self.ari.request("POST", path + "/answer")
                # A queued caller waits for this one: an overloaded Asterisk shows in it (decision 0016).
                self.shedding.note_latency(time.monotonic() - started)
            case flow.Progress():
                await self.ari.request("POST", path + "/progress")
            case flow.Play(media=media, playback_id=playback_id):
                await self.ari.request("POST", path + "/play", {"media": media, "playbackId": playback_id})
                log.info("call.playing", media=media)
            case flow.Dial():
                await self._dial(call_id, action, log)
            case flow.JoinQueue(name=name, within=within):
                # Not for a call that ended (or left the queue) while earlier actions ran: the queue
                # would hold a caller who is gone, for good.
                if self.is_queued(call_id):
                    self.queues.join(call_id, name, within)
            case flow.StartMoh():
                await self.ari.request("POST", path + "/moh")
            case flow.StopMoh():
                await forgiving(self.ari, "DELETE", path + "/moh", also=(409,))  # no music playing is fine
            case flow.StopPlayback(playback_id=playback_id):
                await forgiving(self.ari, "DELETE", f"/playbacks/{playback_id}")  # it may have just ended
            case flow.Bridge(agent_channel=agent_channel):
                bridge = bridge_id(call_id)
                await self.ari.request("POST", "/bridges", {"type": "mixing", "bridgeId": bridge})
                await self.ari.request("POST", f"/bridges/{bridge}/addChannel",
                                       {"channel": f"{call_id},{agent_channel}"})
                log.info("call.bridged", agent_channel=agent_channel)
            case flow.DestroyBridge():
                await forgiving(self.ari, "DELETE", f"/bridges/{bridge_id(call_id)}")
            case flow.AwaitDigit(seconds=seconds):
                self._later(seconds, lambda: flow.DigitTimeout(call_id, utc_now()))
            case flow.StartRecording():
                if self.is_live(call_id):
                    await self.recorder.start(call_id, log)
            case flow.AwaitRecording():
                self._later(RECORDING_GRACE_S, lambda: flow.RecordingLost(
                    call_id, utc_now(), f"not stored within {RECORDING_GRACE_S:.0f} s of the call's end"))
            case flow.PlayGreeting():
                await self.messages.greet(call_id, action, log)
            case flow.RecordMessage():
                await self.messages.record(call_id, action, log)
            case flow.AwaitMessage():
                self._later(RECORDING_GRACE_S, lambda: flow.MessageLost(
                    call_id, utc_now(), f"not stored within {RECORDING_GRACE_S:.0f} s of the call's end"))
            case flow.Hangup(reason=reason):
                await self._release(call_id, reason, log)
            case flow.WriteCdr():
                self._write_cdr(action, log)
            case _:
                assert_never(action)

    async def _dial(self, call_id: str, action: flow.Dial, log: Log) -> None:
        """Continue the channel into fairline-dial's Dial(); first subscribe to it when the flow asks (follow)."""
        path = f"/channels/{call_id}"
        extension = action.extension
        if extension is None:  # too long for an extension: the dial goes in FAIRLINE_DIAL
            extension = "s"
            setting = self.ari.request("POST", path + "/variable", {"variable": "FAIRLINE_DIAL", "value": action.dial})
            if action.follow:  # both must be done before the channel leaves the app; neither waits for the other
                await asyncio.gather(self._follow(call_id), setting)
            else:
                await setting
        elif action.follow:  # the subscription must be in place before the channel leaves the app
            await self._follow(call_id)
        await self.ari.request("POST", path + "/continue", {"context": DIAL_CONTEXT, "extension": extension,
                                                            "priority": "1"})
        self.shedding.dial_sent(call_id)
        log.info("call.dialing", dial=action.dial)

    async def _follow(self, call_id: str) -> None:
        """Subscribe to the call's channel, so its events still come once it leaves the app for Dial()."""
        started = time.monotonic()
        await self.ari.request("POST", f"/applications/{self.ari.app}/subscription",
                               {"eventSource": f"channel:{call_id}"})
        self.shedding.note_latency(time.monotonic() - started)

    def _later(self, seconds: float, event: Callable[[], flow.RecordingEvent]) -> None:
        """Feed the event made by `event` in `seconds` (the flow ignores it if the call moved on)."""
        asyncio.get_running_loop().call_later(seconds, lambda: self.feed(event()))

    async def _release(self, call_id: str, reason: str, log: Log) -> None:
        """Hang the caller up; a failing request is retried while the call is still there (no silence)."""
        for delay in (*self.release_retry_delays, None):
            try:
                await self.ari.request("DELETE", f"/channels/{call_id}", {"reason": reason})
                log.info("call.released", reason=reason)
                return
            except ChannelGone:
                raise
            except AriError as exc:
                if delay is None or not self.is_live(call_id):
                    raise
                log.warning("call.release_retry", error=str(exc), in_s=delay)
                await asyncio.sleep(delay)

    def _write_cdr(self, action: flow.WriteCdr, log: Log) -> None:
        record = action.record
        number = self.config().number(record.did)
        rated = rate_record(record, number.customer_id if number else None, number.number_type if number else None,
                            self.rates())
        if rated.rating_error:
            log.error("cdr.not_priced", error=rated.rating_error)
        self.submit_cdr(rated)
        log.info("call.ended", disposition=record.disposition.value, hangup_cause=record.hangup_cause,
                 billable_seconds=rated.price.billable_seconds, list_price_eur=str(rated.price.list_price_eur))
