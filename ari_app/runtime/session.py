"""The session with Asterisk: connect, check its version, read events, reconnect with back-off.

Everything about a call is someone else's job: each websocket message goes to `handle`;
once connected, `on_connect` prepares the app before the first event is read.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from ari_app.ari import event_parser
from ari_app.ari.client import AriClient
from ari_app.ari.version import require_supported
from ari_app.errors import AriError, AriUnauthorized
from plumbing.clock import utc_now

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0

EVENTS_USED = ("StasisStart", "StasisEnd", "ChannelStateChange", "ChannelHangupRequest", "ChannelDestroyed",
               "PlaybackFinished", "Dial", "ChannelDtmfReceived", "RecordingFinished", "RecordingFailed",
               "ChannelVarset")  # only FAIRLINE_CONFIRMED and FAIRLINE_UNCONFIRMED are read (decision 0031)


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


class Session:
    """Keeps the events websocket of one ARI application up, and says whether it is."""

    def __init__(self, ari: AriClient, log: structlog.typing.FilteringBoundLogger, *,
                 handle: Callable[[str], None], on_connect: Callable[[], Awaitable[None]]) -> None:
        self.ari = ari
        self.log = log
        self.handle = handle  # one websocket message
        self.on_connect = on_connect  # the websocket is up; its events wait until this returns
        self.connected = False  # the events websocket is up (for /healthz)
        self.reconnects = 0  # connections after the first (for /metrics)
        self.down_since: datetime | None = None  # when the last connection went down; None before the first
        self.node = ""  # Asterisk's systemname: the node this fairline serves (several nodes: docs/scale-out.md)
        self._connections = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected to ARI until `stop` is set; reconnect with back-off when the connection drops."""
        delays = backoff_delays()
        attempt = 0
        while not stop.is_set():
            try:
                await self._check_asterisk()
                attempt = 0
                self.connected = True
                self._connections += 1
                self.reconnects = self._connections - 1
                try:
                    await self._consume(stop)
                finally:
                    self.connected = False
                    self.down_since = utc_now()  # events from now on are lost: runtime/resync.py
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

    async def _check_asterisk(self) -> None:
        info = await self.ari.request("GET", "/asterisk/info", {"only": "system,config"})
        version = event_parser.parse_asterisk_version(info)
        require_supported(version)
        self.node = event_parser.parse_system_name(info)
        self.log.info("ari.connected", asterisk_version=version, app=self.ari.app, node=self.node)

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
        async for message in self.ari.events(on_connect=self.on_connect):
            self.handle(message)

    async def filter_events(self) -> None:
        """Ask Asterisk for the events fairline acts on only: fewer events, less load on the app's queue."""
        try:
            await self.ari.request("PUT", f"/applications/{self.ari.app}/eventFilter",
                                   body={"allowed": [{"type": t} for t in EVENTS_USED], "disallowed": []})
        except AriError as exc:  # an optimisation: without it fairline ignores the extra events
            self.log.warning("ari.event_filter_failed", error=str(exc))
