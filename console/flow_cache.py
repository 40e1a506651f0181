"""The newest version as the flow form needs it, kept for one version: as YAML reads it (to find a
number's item) and as the loader checked it (so that checking a one-number change reads that item only,
`yaml_loader.check` with `previous`, as fairline's checker does). Reading 5,000 numbers takes seconds;
a version saved here is remembered as saved, so the next save starts from it at once."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread

from ari_app.config import yaml_loader
from console import flow_text
from rating.storage.config_store import StoredVersion


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
