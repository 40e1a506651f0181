"""The newest version as the flow form needs it, kept for one version: as YAML reads it (to find a
number's item) and as the loader checked it (so that checking a one-number change reads that item only,
`yaml_loader.check` with `previous`, as fairline's checker does). Reading 5,000 numbers takes seconds;
a version saved here is remembered as saved, so the next save starts from it at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import asyncpg
from starlette.requests import Request

from ari_app.config import yaml_loader
from console import flow_text
from rating.storage.config_store import StoredVersion, newest_version


class FlowCache:
    def __init__(self) -> None:
        self._id: int | None = None
        self._root: Any = None
        self._checked: yaml_loader.Checked | None = None
        self._lock = asyncio.Lock()

    async def root(self, v: StoredVersion) -> Any:
        """Version `v` as YAML reads it; read once per version (callers must not change it)."""
        async with self._lock:
            if self._id != v.id:
                self._root = await anyio.to_thread.run_sync(flow_text.load, v.content)
                self._id, self._checked = v.id, None
            return self._root

    async def check(self, text: str, source: str, based_on: int) -> yaml_loader.Checked:
        """`yaml_loader.check(text)`, reusing what was read of version `based_on` when it is the one kept.
        Raises ConfigError as the loader does."""
        previous = self._checked if self._id == based_on else None
        return await anyio.to_thread.run_sync(yaml_loader.check, text, source, previous)

    def remember(self, v: StoredVersion, root: Any, checked: yaml_loader.Checked) -> None:
        """Keep a version just stored from here, with what is known of it already."""
        self._id, self._root, self._checked = v.id, root, checked


@dataclass(frozen=True, slots=True)
class Found:
    """An item of the newest version (a number of `numbers:`, a queue of `queues:`) that is the customer's."""

    version: StoredVersion
    root: Any  # the whole configuration as YAML reads it
    index: int  # its place in its list
    item: dict[str, Any]


def flow_cache(request: Request) -> FlowCache:
    cache: FlowCache = request.app.state.flow_cache
    return cache


async def find_item(request: Request, conn: asyncpg.Connection, section: str,
                    index_of: Callable[[Any], int | None], customer_id: str) -> Found | None:
    """The item `index_of` finds in `section` of the newest version, if it is `customer_id`'s; None otherwise
    (a 404, whoever asks)."""
    newest = await newest_version(conn)
    if newest is None:
        return None
    root = await flow_cache(request).root(newest)
    index = index_of(root)
    if index is None:
        return None
    item = root[section][index]
    if str(item.get("customer")) != customer_id:
        return None
    return Found(newest, root, index, item)
