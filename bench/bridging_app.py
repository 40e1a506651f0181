"""A minimal ARI app that bridges both legs itself: the call-path benchmark's third path.

What decision 0009 rejected for routed calls, written as plainly as ARI allows, so
fairline is measured against it in the same run (bench/call_path.py):

  caller's StasisStart    originate the target into this app (POST /channels)
  target's StasisStart    (it answered) answer the caller, create a mixing bridge, add both
  either leaves           hang up the other and destroy the bridge
  target fails            hang up the caller with the target's cause

Four REST requests to connect a call and two to end it; an application event filter
limits Asterisk's events to the three used (as fairline filters its own). aiohttp only,
like ari_app/ari/client.py. It registers under fairline's application name, so Asterisk's
`Stasis(fairline)` reaches it while fairline is stopped.

    python bench/bridging_app.py --ari-url http://127.0.0.1:8088 --secrets secrets.env \
        --target +31201239018 [--app fairline]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

LEG_SUFFIX = "-leg"  # the target's channel id is the caller's plus this
BRIDGE_SUFFIX = "-bridge"
EVENTS_USED = ("StasisStart", "StasisEnd", "ChannelDestroyed")
RING_SECONDS = 30


class BridgingApp:
    """One caller -> one target, bridged in the app."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, app: str, target: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/") + "/ari"
        self.app = app
        self.target = target
        self.live: set[str] = set()  # callers whose call (ringing or bridged) is not torn down yet
        self.taken = 0  # callers that reached the app; the others took the dialplan's fallback
        self.bridged = 0
        self.failed = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def request(self, method: str, path: str, params: dict[str, str] | None = None,
                      body: Any = None) -> int:
        async with self.session.request(method, self.base + path, params=params, json=body) as resp:
            await resp.read()
            return resp.status

    async def run(self, stop: asyncio.Event) -> None:
        url = self.base.replace("http", "ws", 1) + "/events"
        async with self.session.ws_connect(url, params={"app": self.app, "subscribeAll": "false"},
                                           heartbeat=5.0) as ws:
            await self.request("PUT", f"/applications/{self.app}/eventFilter",
                               body={"allowed": [{"type": t} for t in EVENTS_USED], "disallowed": []})
            print(f"bridging app: connected as {self.app}", file=sys.stderr, flush=True)
            reader = asyncio.ensure_future(self._read(ws))
            await asyncio.wait([reader, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            reader.cancel()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            task = asyncio.ensure_future(self.on_event(json.loads(msg.data)))
            self.tasks.add(task)
            task.add_done_callback(self._done)
        # E.g. Asterisk closed it because the app read too slowly (ari.conf websocket_write_timeout):
        # from now on every new call takes the dialplan's fallback.
        print(f"bridging app: events websocket closed ({ws.close_code})", file=sys.stderr, flush=True)

    async def count_into(self, path: Path) -> None:
        """Keep `path` holding how many callers reached the app, for the benchmark to read (every 0.2 s)."""
        while True:
            path.write_text(f"{self.taken}\n")
            await asyncio.sleep(0.2)

    def _done(self, task: "asyncio.Task[None]") -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"bridging app: {task.exception()!r}", file=sys.stderr, flush=True)

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        cid = str(channel.get("id", ""))
        if kind == "StasisStart":
            if cid.endswith(LEG_SUFFIX):
                await self.connect(cid.removesuffix(LEG_SUFFIX), cid)
            else:
                await self.originate(cid, str((channel.get("caller") or {}).get("number", "")))
        elif kind == "StasisEnd":
            await self.tear_down(cid.removesuffix(LEG_SUFFIX), gone=cid)
        elif kind == "ChannelDestroyed" and cid.endswith(LEG_SUFFIX):
            # A target that never answered never entered the app: this is its only word.
            caller = cid.removesuffix(LEG_SUFFIX)
            if caller in self.live:
                self.failed += 1
                await self.tear_down(caller, gone=cid, cause=str(event.get("cause", 16)))

    async def originate(self, caller: str, caller_number: str) -> None:
        self.taken += 1
        self.live.add(caller)
        params = {"endpoint": f"PJSIP/{self.target}@carrier-out", "app": self.app, "appArgs": "leg",
                  "channelId": caller + LEG_SUFFIX, "originator": caller, "timeout": str(RING_SECONDS)}
        if caller_number:
            params["callerId"] = caller_number
        if await self.request("POST", "/channels", params) >= 400:
            self.failed += 1
            await self.tear_down(caller, gone=caller + LEG_SUFFIX)

    async def connect(self, caller: str, leg: str) -> None:
        if caller not in self.live:  # the caller hung up while the target rang
            await self.request("DELETE", f"/channels/{leg}")
            return
        bridge = caller + BRIDGE_SUFFIX
        await self.request("POST", f"/channels/{caller}/answer")
        await self.request("POST", "/bridges", {"type": "mixing", "bridgeId": bridge})
        await self.request("POST", f"/bridges/{bridge}/addChannel", {"channel": f"{caller},{leg}"})
        self.bridged += 1

    async def tear_down(self, caller: str, *, gone: str, cause: str | None = None) -> None:
        """The first leg to leave ends the call: hang up the other one and drop the bridge."""
        if caller not in self.live:
            return
        self.live.discard(caller)
        other = caller + LEG_SUFFIX if gone == caller else caller
        params = {"reason_code": cause} if cause and other == caller else None
        await self.request("DELETE", f"/channels/{other}", params)
        await self.request("DELETE", f"/bridges/{caller}{BRIDGE_SUFFIX}")


def read_secrets(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


async def main_async(args: argparse.Namespace) -> int:
    secrets = read_secrets(args.secrets)
    token = base64.b64encode(f"{secrets['ARI_USER']}:{secrets['ARI_PASSWORD']}".encode()).decode("ascii")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"},
                                     timeout=aiohttp.ClientTimeout(total=5.0),
                                     connector=aiohttp.TCPConnector(limit=50)) as session:
        app = BridgingApp(session, args.ari_url, args.app, args.target)
        counting = asyncio.ensure_future(app.count_into(args.count_file)) if args.count_file else None
        await app.run(stop)
        if counting is not None:
            counting.cancel()
            args.count_file.write_text(f"{app.taken}\n")
        print(f"bridging app: {app.bridged} calls bridged, {app.failed} failed", file=sys.stderr, flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ari-url", required=True)
    parser.add_argument("--secrets", type=Path, required=True, help="file with ARI_USER= and ARI_PASSWORD=")
    parser.add_argument("--target", required=True, help="E.164 number every call is put through to")
    parser.add_argument("--app", default="fairline", help="Stasis application name (default: fairline's)")
    parser.add_argument("--count-file", type=Path, help="file kept holding how many callers reached the app")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
