"""The CDR writer: stores finished calls without ever holding up call handling.

The ARI app calls `submit` (synchronous, never blocks, never raises); a background
task inserts the CDRs in batches. While PostgreSQL is unreachable the batches go to
the on-disk spool, in order, and the spool is replayed, in order, once it answers
again: a cheap probe first (an insert of no rows), then the spool in segments, one
segment per turn of the task, from where the last one ended; retries back off from
retry_s to max_retry_s. Inserts are idempotent on the call id, so a replay doubles
nothing. A CDR the database refuses while it takes others, for a reason outside its
values (a trigger's error, an index row too large), goes back to the end of the spool
to be tried again later, and after max_tries to the dead-letter file: it never holds
up the CDRs behind it for long (decision 0023).
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
from rating.storage.spool import Spool, Spooled, SpoolError
from rating.storage.database import insert_cdrs, is_row_fault, probe_cdr_store
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
    read: int = 0
    new: int = 0
    already_there: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    unwritten: list[Spooled] = dataclasses.field(default_factory=list)  # the database failed before these
    retry: list[Spooled] = dataclasses.field(default_factory=list)  # refused for now: back to the spool

    def add(self, other: _Stored) -> None:
        self.read += other.read
        self.new += other.new
        self.already_there += other.already_there
        self.rejected += other.rejected
        self.dead_lettered += other.dead_lettered


class CdrWriter:
    """Batches submitted CDRs into PostgreSQL, falling back to a durable spool while it is down.

    Use as `async with CdrWriter(pool, spool_dir) as writer:`. The pool belongs to the caller.
    """

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection, spool_dir: str | PathLike[str], *,
                 batch_size: int = 200, backlog_batch_size: int = 2000, max_delay_s: float = 0.2,
                 retry_s: float = 1.0, max_retry_s: float = 10.0, timeout_s: float = 10.0,
                 max_tries: int = 5) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self._pool = pool
        self.spool = Spool(spool_dir)
        # A batch is written once it holds batch_size CDRs (or max_delay_s after its first); CDRs
        # already waiting then join it up to backlog_batch_size: a backlog (a burst, a spool replay,
        # `fairline cdr import`) goes in bigger batches, which cost PostgreSQL less per row.
        self._batch_size = batch_size
        self._backlog_batch_size = max(batch_size, backlog_batch_size)
        self._max_delay_s = max_delay_s
        self._retry_s = retry_s
        self._max_retry_s = max(retry_s, max_retry_s)
        self._delay_s = retry_s  # until the next attempt after a failure: doubles while the database stays down
        self._timeout_s = timeout_s  # an insert that hangs (a silent network) counts as an outage
        self._max_tries = max_tries
        self._queue: asyncio.Queue[RatedCdr | None] = asyncio.Queue()  # None: stop
        self._held: list[Spooled] = []  # taken from the queue, in neither the database nor the spool yet
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # True while new CDRs must go behind spooled ones: the database failed, a CDR waits for
        # another try, or the spool held CDRs at start-up. Cleared when a replay has emptied the spool.
        self._spooling = False
        # The replay: the spool file is read from _offset (bytes) in segments. A pass reads up to
        # where the file ended when it began (_pass_end); what is appended meanwhile (new CDRs, CDRs
        # sent back for another try) waits for the next pass, so a refused CDR is not retried at once.
        self._offset = 0
        self._pass_end: int | None = None
        self._pass_retry_tries = 0  # the most tries of a CDR this pass sent back to the spool
        self._replayed = _Stored()  # since the spool was last empty, for the cdr.replayed line
        self._down_since: float | None = None  # loop time of the failure that began an outage
        self._retry_at = 0.0
        self._written = 0
        self._spooled = 0
        self._rejected = 0
        self._dead_lettered = 0
        self._stuck = False  # the last attempt to store held CDRs found neither the database nor the spool
        self.write_latency = LatencyHistogram()  # of every insert the database completed

    # -- read-only stats for tests and the shutdown log
    @property
    def written(self) -> int:
        """CDRs this writer has put in the database (replays included), or found already there."""
        return self._written

    @property
    def spooled(self) -> int:
        """CDRs this writer has appended to the spool (those sent back for another try included)."""
        return self._spooled

    @property
    def rejected(self) -> int:
        """CDRs the database refused as invalid, kept in the spool's rejected file."""
        return self._rejected

    @property
    def dead_lettered(self) -> int:
        """CDRs this writer moved to the dead-letter file after max_tries refusals."""
        return self._dead_lettered

    @property
    def dead_letters(self) -> int:
        """CDRs in the dead-letter file now, waiting for a person (one stat: cheap)."""
        return self.spool.dead_letters

    @property
    def dead_letter_path(self) -> str:
        return str(self.spool.dead_letter_path)

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
            log.info("spool.found", path=str(self.spool.path), cdrs=self.spool.depth)
            self._spooling = True
        if self.spool.dead_letters:
            log.error("spool.dead_letters_waiting", path=self.dead_letter_path, cdrs=self.spool.dead_letters,
                      hint="CDRs PostgreSQL refused again and again: see docs/operations.md")
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
                 dead_lettered=self._dead_lettered, pending=self.pending, database_down=self.database_down)

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
                        await self._replay_step()
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
                    self._held.append(Spooled(item))
            self._last_resort("cancelled")
            raise

    async def _collect(self, stopping: bool) -> bool:
        """Move queued CDRs into self._held: up to a batch, or what arrives within max_delay_s.

        Returns whether the writer was asked to stop. When spooling, waits no longer than
        the next replay step; after a failed attempt to store, first waits for the retry time.
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
        self._held.append(Spooled(first))
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
            self._held.append(Spooled(item))
        return self._take_nowait()

    def _take_nowait(self) -> bool:
        """Move the CDRs already queued into self._held, up to a backlog batch; whether a stop was among them."""
        while len(self._held) < self._backlog_batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return True
            self._held.append(Spooled(item))
        return False

    async def _store_held(self) -> None:
        """Write the held CDRs to the database or, while it is down or the spool is not empty, to the spool."""
        tried_database = not self._spooling
        if tried_database:
            result = await self._write(self._held)
            self._held = result.unwritten + result.retry
            if not self._held:
                log.info("cdr.written", count=result.new + result.already_there, new=result.new,
                         already_there=result.already_there, rejected=result.rejected,
                         dead_lettered=result.dead_lettered)
                self._stuck = False
                return
            if result.retry and not result.unwritten:
                # Refused for now: the spool keeps them, and the CDRs after them, until their next try.
                self._spooling = True
                self._retry_at = _now() + self._retry_delay(max(e.tries for e in result.retry))
        if self.database_down:
            reason = "database_down"
        elif tried_database:
            reason = "refused_for_now"
        else:
            reason = "spool_not_replayed"
        try:
            await asyncio.to_thread(self.spool.append, self._held)
        except SpoolError as exc:
            log.error("spool.write_failed", error=str(exc), pending=self.pending)
            self._retry_at = _now() + self._retry_s
            if not tried_database:
                # With the spool broken the database is the only safe place left: safe beats in order.
                result = await self._write(self._held)
                self._held = result.unwritten + result.retry
            self._stuck = bool(self._held)
            return
        log.warning("cdr.spooled", count=len(self._held), reason=reason, path=str(self.spool.path))
        self._spooled += len(self._held)
        self._held = []
        self._stuck = False

    async def _replay_step(self) -> None:
        """Store the next segment of the spool; empty the spool once all of it is in the database.

        A probe comes first whenever the database may be down, so an outage costs one round
        trip per retry, not a read of the spool. One segment per call: the task collects new
        CDRs in between, and nothing but a segment is ever in memory.
        """
        self._retry_at = _now() + self._delay_s  # the next attempt, should this one fail
        if self._pass_end is None or self.database_down:
            problem = await self._probe()
            if problem is not None:
                self._database_failed(problem)
                return
        try:
            if self._pass_end is None:
                self._pass_end = await asyncio.to_thread(self.spool.size)
                self._pass_retry_tries = 0
            segment = await asyncio.to_thread(self.spool.read_segment, self._offset,
                                              limit=self._backlog_batch_size, until=self._pass_end)
        except SpoolError as exc:
            log.error("spool.read_failed", error=str(exc))
            return
        if segment.entries:
            result = await self._write(segment.entries)
            if result.unwritten:
                # The offset stays: rows stored meanwhile are found "already there" next time (rows
                # rejected meanwhile are rejected again, so may show twice in that file).
                return
            if result.retry:
                self._pass_retry_tries = max(self._pass_retry_tries, *(e.tries for e in result.retry))
                try:
                    await asyncio.to_thread(self.spool.append, result.retry)
                    self._spooled += len(result.retry)
                except SpoolError as exc:
                    log.error("spool.write_failed", error=str(exc), pending=self.pending + len(result.retry))
                    self._held.extend(result.retry)  # stored with the next held CDRs, or spooled then
            result.read = len(segment.entries)
            self._replayed.add(result)
        self._offset = segment.end
        if self._offset < self._pass_end:
            self._retry_at = _now()  # the next segment at once, after the task has looked at its queue
            return
        self._pass_end = None
        try:
            cleared = await asyncio.to_thread(self.spool.clear_if_read, self._offset)
        except SpoolError as exc:
            log.error("spool.clear_failed", error=str(exc))
            return
        if not cleared:
            # Appended during this pass: new CDRs, or CDRs sent back to wait for another try.
            tries = self._pass_retry_tries
            self._retry_at = _now() + (self._retry_delay(tries) if tries else 0.0)
            return
        self._spooling = False
        self._offset = 0
        done, self._replayed = self._replayed, _Stored()
        if done.read:
            log.info("cdr.replayed", count=done.read, new=done.new, already_there=done.already_there,
                     rejected=done.rejected, dead_lettered=done.dead_lettered)

    async def _write(self, entries: Sequence[Spooled]) -> _Stored:
        """Insert a batch; a row the database refuses while it takes others is set aside, not the batch."""
        try:
            new = await self._insert([e.cdr for e in entries])
        except Exception as exc:
            if is_row_fault(exc):
                log.warning("cdr.batch_refused", count=len(entries), error=_describe(exc))
                return await self._write_one_by_one(entries)
            if not isinstance(exc, _OUTAGES) and await self._probe() is None:
                # The database takes CDRs, not these: find the ones it refuses.
                log.warning("cdr.batch_failed", count=len(entries), error=_describe(exc))
                return await self._write_one_by_one(entries)
            self._database_failed(exc)
            return _Stored(unwritten=list(entries))
        self._written += len(entries)
        return _Stored(new=len(new), already_there=len(entries) - len(new))

    async def _write_one_by_one(self, entries: Sequence[Spooled]) -> _Stored:
        result = _Stored()
        for i, entry in enumerate(entries):
            try:
                new = await self._insert([entry.cdr])
            except Exception as exc:
                if is_row_fault(exc):
                    await self._reject(entry.cdr, exc)
                    result.rejected += 1
                elif isinstance(exc, _OUTAGES) or await self._probe() is not None:
                    self._database_failed(exc)
                    result.unwritten = list(entries[i:])
                    return result
                elif entry.tries + 1 >= self._max_tries:
                    await self._dead_letter(Spooled(entry.cdr, entry.tries + 1), exc)
                    result.dead_lettered += 1
                else:
                    retry = Spooled(entry.cdr, entry.tries + 1)
                    log.warning("cdr.refused_for_now", call_id=entry.cdr.call.call_id, tries=retry.tries,
                                max_tries=self._max_tries, retry_in_s=self._retry_delay(retry.tries),
                                error=_describe(exc))
                    result.retry.append(retry)
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

    async def _probe(self) -> Exception | None:
        """Whether the database takes CDRs now: None when it does, else what it raised."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await probe_cdr_store(self._pool)
        except Exception as exc:
            return exc
        self._database_answered()
        return None

    def _database_answered(self) -> None:
        self._delay_s = self._retry_s
        if self._down_since is not None:
            log.info("db.back", down_s=round(_now() - self._down_since, 3))
            self._down_since = None

    def _retry_delay(self, tries: int) -> float:
        """How long a CDR refused `tries` times waits for its next try: retry_s, doubling, at most max_retry_s."""
        return float(min(self._retry_s * 2 ** (tries - 1), self._max_retry_s))

    async def _reject(self, cdr: RatedCdr, exc: Exception) -> None:
        error = _describe(exc)
        log.error("cdr.rejected", call_id=cdr.call.call_id, error=error)
        try:
            await asyncio.to_thread(self.spool.reject, cdr, error)
        except SpoolError as spool_exc:
            log.error("spool.reject_failed", call_id=cdr.call.call_id, error=str(spool_exc), cdr=cdr.to_json())
        self._rejected += 1

    async def _dead_letter(self, entry: Spooled, exc: Exception) -> None:
        error = _describe(exc)
        log.error("cdr.dead_lettered", call_id=entry.cdr.call.call_id, tries=entry.tries, error=error,
                  path=self.dead_letter_path, hint="PostgreSQL took other CDRs but refused this one each time: "
                                                   "see docs/operations.md")
        try:
            await asyncio.to_thread(self.spool.dead_letter, entry, error)
        except SpoolError as spool_exc:
            log.error("spool.dead_letter_failed", call_id=entry.cdr.call.call_id, error=str(spool_exc),
                      cdr=entry.cdr.to_json())
        self._dead_lettered += 1

    def _database_failed(self, exc: Exception) -> None:
        self._spooling = True
        self._retry_at = _now() + self._delay_s
        expected = isinstance(exc, _OUTAGES)
        if self._down_since is None:
            self._down_since = _now()
            log.error("db.down", error=_describe(exc), retry_s=self._delay_s, exc_info=not expected)
        else:
            log.info("db.still_down", error=_describe(exc), retry_in_s=self._delay_s)
        self._delay_s = min(self._delay_s * 2, self._max_retry_s)

    def _last_resort(self, reason: str) -> None:
        """Spool the held CDRs now, blocking the loop; failing that, log every row so none vanishes unseen."""
        entries, self._held = self._held, []
        if not entries:
            return
        try:
            self.spool.append(entries)
        except SpoolError as exc:
            for entry in entries:
                log.error("cdr.unsaved", reason=f"{reason}; {exc}", call_id=entry.cdr.call.call_id,
                          cdr=entry.cdr.to_json())
            return
        self._spooled += len(entries)
        log.warning("cdr.spooled", count=len(entries), reason=reason, path=str(self.spool.path))


def _now() -> float:
    return asyncio.get_running_loop().time()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
