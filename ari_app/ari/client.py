"""A thin asyncio client for Asterisk's REST interface: REST requests and the events websocket.

Foreign errors are translated here: 404 on a channel -> ChannelGone, 401 ->
AriUnauthorized, anything else -> AriError. See docs/decisions/0001-ari-client.md
for why this is plain aiohttp and not an ARI library.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, AsyncIterator, Mapping

import aiohttp

from ari_app.errors import AriError, AriUnauthorized, ChannelGone

# Pings on the events websocket: a connection that dies silently (no close, packets
# dropped) is noticed within HEARTBEAT_S * 1.5 seconds.
HEARTBEAT_S = 5.0
REQUEST_TIMEOUT_S = 5.0


class AriClient:
    """REST requests and event stream for one ARI application. Use as an async context manager."""

    def __init__(self, base_url: str, user: str, password: str, app: str) -> None:
        self._base = base_url.rstrip("/") + "/ari"
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self.app = app
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "AriClient":
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=50),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient used outside 'async with'")
        return self._session

    async def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                      body: Any = None) -> Any:
        """One REST request (with an optional JSON body); the decoded JSON answer (None for 204)."""
        url = self._base + path
        try:
            async with self.session.request(method, url, params=params, json=body) as resp:
                body = await resp.text()
                if resp.status == 401:
                    raise AriUnauthorized(method, path, resp.status, "user or password rejected")
                if resp.status == 404 and path.startswith("/channels/"):
                    raise ChannelGone(method, path, resp.status, _message(body))
                if resp.status >= 400:
                    raise AriError(method, path, resp.status, _message(body))
                try:
                    return json.loads(body) if body else None
                except ValueError:
                    raise AriError(method, path, resp.status, f"answer is not JSON: {body[:100]!r}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(method, path, None, f"{type(exc).__name__}: {exc}") from exc

    async def events(self, on_connect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
        """The raw messages of this app's events websocket until it closes.

        `on_connect` runs once the websocket is up (the app exists in Asterisk from then
        on). Raises AriError when it cannot connect; returns when the connection ends.
        """
        url = self._base.replace("http", "ws", 1) + "/events"
        try:
            ws = await self.session.ws_connect(
                url, params={"app": self.app, "subscribeAll": "false"}, heartbeat=HEARTBEAT_S,
                timeout=aiohttp.ClientWSTimeout(ws_close=REQUEST_TIMEOUT_S),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise AriUnauthorized("GET", "/events", 401, "user or password rejected") from exc
            raise AriError("GET", "/events", exc.status, exc.message) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError("GET", "/events", None, f"{type(exc).__name__}: {exc}") from exc
        async with ws:
            if on_connect is not None:
                await on_connect()
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    yield msg.data
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break


def _message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200]
    return str(data.get("message", body[:200])) if isinstance(data, dict) else body[:200]
