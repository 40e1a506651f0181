"""Keep the running configuration on the store's newest version (issue 16, decision 0021).

PostgreSQL holds every version: `fairline config apply` stores one and notifies channel
`fairline_config`. A notification only wakes the watch, which then reads the newest version, so a
fairline that missed notifications (stopped, disconnected) catches up the same way, at start and
after each reconnect. Reading and checking a version (YAML of thousands of numbers) runs in a
child process, never in the event loop; the switch is one assignment, and calls in progress keep
the flow they started with (runtime/app.py). Each version applied is cached on disk, so that a
fairline started while the database is down routes by the last version it knew.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import asyncpg
import structlog

from ari_app.runtime.config_parse import Prepared, prepare_off_loop
from ari_app.errors import ConfigError
from plumbing.durable import fsync_dir, write_all
from rating.storage import greetings

CHANNEL = "fairline_config"  # NOTIFY payload: the new version's id (the table stays the truth)
CACHE_FILE = "config-cache.json"
APPLICATION_NAME = "fairline config watch"  # how its connection shows in pg_stat_activity
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0


class StoredVersion(Protocol):
    """What the watch needs of a stored version (rating/storage/config_store.py)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...  # "v12"
    @property
    def content(self) -> str: ...  # the whole YAML text


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigOrigin:
    """Where the configuration in force came from (for /healthz, /metrics and the logs)."""

    source: str  # "store" (the newest version), "cache" (the last one applied, the store unreachable), "file"
    version: str | None = None  # "v12"; None for a file
    id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Cached:
    """The last version this fairline applied, as kept on disk."""

    id: int
    name: str
    content: str


FetchNewest = Callable[[asyncpg.Connection], Awaitable["StoredVersion | None"]]
Apply = Callable[[Prepared, StoredVersion], Awaitable[None]]


async def install_greetings(conn: asyncpg.Connection, text: str, directory: Path | None,
                            log: structlog.typing.FilteringBoundLogger) -> None:
    """Write the uploaded greetings a version names into this node's greetings directory before it is
    checked (decision 0036); one that cannot be written is logged, and the check then names the file."""
    if directory is None:
        return
    try:
        for sha in await greetings.install_named(conn, text, directory):
            log.info("greeting.installed", file=str(greetings.file_name(directory, sha)))
    except (OSError, ValueError) as exc:
        log.error("greeting.not_installed", directory=str(directory), error=str(exc))


def write_cache(spool_dir: Path, version: StoredVersion) -> None:
    """Keep `version` on disk for a start without the database: written whole or not at all."""
    path = spool_dir / CACHE_FILE
    temporary = path.with_suffix(".tmp")
    data = json.dumps({"id": version.id, "name": version.name, "content": version.content}).encode()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_dir(spool_dir)


async def cache(spool_dir: Path, version: StoredVersion, log: structlog.typing.FilteringBoundLogger) -> None:
    """write_cache in a worker thread; a failure is logged: routing does not need the cache, and a start
    without the database would use the file instead."""
    try:
        await asyncio.to_thread(write_cache, spool_dir, version)
    except OSError as exc:
        log.warning("config.cache_failed", directory=str(spool_dir), error=str(exc))


def read_cache(spool_dir: Path) -> Cached | None:
    """The cached version, or None when there is none; a damaged cache raises ConfigError naming the file."""
    path = spool_dir / CACHE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        data = json.loads(raw)
        cached = Cached(int(data["id"]), str(data["name"]), str(data["content"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError([f"{path}: not a configuration cache fairline wrote ({exc}); delete it to start "
                           "from the configuration file"]) from exc
    return cached


class ConfigWatch:
    """Applies each new version of the store to the running fairline, from `run()` until `stop` is set."""

    def __init__(self, database_url: str, *, fetch_newest: FetchNewest, apply: Apply, spool_dir: Path,
                 running: int | None, log: structlog.typing.FilteringBoundLogger,
                 greetings_dir: Path | None = None) -> None:
        self.database_url = database_url
        self.fetch_newest = fetch_newest
        self.apply = apply
        self.spool_dir = spool_dir
        self.running = running  # the id of the version in force; None: not from the store
        self.refused: int | None = None  # a stored version that does not check (never retried)
        self.log = log
        self.greetings_dir = greetings_dir
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for a newer version now (a notification, a reconnect, SIGHUP)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        delay, attempts = RETRY_FIRST_S, 0
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.database_url, timeout=5,
                                             server_settings={"application_name": APPLICATION_NAME})
                await conn.add_listener(CHANNEL, lambda *_: self.wake())
                conn.add_termination_listener(lambda _: self.wake())
                delay, attempts = RETRY_FIRST_S, 0
                self.wake()  # catch up with whatever came while not listening
                while not stop.is_set() and not conn.is_closed():
                    await self._wait(stop)
                    if self._wake.is_set() and not conn.is_closed():
                        self._wake.clear()
                        await self.catch_up(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if attempts % 10 == 0:  # loud the first time and then every tenth try
                    self.log.warning("config.store_unreachable", error=str(exc) or type(exc).__name__,
                                     retry_in_s=delay, routing=f"continues on {self._running_name()}")
                attempts += 1
            except Exception:  # a bug applying one version must not end the watch: the next may apply
                self.log.exception("config.watch_failed", retry_in_s=delay,
                                   routing=f"continues on {self._running_name()}")
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            if not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, RETRY_MAX_S)

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def catch_up(self, conn: asyncpg.Connection) -> None:
        """Apply the store's newest version if it is not the one in force."""
        newest = await self.fetch_newest(conn)
        if newest is None or newest.id in (self.running, self.refused):
            return
        await install_greetings(conn, newest.content, self.greetings_dir, self.log)
        try:
            # YAML of thousands of numbers takes a second to check: in a child process (config_parse.py).
            prepared = await prepare_off_loop(newest.content, f"config {newest.name}")
        except ConfigError as exc:
            # `config apply` checks every version it stores; one that fails now met a stricter fairline.
            self.refused = newest.id
            self.log.error("config.version_refused", version=newest.name, problems=exc.problems,
                           routing=f"continues on {self._running_name()}")
            return
        await self.apply(prepared, newest)
        self.running = newest.id
        await cache(self.spool_dir, newest, self.log)

    def _running_name(self) -> str:
        return f"v{self.running}" if self.running is not None else "the configuration it started with"
