"""The CDR writer: stores finished calls without ever holding up call handling.

The ARI app calls `submit` (synchronous, never blocks, never raises); a background
task inserts the CDRs in batches. While PostgreSQL is unreachable the batches go to
the on-disk spool, in order, and the spool is replayed, in order, once it answers
again. Inserts are idempotent on the call id, so a replay doubles nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from os import PathLike
from types import TracebackType

import asyncpg
import structlog

from plumbing.metrics import LatencyHistogram
from rating.core.cdr import RatedCdr
from rating.storage.spool import Spool, SpoolError
from rating.storage.database import insert_cdrs, is_row_fault
from plumbing.tasks import spawn

log = structlog.get_logger(__name__)

# The ways an unreachable or restarting database shows itself; logged without a traceback.
_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; also TimeoutError
    asyncpg.PostgresConnectionError,  # incl. ConnectionDoesNotExistError: lost mid-query
    asyncpg.InterfaceError,  # e.g. "connection is closed"
    asyncpg.OperatorInterventionError,  # admin/crash shutdown, cannot connect now, query cancelled
    asyncpg.InsufficientResourcesError,  # disk full, too many connections
)

@dataclasses.dataclass(slots=True)
class _Stored:
    new: int = 0
    already_there: int = 0
    rejected: int = 0
    unwritten: list[RatedCdr] = dataclasses.field(default_factory=list)  # the database failed before these


class CdrWriter:
    """Batches submitted CDRs into PostgreSQL, falling back to a durable spool while it is down.

    Use as `async with CdrWriter(pool, spool_dir) as writer:`. The pool belongs to the caller.
    """

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection, spool_dir: str | PathLike[str], *,
                 batch_size: int = 200, backlog_batch_size: int = 2000, max_delay_s: float = 0.2,
                 retry_s: float = 1.0, timeout_s: float = 10.0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._pool = pool
        self.spool = Spool(spool_dir)
        # A batch is written once it holds batch_size CDRs (or max_delay_s after its first); CDRs
        # already waiting then join it up to backlog_batch_size: a backlog (a burst, a spool replay,
        # `fairline cdr import`) goes in bigger batches, which cost PostgreSQL less per row.
        self._batch_size = batch_size
        self._backlog_batch_size = max(batch_size, backlog_batch_size)
        self._max_delay_s = max_delay_s
        self._retry_s = retry_s
        self._timeout_s = timeout_s  # an insert that hangs (a silent network) counts as an outage
        self._queue: asyncio.Queue[RatedCdr | None] = asyncio.Queue()  # None: stop
        self._held: list[RatedCdr] = []  # taken from the queue, in neither the database nor the spool yet
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # True while new CDRs must go behind spooled ones: the database failed, or the
        # spool held CDRs at start-up. Cleared when a replay has emptied the spool.
        self._spooling = False
        self._down_since: float | None = None  # loop time of the failure that began an outage
        self._retry_at = 0.0
        self._written = 0
        self._spooled = 0
        self._rejected = 0
        self._stuck = False  # the last attempt to store held CDRs found neither the database nor the spool
        self.write_latency = LatencyHistogram()  # of every insert the database completed

    # -- read-only stats for tests and the shutdown log
    @property
    def written(self) -> int:
        """CDRs this writer has put in the database (replays included), or found already there."""
        return self._written

    @property
    def spooled(self) -> int:
        """CDRs this writer has appended to the spool."""
        return self._spooled

    @property
    def rejected(self) -> int:
        """CDRs the database refused as invalid, kept in the spool's rejected file."""
        return self._rejected

    @property
    def pending(self) -> int:
        """CDRs submitted and in memory only: neither in the database nor in the spool yet."""
        return self._queue.qsize() + len(self._held)

    @property
    def database_down(self) -> bool:
        """Whether the last insert failed for a reason other than its rows."""
        return self._down_since is not None

    @property
    def spool_depth(self) -> int:
        """CDRs waiting in the spool for the database (cheap: no I/O)."""
        return self.spool.depth

    @property
    def failing(self) -> str | None:
        """Why CDRs are at risk now, or None: they are reaching the database or the spool.

        A database outage alone is not failing: the spool keeps the CDRs.
        """
        if self._task is not None and self._task.done() and not self._closed:
            return "the CDR writer has stopped"
        if self._stuck:
            return "CDRs are held in memory only: neither the database nor the spool takes them"
        return None

    # -- lifecycle
    async def __aenter__(self) -> CdrWriter:
        await asyncio.to_thread(self.spool.check)  # an unwritable spool stops start-up with SpoolError
        if await asyncio.to_thread(self.spool.has_cdrs):
            # CDRs spooled before a crash or restart go in first; until then new ones queue behind them.
            log.info("spool.found", path=str(self.spool.path))
            self._spooling = True
        self._task = spawn(self._run(), name="cdr-writer", log=log, crashed="cdr_writer.crashed")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Store (or spool) every CDR submitted so far, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        self._closed = True
        log.info("cdr_writer.stopped", written=self._written, spooled=self._spooled, rejected=self._rejected,
                 pending=self.pending, database_down=self.database_down)

    def submit(self, cdr: RatedCdr) -> None:
        """Hand over a finished call's CDR; returns at once, never raises."""
        if self._closed:
            # A caller bug at shutdown; the whole row is in the log so it can still be recovered.
            log.error("cdr.submit_after_close", call_id=cdr.call.call_id, cdr=cdr.to_json())
            return
        self._queue.put_nowait(cdr)

    # -- the background task
    async def _run(self) -> None:
        try:
            stopping = False
            while True:
                try:
                    stopping = await self._collect(stopping)
                    if self._spooling and _now() >= self._retry_at:
                        await self._replay()
                    if self._held:
                        await self._store_held()
                    if stopping and self._held:
                        self._last_resort("database and spool both failed at shutdown")
                except Exception:
                    # A bug must not stop the writer, nor lose what it holds: log it, keep going.
                    log.exception("cdr_writer.error", pending=self.pending)
                    self._retry_at = _now() + self._retry_s
                    if stopping:
                        self._last_resort("unexpected error at shutdown")
                if stopping and self._queue.empty():
                    self._closed = True  # before returning: a later submit cannot slip in unseen
                    return
        except asyncio.CancelledError:
            # E.g. the loop shuts down without __aexit__: what is in memory must still reach the disk.
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    self._held.append(item)
            self._last_resort("cancelled")
            raise

    async def _collect(self, stopping: bool) -> bool:
        """Move queued CDRs into self._held: up to a batch, or what arrives within max_delay_s.

        Returns whether the writer was asked to stop. When spooling, waits no longer than
        the next replay; after a failed attempt to store, first waits for the retry time.
        """
        if stopping:
            self._take_nowait()
            return True
        if self._held:  # the last attempt to store them failed: no hot loop
            await asyncio.sleep(max(0.0, self._retry_at - _now()))
            return self._take_nowait()
        timeout = max(0.0, self._retry_at - _now()) if self._spooling else None
        try:
            async with asyncio.timeout(timeout):
                first = await self._queue.get()
        except TimeoutError:
            return False
        if first is None:
            return True
        self._held.append(first)
        deadline = _now() + self._max_delay_s
        while len(self._held) < self._batch_size:
            if self._queue.empty():
                remaining = deadline - _now()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self._queue.get()
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if item is None:
                return True
            self._held.append(item)
        return self._take_nowait()

    def _take_nowait(self) -> bool:
        """Move the CDRs already queued into self._held, up to a backlog batch; whether a stop was among them."""
        while len(self._held) < self._backlog_batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return True
            self._held.append(item)
        return False

    async def _store_held(self) -> None:
        """Write the held CDRs to the database or, while it is down or the spool is not empty, to the spool."""
        tried_database = not self._spooling
        if tried_database and await self._write_held():
            self._stuck = False
            return
        reason = "database_down" if self.database_down else "spool_not_replayed"
        try:
            await asyncio.to_thread(self.spool.append, self._held)
        except SpoolError as exc:
            log.error("spool.write_failed", error=str(exc), pending=self.pending)
            self._retry_at = _now() + self._retry_s
            if not tried_database:
                # With the spool broken the database is the only safe place left: safe beats in order.
                await self._write_held()
            self._stuck = bool(self._held)
            return
        log.warning("cdr.spooled", count=len(self._held), reason=reason, path=str(self.spool.path))
        self._spooled += len(self._held)
        self._held = []
        self._stuck = False

    async def _write_held(self) -> bool:
        result = await self._write(self._held)
        self._held = result.unwritten
        if self._held:
            return False
        log.info("cdr.written", count=result.new + result.already_there, new=result.new,
                 already_there=result.already_there, rejected=result.rejected)
        return True

    async def _replay(self) -> None:
        """Store the spool's CDRs in order, in batches; empty it once all are in the database."""
        self._retry_at = _now() + self._retry_s  # the next attempt, should this one fail
        try:
            cdrs = await asyncio.to_thread(self.spool.read)
        except SpoolError as exc:
            log.error("spool.read_failed", error=str(exc))
            return
        total = _Stored()
        for start in range(0, len(cdrs), self._backlog_batch_size):
            result = await self._write(cdrs[start:start + self._backlog_batch_size])
            if result.unwritten:
                # The spool stays as it is: rows stored meanwhile are found "already there" next
                # time (rows rejected meanwhile are rejected again, so may show twice in that file).
                return
            total.new += result.new
            total.already_there += result.already_there
            total.rejected += result.rejected
        try:
            await asyncio.to_thread(self.spool.clear)
        except SpoolError as exc:
            log.error("spool.clear_failed", error=str(exc))
            return
        self._spooling = False
        if cdrs:
            log.info("cdr.replayed", count=len(cdrs), new=total.new, already_there=total.already_there,
                     rejected=total.rejected)

    async def _write(self, cdrs: Sequence[RatedCdr]) -> _Stored:
        """Insert a batch; a row the database refuses as invalid is set aside, not the batch."""
        try:
            new = await self._insert(cdrs)
        except Exception as exc:
            if not is_row_fault(exc):
                self._database_failed(exc)
                return _Stored(unwritten=list(cdrs))
            log.warning("cdr.batch_refused", count=len(cdrs), error=_describe(exc))
            return await self._write_one_by_one(cdrs)
        self._written += len(cdrs)
        return _Stored(new=len(new), already_there=len(cdrs) - len(new))

    async def _write_one_by_one(self, cdrs: Sequence[RatedCdr]) -> _Stored:
        result = _Stored()
        for i, cdr in enumerate(cdrs):
            try:
                new = await self._insert([cdr])
            except Exception as exc:
                if not is_row_fault(exc):
                    self._database_failed(exc)
                    result.unwritten = list(cdrs[i:])
                    return result
                await self._reject(cdr, exc)
                result.rejected += 1
            else:
                self._written += 1
                result.new += len(new)
                result.already_there += 1 - len(new)
        return result

    async def _insert(self, cdrs: Sequence[RatedCdr]) -> set[str]:
        started = _now()
        try:
            async with asyncio.timeout(self._timeout_s):
                new = await insert_cdrs(self._pool, cdrs)
        except Exception as exc:
            if is_row_fault(exc):
                self._database_answered()
            raise
        # Completed inserts only: a refused connection fails in microseconds and would hide a slow database.
        self.write_latency.observe(_now() - started)
        self._database_answered()
        return new

    def _database_answered(self) -> None:
        if self._down_since is not None:
            log.info("db.back", down_s=round(_now() - self._down_since, 3))
            self._down_since = None

    async def _reject(self, cdr: RatedCdr, exc: Exception) -> None:
        error = _describe(exc)
        log.error("cdr.rejected", call_id=cdr.call.call_id, error=error)
        try:
            await asyncio.to_thread(self.spool.reject, cdr, error)
        except SpoolError as spool_exc:
            log.error("spool.reject_failed", call_id=cdr.call.call_id, error=str(spool_exc), cdr=cdr.to_json())
        self._rejected += 1

    def _database_failed(self, exc: Exception) -> None:
        self._spooling = True
        self._retry_at = _now() + self._retry_s
        expected = isinstance(exc, _OUTAGES)
        if self._down_since is None:
            self._down_since = _now()
            log.error("db.down", error=_describe(exc), retry_s=self._retry_s, exc_info=not expected)
        else:
            log.info("db.still_down", error=_describe(exc))

    def _last_resort(self, reason: str) -> None:
        """Spool the held CDRs now, blocking the loop; failing that, log every row so none vanishes unseen."""
        cdrs, self._held = self._held, []
        if not cdrs:
            return
        try:
            self.spool.append(cdrs)
        except SpoolError as exc:
            for cdr in cdrs:
                log.error("cdr.unsaved", reason=f"{reason}; {exc}", call_id=cdr.call.call_id, cdr=cdr.to_json())
            return
        self._spooled += len(cdrs)
        log.warning("cdr.spooled", count=len(cdrs), reason=reason, path=str(self.spool.path))


def _now() -> float:
    return asyncio.get_running_loop().time()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
