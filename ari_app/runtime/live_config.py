"""The configuration in force: which version a fairline starts on, and what switching to a new one does.

At start (issue 16, decision 0021): the configuration store's newest version. An empty store is
seeded with the configuration file, as version 1. A file that differs from the store's newest
version does not win: the store is the truth, and the log says how to see the difference. With the
database unreachable, the version cached on disk at the last switch, or else the file; the watch
(config_watch.py) moves on to the newest version once the database answers.

A switch (`LiveConfig.apply`): the new Config is already checked, and what derives from it made,
off the loop (config_parse.py); the switch is an assignment, new calls take it, calls in progress
keep theirs. Then, in the background and one at a time, each only where the version changed it: the
number directory in PostgreSQL, and the dialplan fallback in Asterisk (over AMI, when fairline has
AMI settings), so that a call served while fairline is down follows the new version too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import structlog

from ari_app.ami.fallback import publish_fallback
from ari_app.config.yaml_loader import parse
from ari_app.config_versions import number_changes
from ari_app.core.model import Config
from ari_app.errors import AmiError, ConfigError
from ari_app.runtime.app import App
from ari_app.runtime.config_parse import Prepared
from ari_app.runtime.config_watch import ConfigOrigin, StoredVersion, cache, install_greetings, read_cache
from ari_app.settings import AmiSettings
from plumbing.tasks import spawn
from rating.core import numbering
from rating.storage.config_store import content_hash, newest_version, store_version
from rating.storage.database import migrate

Log = structlog.typing.FilteringBoundLogger
CONNECT_TIMEOUT_S = 3.0  # at start: how long the database may take before the cache is used
PUBLISH_EVERY_S = 10.0  # the dialplan fallback follows the newest version, reloaded at most this often (bench/config_apply.py)


async def initial_config(database_url: str, file_config: Config, file: Path, *, author: str, spool_dir: Path,
                         log: Log, greetings_dir: Path | None = None) -> tuple[Config, ConfigOrigin]:
    """The configuration a starting fairline routes by, and where it came from (see the module docstring).

    Raises StorageError when the database's schema history contradicts the migrations, and
    ConfigError when the only configuration at hand does not check.
    """
    try:
        conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return await _without_store(file_config, file, spool_dir, log, str(exc) or type(exc).__name__)
    try:
        await migrate(conn)  # the store's tables, before they are read
        newest = await newest_version(conn)
        if newest is None:
            changes = await asyncio.to_thread(number_changes, None, file_config.text)
            seeded = await store_version(conn, content=file_config.text, author=author, role="admin",
                                         reason=f"first start: seeded from {file}", based_on=None, changes=changes)
            log.info("config.seeded", version=seeded.name, file=str(file), author=author)
            await cache(spool_dir, seeded, log)
            return file_config, ConfigOrigin("store", seeded.name, seeded.id)
        if newest.content_hash == content_hash(file_config.text):
            config = file_config
        else:
            log.warning("config.file_differs", file=str(file), version=newest.name,
                        hint=f"the store is the truth: `fairline config diff {file}` shows what the file would "
                             "change, `fairline config apply` stores it, `fairline config export` writes the "
                             "version in force")
            await install_greetings(conn, newest.content, greetings_dir, log)
            config = await asyncio.to_thread(parse, newest.content, f"config {newest.name}")
        log.info("config.from_store", version=newest.name, author=newest.author, numbers=len(config.numbers))
        await cache(spool_dir, newest, log)
        return config, ConfigOrigin("store", newest.name, newest.id)
    finally:
        await conn.close()


async def _without_store(file_config: Config, file: Path, spool_dir: Path, log: Log,
                         why: str) -> tuple[Config, ConfigOrigin]:
    try:
        cached = read_cache(spool_dir)
        config = None if cached is None else parse(cached.content, f"config {cached.name} (cached)")
    except ConfigError as exc:
        log.error("config.cache_unusable", problems=exc.problems)
        cached = config = None
    if cached is not None and config is not None:
        log.warning("config.from_cache", version=cached.name, database=why,
                    hint="the database is unreachable: routing by the last version this fairline applied; "
                         "it moves to the newest once the database answers")
        return config, ConfigOrigin("cache", cached.name, cached.id)
    log.warning("config.from_file", file=str(file), database=why,
                hint="the database is unreachable and no version is cached: routing by the file")
    return file_config, ConfigOrigin("file")


async def load_us_states(config: Config) -> None:
    """Load the US states of +1 numbers in a worker thread, where `config` may need them: a recorded call
    decides its mode in the synchronous flow, which must not stall the event loop ~60 ms loading them."""
    if await asyncio.to_thread(lambda: config.needs_us_states):  # a walk over every number: off the loop too
        await asyncio.to_thread(numbering.load_us_states)


class LiveConfig:
    """Switches the running app to a new version; then updates the directory and the dialplan fallback."""

    def __init__(self, app: App, *, sync_directory: Callable[[Config], Awaitable[bool]],
                 ami: AmiSettings | None, log: Log) -> None:
        self.app = app
        self.sync_directory = sync_directory  # True once the directory matches the Config
        self.ami = ami
        self.log = log
        self._after: asyncio.Lock = asyncio.Lock()  # one directory sync and one publish at a time, in order
        self._tasks: set[asyncio.Task[None]] = set()
        self._listed: str | None = None  # the directory digest last synced
        self._published: str | None = None  # the fallback text Asterisk last took
        self._published_at = float("-inf")  # the loop's time of the last publish

    async def apply(self, prepared: Prepared, version: StoredVersion) -> None:
        config = prepared.config
        if prepared.derived.needs_us_states:  # before the switch: no call of the new version waits for them
            await asyncio.to_thread(numbering.load_us_states)
        before = self.app.config_origin
        self.app.config, self.app.rates = config, config.rates
        self.app.config_origin = ConfigOrigin("store", version.name, version.id)
        self.log.info("config.applied", version=version.name, was=before.version or before.source,
                      numbers=len(config.numbers), calls_in_progress=len(self.app.calls))
        spawn(self._after_switch(prepared, version.name), name=f"config-{version.name}", log=self.log,
              crashed="config.after_apply_failed", keep=self._tasks)

    async def _after_switch(self, prepared: Prepared, name: str) -> None:
        config, derived = prepared.config, prepared.derived
        async with self._after:
            if self.app.config is not config:  # a newer version came meanwhile: it does this itself
                return
            # Most versions change a route, not who owns which number: then the 5,000 rows stay as they are.
            if derived.directory != self._listed and await self.sync_directory(config):
                self._listed = derived.directory
            if self.ami is None or derived.fallback == self._published:
                return
            # Asterisk reloads its whole dialplan for each publish (0.3 s of its CPU for 5,000 numbers): versions
            # in quick succession are published once, the newest, at most every PUBLISH_EVERY_S.
            wait = self._published_at + PUBLISH_EVERY_S - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
                if self.app.config is not config:
                    return
            self._published_at = asyncio.get_running_loop().time()
            try:
                done = await publish_fallback(self.ami, derived.fallback)
            except AmiError as exc:
                self.log.error("fallback.not_published", version=name, error=str(exc),
                               hint="calls served while fairline is down follow the previous version; "
                                    "`fairline dialplan publish` retries by hand")
                return
            self._published = derived.fallback
            self.log.info("fallback.published", version=name, extensions=done.extensions, digest=done.digest)
