"""One AMI session over panoramisk: connect, log in, send actions, log off. No reconnecting.

panoramisk's `Manager` reconnects forever and re-sends what was pending; a command that
publishes once wants the opposite: fail fast and say why. So the connection is made
here, handed to the Manager as it would hand it to itself, and a lost connection fails
whatever waits instead of being retried. panoramisk is untyped: its messages become
plain `dict[str, str]` at this edge, and nothing past it sees a panoramisk object.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from ari_app.errors import AmiRefused, AmiUnauthorized, AmiUnreachable
from ari_app.settings import AmiSettings

AmiMessage = dict[str, str]


class _OneSession(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its reconnect loop: a lost connection is reported, not retried."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.lost: asyncio.Future[None] = self.loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


def _plain(message: Any) -> AmiMessage:
    """A panoramisk Message as a dict; a header Asterisk repeated keeps its last value."""
    return {str(k): str(v[-1] if isinstance(v, list) else v) for k, v in message.items()}


class AmiSession:
    """`async with AmiSession(settings) as ami:` logs in (events off) and logs off at the end.

    Every wait is bounded by `timeout` seconds; errors: AmiUnreachable (no connection, dropped,
    no answer), AmiUnauthorized (login refused), AmiRefused (an action answered with an error).
    """

    def __init__(self, settings: AmiSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._manager: _OneSession | None = None

    @property
    def where(self) -> str:
        return f"AMI at {self.settings.host}:{self.settings.port}"

    async def __aenter__(self) -> AmiSession:
        loop = asyncio.get_running_loop()
        s = self.settings
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(AMIProtocol, s.host, s.port), timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            reason = (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__
            raise AmiUnreachable(f"{self.where}: cannot connect ({reason}); is Asterisk running with manager.conf "
                                 f"enabled on that port (FAIRLINE_AMI_HOST, FAIRLINE_AMI_PORT)?") from None
        manager = _OneSession(host=s.host, port=s.port, username=s.user, secret=s.secret, events="off",
                              ping_delay=3600, loop=loop, log=logging.getLogger("panoramisk"))
        self._manager = manager
        connected: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        connected.set_result((transport, protocol))
        manager.connection_made(connected)  # what panoramisk does on connect: it sends the Login
        try:
            login = _plain(await self._wait(manager.authenticated_future, "Login"))
        except BaseException:
            self._close()
            raise
        if login.get("Response") != "Success":
            self._close()
            where = f"the secrets file {s.secrets_file}" if s.secrets_file else "the secrets file (FAIRLINE_SECRETS)"
            raise AmiUnauthorized(
                f"{self.where} refused user {s.user!r} ({login.get('Message', 'no reason given')}): check AMI_USER "
                f"and AMI_SECRET in {where} against Asterisk's manager.conf, and that its permit= lets this "
                f"address in")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        manager = self._manager
        if manager is not None and not manager.lost.done():
            try:  # a polite goodbye, so Asterisk logs a log-off rather than a dropped connection
                await asyncio.wait_for(asyncio.shield(manager.send_action({"Action": "Logoff"})), timeout=1)
            except TimeoutError:
                pass
        self._close()

    def _close(self) -> None:
        if self._manager is not None:
            self._manager.close()

    async def _wait(self, future: asyncio.Future[Any], action: str) -> Any:
        manager = self._manager
        assert manager is not None, "used outside `async with`"
        await asyncio.wait({future, manager.lost}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        if future.done():
            return future.result()
        if manager.lost.done():
            raise AmiUnreachable(f"{self.where}: the connection closed while waiting for the answer to {action}")
        raise AmiUnreachable(f"{self.where}: no answer to {action} within {self.timeout:g} s")

    async def action(self, name: str, **headers: str) -> AmiMessage:
        """Send one action; its response. Raises AmiRefused when Asterisk answers with an error."""
        [response, *_] = await self.action_list(name, **headers)
        return response

    async def action_list(self, name: str, **headers: str) -> list[AmiMessage]:
        """Send one action; its response followed by the events of its list (e.g. ShowDialPlan), if any."""
        assert self._manager is not None, "used outside `async with`"
        answer = await self._wait(self._manager.send_action({"Action": name, **headers}), name)
        messages = [_plain(m) for m in (answer if isinstance(answer, list) else [answer])]
        first = messages[0]
        if first.get("Response") not in ("Success", "Follows", "Goodbye"):
            raise AmiRefused(name, first.get("Message") or first.get("Response") or "no message")
        return messages
