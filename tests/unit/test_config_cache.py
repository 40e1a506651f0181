"""The console's configuration cache (console/config_cache.py): a version is parsed once, in the
background; pages go on showing the previous version meanwhile and say which one is loading."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from console import config_cache
from console.config_cache import ConfigCache
from console.core.numbers_view import Snapshot

V1 = """customers:
  - id: acme
    name: Acme BV
numbers:
  - number: "+31201110001"
    customer: acme
    type: local
    route: {targets: ["+31612340001"]}
"""
V2 = V1.replace("+31612340001", "+31612340002")


class Store:
    """The two queries the cache makes, over versions held in a dict."""

    def __init__(self) -> None:
        self.versions: dict[int, str] = {}

    async def fetchval(self, query: str, *args: object) -> object:
        if "max(id)" in query:
            return max(self.versions, default=None)
        return self.versions[int(args[0])]  # type: ignore[call-overload]


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Parsing waits until the gate opens (a version of 50,000 numbers taking its seconds)."""
    opened = threading.Event()
    real: Callable[[str, str], Snapshot] = config_cache._parsed

    def slow(text: str, version: str) -> Snapshot:
        assert opened.wait(10), "the test never opened the gate"
        return real(text, version)

    monkeypatch.setattr(config_cache, "_parsed", slow)
    return opened


async def shown_when(cache: ConfigCache, store: Store, version: str) -> Snapshot:
    """The cache's snapshot once it is `version`, polled with a deadline."""
    for _ in range(500):
        s = await cache.shown(store)  # type: ignore[arg-type]
        if s is not None and s.version == version:
            return s
        await asyncio.sleep(0.01)
    raise AssertionError(f"{version} never shown")


class TestConfigCache:
    def test_the_first_page_waits_for_the_first_version_then_a_newer_one_loads_behind_the_previous(
            self, gate: threading.Event) -> None:
        async def run() -> None:
            store, cache = Store(), ConfigCache()
            assert await cache.shown(store) is None  # type: ignore[arg-type]  # an empty store
            store.versions[1] = V1
            gate.set()
            first = await cache.shown(store)  # type: ignore[arg-type]
            assert first is not None and first.version == "v1" and cache.loading is None
            gate.clear()
            store.versions[2] = V2
            for _ in range(3):  # pages meanwhile: the previous version at once, saying which one is loading
                meanwhile = await cache.shown(store)  # type: ignore[arg-type]
                assert meanwhile is first and cache.loading == "v2"
            gate.set()
            second = await shown_when(cache, store, "v2")
            assert second.numbers_of("acme")[0].flow.startswith("rings +31612340002") and cache.loading is None
            assert await cache.shown(store) is second  # type: ignore[arg-type]  # parsed once, kept
        asyncio.run(run())

    def test_current_waits_for_the_newest_version(self, gate: threading.Event) -> None:
        async def run() -> None:
            store, cache = Store(), ConfigCache()
            store.versions[1] = V1
            gate.set()
            await cache.shown(store)  # type: ignore[arg-type]
            gate.clear()
            store.versions[2] = V2
            asyncio.get_running_loop().call_later(0.05, gate.set)
            current = await cache.current(store)  # type: ignore[arg-type]
            assert current is not None and current[0] == "v2"
        asyncio.run(run())

    def test_a_version_that_does_not_parse_is_logged_and_the_previous_stays_shown(self) -> None:
        async def run() -> None:
            store, cache = Store(), ConfigCache()
            store.versions[1] = V1
            first = await cache.shown(store)  # type: ignore[arg-type]
            store.versions[2] = "customers: [\n"
            with capture_logs() as logs:
                for _ in range(500):
                    if any(e["event"] == "console.config_unreadable" for e in logs):
                        break
                    assert await cache.shown(store) is first  # type: ignore[arg-type]
                    await asyncio.sleep(0.01)
            assert [e["version"] for e in logs if e["event"] == "console.config_unreadable"] == ["v2"]
            assert await cache.shown(store) is first and cache.loading is None  # type: ignore[arg-type]
            with pytest.raises(Exception, match="v2"):
                await cache.current(store)  # type: ignore[arg-type]
        asyncio.run(run())
