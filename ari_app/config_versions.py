"""Configuration versions: what an applied file changed per number, and recording it without waiting.

`number_changes` is pure. `ConfigRecorder.record()` returns at
once: a background task stores the version (rating/storage/config_store.py) and, while
PostgreSQL is unreachable, keeps it in memory and retries, so routing never waits
on the database. See docs/decisions/0008-config-versions.md.

Changes are keyed by number: each item of `numbers:` by its `number` in E.164 (so
"+31 20 123 4567" and "+31201234567" are the same number), or as written when it
does not parse. Everything outside `numbers:` (customers, tariff) is compared as
one pseudo-number, "*".
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import difflib
import getpass
import os
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

import asyncpg
import structlog
import yaml

from rating.core.numbering import to_e164
from rating.storage.database import is_row_fault
from rating.storage.config_store import ChangeKind, NumberChange, content_hash, record_version
from plumbing.clock import utc_now
from plumbing.tasks import spawn

log = structlog.get_logger(__name__)

OUTSIDE_NUMBERS = "*"  # the pseudo-number for customers, tariff and any other top-level key

_TIMEOUT_S = 10.0  # a write that hangs (a silent network) counts as the database being down

# The ways an unreachable or restarting database shows itself; logged without a traceback.
_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; also TimeoutError
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


def number_changes(old_text: str | None, new_text: str) -> list[NumberChange]:
    """What new_text adds, changes and removes against old_text (None: nothing before), by number.

    Only meaning counts: comments, layout, key order and how a number is spelled are
    no change. Raises yaml.YAMLError when a text is not YAML.
    """
    old, new = _sections(old_text), _sections(new_text)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        kind: ChangeKind = "added" if before is None else "removed" if after is None else "changed"
        diff = difflib.unified_diff((before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
                                    fromfile=f"{key} before", tofile=f"{key} after")
        changes.append(NumberChange(key, kind, "".join(diff)))
    return changes


def _sections(text: str | None) -> dict[str, str]:
    """The file cut into what is compared: each number's YAML by its key, and "*" for the rest."""
    root = yaml.safe_load(text) if text is not None else None
    if not isinstance(root, dict):
        return {}
    rest = {key: value for key, value in root.items() if key != "numbers"}
    items = root.get("numbers")
    if not isinstance(items, list):
        if items is not None:
            rest["numbers"] = items
        items = []
    sections = {OUTSIDE_NUMBERS: _dump(rest)} if rest else {}
    for i, item in enumerate(items):
        key = f"numbers[{i}]"  # an item without a number: known by its place
        if isinstance(item, dict) and item.get("number") is not None:
            raw = str(item["number"]).strip()
            e164 = to_e164(raw)
            key = e164 or raw
            if e164 is not None:
                item = {**item, "number": e164}
        # A number given twice (never in a file that was applied): keep both, apart.
        unique, n = key, 1
        while unique in sections:
            n += 1
            unique = f"{key}#{n}"
        sections[unique] = _dump(item)
    return sections


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=True, allow_unicode=True, default_flow_style=False)


def default_author() -> str:
    """Who applies a configuration when --author is not given: the OS user."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Pending:
    content_hash: str
    content: str
    author: str
    applied_at: datetime


class ConfigRecorder:
    """Records applied configurations in PostgreSQL in the background, in the order they were applied.

    `record()` never blocks and never raises for the database's sake; `close()` (or
    leaving `async with`) makes a last attempt and logs what could not be stored.
    The pool belongs to the caller; the tables must exist (migrations applied).
    """

    def __init__(self, pool: asyncpg.Pool, *, retry_s: float = 5.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._pool = pool
        self._retry_s = retry_s
        self._clock = clock
        self._pending: collections.deque[_Pending] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # close() cuts the wait before the next retry short
        self._closing = False

    @property
    def pending(self) -> int:
        """Versions applied but not stored yet."""
        return len(self._pending)

    async def __aenter__(self) -> ConfigRecorder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def record(self, text: str, author: str) -> None:
        """Note that the configuration `text` was applied now by `author`; returns at once.

        Stored unless it is the newest version already. Raises ValueError for a blank
        author (a caller bug); needs a running event loop.
        """
        if not author.strip():
            raise ValueError("author: expected who applied the configuration, got nothing")
        pending = _Pending(content_hash(text), text, author.strip(), self._clock())
        if self._closing:
            log.error("config.version_unrecorded", hash=pending.content_hash, author=pending.author,
                      applied_at=pending.applied_at.isoformat(), reason="recorded after close")
            return
        self._pending.append(pending)
        if self._task is None or self._task.done():
            self._task = spawn(self._run(), name="config-recorder", log=log, crashed="config_recorder.crashed")

    async def close(self) -> None:
        """Try once more to store what is pending; log each version that still is not."""
        self._closing = True
        if self._task is not None and not self._task.done():
            self._wake.set()
            await self._task
        while self._pending:  # emptied: a second close() does not report them twice
            p = self._pending.popleft()
            log.error("config.version_unrecorded", hash=p.content_hash, author=p.author,
                      applied_at=p.applied_at.isoformat(), reason="database unreachable at shutdown")

    async def _run(self) -> None:
        """Store the pending versions oldest first; on failure wait retry_s (or for close) and try again."""
        while self._pending:
            head = self._pending[0]
            try:
                version = await self._store(head)
            except Exception as exc:
                if is_row_fault(exc) or isinstance(exc, yaml.YAMLError):
                    # About this version itself: retrying cannot help, and it must not hold back the next ones.
                    self._pending.popleft()
                    log.error("config.version_refused", hash=head.content_hash, error=_describe(exc))
                    continue
                log.warning("config.version_pending", hash=head.content_hash, pending=len(self._pending),
                            error=_describe(exc), retry_s=self._retry_s, exc_info=not isinstance(exc, _OUTAGES))
                if self._closing:
                    return
                self._wake.clear()
                try:
                    async with asyncio.timeout(self._retry_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            self._pending.popleft()
            if version is None:
                log.info("config.version_unchanged", hash=head.content_hash)
            else:
                log.info("config.version_recorded", version=version, hash=head.content_hash, author=head.author,
                         applied_at=head.applied_at.isoformat())

    async def _store(self, p: _Pending) -> str | None:
        async with asyncio.timeout(_TIMEOUT_S):
            async with self._pool.acquire() as conn:
                return await record_version(
                    conn, content_hash=p.content_hash, author=p.author, content=p.content, applied_at=p.applied_at,
                    changes=lambda old: number_changes(old, p.content),
                )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
