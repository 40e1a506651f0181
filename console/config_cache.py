"""The configuration store's newest version, parsed once per version (parsing 50,000 numbers takes
seconds; asking which version is newest takes one index lookup)."""

from __future__ import annotations

import asyncio

import asyncpg

from ari_app.core.model import Config
from console import storage


class ConfigCache:
    def __init__(self) -> None:
        self._version: int | None = None
        self._config: Config | None = None
        self._lock = asyncio.Lock()

    async def current(self, conn: asyncpg.Connection) -> tuple[str, Config] | None:
        """The newest version's name ("v12") and model; None while the store is empty."""
        newest = await storage.newest_config_id(conn)
        if newest is None:
            return None
        async with self._lock:
            if newest != self._version or self._config is None:
                from ari_app.config.yaml_loader import parse

                text = await storage.config_text(conn, newest)
                # A stored version was valid when stored; it is parsed in a thread so pages go on meanwhile.
                self._config = await asyncio.to_thread(parse, text, f"v{newest}")
                self._version = newest
            return f"v{self._version}", self._config
