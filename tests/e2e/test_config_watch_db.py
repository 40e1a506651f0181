"""The configuration watch against a real PostgreSQL: a NOTIFY wakes it, a lost connection is caught up on."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from ari_app.core.model import Config
from ari_app.runtime.config_watch import APPLICATION_NAME, CHANNEL, ConfigWatch
from tests.e2e.conftest import LiveStack

pytestmark = pytest.mark.e2e

TEXT = (Path(__file__).resolve().parents[2] / "dialplan" / "fairline.yaml").read_text()


@dataclasses.dataclass(frozen=True)
class Version:
    id: int
    name: str
    content: str


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_notification_applies_the_new_version_and_a_reconnect_catches_up(live_stack: LiveStack,
                                                                                 tmp_path: Path) -> None:
    url = live_stack.stack.database_url
    store = [Version(1, "v1", TEXT)]
    applied: list[str] = []

    async def newest(conn: asyncpg.Connection) -> Version:
        assert not conn.is_closed()
        return store[-1]

    async def apply(config: Config, version: Any) -> None:
        applied.append(version.name)

    watch = ConfigWatch(url, fetch_newest=newest, apply=apply, spool_dir=tmp_path, running=None,
                        log=structlog.get_logger("test"))
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    other = await asyncpg.connect(url)
    try:
        await until(lambda: applied == ["v1"], "the newest version at start")

        store.append(Version(2, "v2", "# second\n" + TEXT))
        await other.execute(f"NOTIFY {CHANNEL}, '2'")
        await until(lambda: applied == ["v1", "v2"], "the notified version")

        # The watch's connection is lost; a version is stored meanwhile, its notification lost with it.
        await other.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                            APPLICATION_NAME)
        store.append(Version(3, "v3", "# third\n" + TEXT))
        await until(lambda: applied == ["v1", "v2", "v3"], "the version stored while disconnected")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await other.close()
