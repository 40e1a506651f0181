"""After a reconnect: each call fairline holds is looked at in Asterisk, and what it missed is fed to it.

The decisions are ari_app/core/resync.py's; this asks Asterisk (GET /channels/{id}, /playbacks/{id})
and, for a channel that is gone, reads when it ended from Asterisk's own CDR file (the tail of it:
calls that ended while fairline was away are its last lines). Where the file does not have it (no
file configured, or Asterisk itself stopped and never wrote it), the end is the time the websocket
went down, and the CDR says it is estimated.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import structlog

from ari_app.ari import event_parser
from ari_app.ari.client import AriClient
from ari_app.core import events, flow, resync
from ari_app.errors import AriError, ChannelGone
from ari_app.queue_runtime import Queues
from plumbing.clock import utc_now
from rating.core.reconcile import AsteriskCdrError, parse_asterisk_cdr

TAIL_BYTES = 4 * 1024 * 1024  # of Asterisk's CDR file: some 15,000 calls, far more than end in a reconnect


def ends_in_cdr_file(path: Path, call_ids: set[str]) -> dict[str, datetime]:
    """When each of `call_ids` ended, by the last lines of Asterisk's CDR file (those it has)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return {}
    lines = tail.splitlines(keepends=True)
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first is cut
    ends: dict[str, datetime] = {}
    try:
        for record in parse_asterisk_cdr(lines):
            if record.uniqueid in call_ids and (record.uniqueid not in ends or record.end > ends[record.uniqueid]):
                ends[record.uniqueid] = record.end
    except AsteriskCdrError:
        pass  # a line that is not Asterisk's: what was read before it stands
    return ends


class Resync:
    """Brings each call fairline holds up to date with Asterisk after the events websocket was down."""

    def __init__(self, ari: AriClient, log: structlog.typing.FilteringBoundLogger, *, queues: Queues,
                 calls: Callable[[], Iterable[flow.Call]], feed: Callable[[events.CallEvent | flow.AgentHungUp], None],
                 asterisk_cdr: Path | None) -> None:
        self.ari = ari
        self.log = log
        self.queues = queues
        self.calls = calls
        self.feed = feed
        self.asterisk_cdr = asterisk_cdr
        self.returned: set[str] = set()  # calls whose return from Dial() this fed: see `stale`

    async def after_reconnect(self, down_since: datetime) -> None:
        """Runs once the websocket is up again and before its first event is handled."""
        gone: list[flow.Call] = []
        for call in list(self.calls()):
            try:
                channel = event_parser.parse_channel(await self.ari.request("GET", f"/channels/{call.call_id}"))
            except ChannelGone:
                gone.append(call)
                continue
            except (AriError, ValueError) as exc:
                self.log.warning("call.check_failed", call_id=call.call_id, error=str(exc))
                continue
            try:
                await self._catch_up(call, channel)
            except AriError as exc:
                self.log.warning("call.check_failed", call_id=call.call_id, error=str(exc))
        await self._queue_legs()
        if gone:
            await self._ended_unseen(gone, down_since)

    async def _catch_up(self, call: flow.Call, channel: event_parser.Channel) -> None:
        args = resync.stasis_args(channel.app_data, self.ari.app) if channel.app_name == "Stasis" else None
        playing = resync.awaited_playback(call)
        over = playing is not None and not await self._exists(f"/playbacks/{playing}")
        seen = resync.Seen(in_app=args is not None, app_args=args or (), answered=channel.state == "Up",
                           playback_over=over)
        missed = resync.missed(call, seen, utc_now())
        agent = resync.agent_channel(call)
        if agent is not None and not await self._exists(f"/channels/{agent}"):
            self.queues.leg_destroyed(agent, utc_now(), None)  # the queue frees the agent, the caller is released
            self.log.bind(call_id=call.call_id).warning("call.missed_while_disconnected", missed="agent hang-up")
        if isinstance(call.state, flow.Dialing) and not seen.in_app:
            # Out of the app in Dial(): its events come only through the subscription; make sure of it.
            await self.ari.request("POST", f"/applications/{self.ari.app}/subscription",
                                   {"eventSource": f"channel:{call.call_id}"})
        for event in missed:
            self.log.bind(call_id=call.call_id).warning("call.missed_while_disconnected", missed=type(event).__name__)
            if isinstance(event, events.DialReturned):
                self.returned.add(call.call_id)
            self.feed(event)

    def stale(self, event: events.DialReturned, call: flow.Call | None) -> bool:
        """Whether `event` is the return from Dial() this already fed, delivered after all: it came in the
        moment between the reconnect and the look at the channel. The call has moved on to another step
        by then, whose Dial() has not begun (no hand-over yet), so it cannot be that step's return."""
        if event.channel_id not in self.returned or call is None:
            return False
        self.returned.discard(event.channel_id)
        return isinstance(call.state, flow.Dialing) and not call.state.in_dialplan

    async def _queue_legs(self) -> None:
        """Agents' channels rung for queued callers: answered or gone while fairline was away."""
        for leg_id in list(self.queues.legs):
            try:
                channel = event_parser.parse_channel(await self.ari.request("GET", f"/channels/{leg_id}"))
            except ChannelGone:
                self.queues.leg_destroyed(leg_id, utc_now(), None)
                continue
            except (AriError, ValueError) as exc:
                self.log.warning("queue.leg_check_failed", channel_id=leg_id, error=str(exc))
                continue
            leg = self.queues.legs.get(leg_id)
            if leg is not None and not leg.up and channel.state == "Up" and channel.app_name == "Stasis":
                self.queues.agent_answered(leg_id, utc_now())

    async def _ended_unseen(self, gone: list[flow.Call], down_since: datetime) -> None:
        ids = {call.call_id for call in gone}
        ends = await asyncio.to_thread(ends_in_cdr_file, self.asterisk_cdr, ids) if self.asterisk_cdr else {}
        for call in gone:
            end = ends.get(call.call_id)
            self.log.bind(call_id=call.call_id).warning(
                "call.ended_while_disconnected", end=(end or down_since).isoformat(),
                end_from="asterisk cdr" if end else "estimated: when the websocket went down")
            self.feed(events.CallDestroyed(call.call_id, end or down_since, None, estimated=end is None))

    async def _exists(self, path: str) -> bool:
        try:
            await self.ari.request("GET", path)
        except AriError as exc:
            if exc.status == 404:  # ChannelGone for a channel; a plain 404 for a playback
                return False
            raise
        return True
