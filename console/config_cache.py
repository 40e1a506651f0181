"""The configuration store's newest version as the console shows it, parsed once per version.

Parsing a version of 50,000 numbers takes seconds, so pages never wait for it once one version is
in hand: a page asks which version is newest (one index lookup), and when a newer one was stored
it is parsed in a background thread while the pages go on showing the previous one and say so
(`loading`). Only the very first page after the console starts may wait, and `warm` starts that
parse at start-up so usually none does. `current` (the commands) waits for the newest.
"""

from __future__ import annotations

import asyncio
import gc

import asyncpg
import structlog

from ari_app.core.model import Config
from console import storage
from console.core.numbers_view import Snapshot, snapshot

log = structlog.get_logger(__name__)


def _parsed(text: str, version: str) -> Snapshot:
    """Parse and snapshot a version, without the cyclic garbage collector: its full collections over the
    millions of objects a 50,000-number version makes held the GIL, and so every page, for up to 2 s at a
    time (4.5 s of parsing instead of 12, no pause over 50 ms: docs/performance.md). The result is then
    frozen out of the collector's sight: it lives until the next version, and refcounting frees it."""
    from ari_app.config.yaml_loader import parse

    collecting = gc.isenabled()
    gc.disable()
    try:
        made = snapshot(version, parse(text, version))
        gc.freeze()
        return made
    finally:
        if collecting:
            gc.enable()


class ConfigCache:
    def __init__(self) -> None:
        self._shown: Snapshot | None = None
        self._shown_id = 0
        self._loading: asyncio.Task[None] | None = None
        self._loading_id = 0
        self._failed: tuple[int, Exception] | None = None

    @property
    def loading(self) -> str | None:
        """The newer version being parsed while pages show the one before it ("v13"), if any."""
        return f"v{self._loading_id}" if self._loading is not None and self._shown is not None else None

    async def shown(self, conn: asyncpg.Connection) -> Snapshot | None:
        """The newest version parsed so far (None while the store is empty); a newer one stored since is
        parsed in the background meanwhile. Waits only while no version was ever parsed."""
        newest = await storage.newest_config_id(conn)
        if newest is None:
            return None
        if newest > self._shown_id and (self._failed is None or self._failed[0] != newest):
            task = await self._load(conn, newest)
            if self._shown is None:
                await asyncio.shield(task)
        return self._shown

    async def current(self, conn: asyncpg.Connection) -> tuple[str, Config] | None:
        """The newest version's name ("v12") and model, waiting for it to be parsed; None while the store
        is empty. Raises what parsing it raised, should a stored version no longer parse."""
        while True:
            newest = await storage.newest_config_id(conn)
            if newest is None:
                return None
            if self._shown is not None and self._shown_id >= newest:
                return self._shown.version, self._shown.config
            if self._failed is not None and self._failed[0] == newest:
                raise self._failed[1]
            await asyncio.shield(await self._load(conn, newest))

    def warm(self, pool: asyncpg.Pool) -> asyncio.Task[None]:
        """Start parsing the newest version now (the console starting), so that no page waits for it."""
        async def run() -> None:
            try:
                async with pool.acquire() as conn:
                    await self.shown(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
                log.warning("console.config_not_warmed", error=str(problem) or type(problem).__name__)

        return asyncio.create_task(run(), name="config-warm")

    async def _load(self, conn: asyncpg.Connection, newest: int) -> asyncio.Task[None]:
        """The parse of version `newest` (or of the one already under way; the next page starts the one after)."""
        if self._loading is None:
            text = await storage.config_text(conn, newest)
            if self._loading is None:  # no other page started one while the text was read
                self._loading_id = newest
                self._loading = asyncio.create_task(self._parse(newest, text), name=f"config-v{newest}")
        assert self._loading is not None
        return self._loading

    async def _parse(self, version_id: int, text: str) -> None:
        started = asyncio.get_running_loop().time()
        try:
            # A stored version was valid when stored; parsed in a thread so pages go on meanwhile.
            parsed = await asyncio.to_thread(_parsed, text, f"v{version_id}")
        except Exception as problem:  # noqa: BLE001 - logged, and the previous version stays shown
            self._failed = (version_id, problem)
            log.error("console.config_unreadable", version=f"v{version_id}", error=str(problem)[:2000])
            return
        finally:
            self._loading = None
        if version_id > self._shown_id:
            self._shown, self._shown_id = parsed, version_id
        log.info("console.config_loaded", version=parsed.version, numbers=len(parsed.config.numbers),
                 seconds=round(asyncio.get_running_loop().time() - started, 2))
