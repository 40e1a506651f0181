"""The CDR writer: batches, survives a database outage through the spool, and loses or doubles nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

import rating.storage.cdr_writer
from rating.core.cdr import CallRecord, Disposition, RatedCdr, rate_record
from plumbing.metrics import LatencyHistogram
from rating.storage.cdr_writer import CdrWriter
from rating.storage.database import is_row_fault
from rating.storage.spool import Spool, Spooled, SpoolError
from rating.core.tariff import DEFAULT_RATES, NumberType

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def cdr(n: int) -> RatedCdr:
    """An answered one-minute call with call id "call-<n>"."""
    started = START + timedelta(minutes=n)
    call = CallRecord(f"call-{n}", "+31201234567", "+31612345678", started, started + timedelta(seconds=5),
                      started + timedelta(seconds=65), Disposition.ANSWERED, 16)
    return rate_record(call, "cust-1", NumberType.LOCAL, DEFAULT_RATES)


def call_ids(numbers: Iterable[int]) -> list[str]:
    return [f"call-{n}" for n in numbers]


class FakeDb:
    """Stands in for `insert_cdrs`: a cdrs table keyed by call id, which can go down or refuse rows."""

    def __init__(self) -> None:
        self.rows: dict[str, RatedCdr] = {}  # in the order they arrived
        self.batches: list[list[str]] = []  # the call ids of every insert that succeeded
        self.down: BaseException | None = None  # raised by every insert while set
        self.refuse: set[str] = set()  # call ids that break a CHECK constraint
        self.lose_reply_once = False  # commit the next insert, then lose the connection before the reply
        self.hang = False  # inserts never return
        self.poison: dict[str, Exception] = {}  # call ids whose insert fails with an error outside their values
        self.attempts = 0
        self.probes = 0

    async def insert(self, _pool: Any, cdrs: Sequence[RatedCdr]) -> set[str]:
        self.attempts += 1
        await asyncio.sleep(0)
        if self.hang:
            await asyncio.Event().wait()
        if self.down is not None:
            raise self.down
        ids = [c.call.call_id for c in cdrs]
        if poisoned := [self.poison[i] for i in ids if i in self.poison]:
            raise poisoned[0]
        if self.refuse & set(ids):
            raise asyncpg.CheckViolationError('new row for relation "cdrs" violates check constraint')
        new = {i for i in ids if i not in self.rows}
        self.rows.update((c.call.call_id, c) for c in cdrs if c.call.call_id in new)
        self.batches.append(ids)
        if self.lose_reply_once:
            self.lose_reply_once = False
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return new

    async def probe(self, _pool: Any) -> None:
        """An insert of no rows: fails like any insert while the database is down, never for a row."""
        self.probes += 1
        await asyncio.sleep(0)
        if self.hang:
            await asyncio.Event().wait()
        if self.down is not None:
            raise self.down


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> FakeDb:
    fake = FakeDb()
    monkeypatch.setattr(rating.storage.cdr_writer, "insert_cdrs", fake.insert)
    monkeypatch.setattr(rating.storage.cdr_writer, "probe_cdr_store", fake.probe)
    return fake


NO_POOL: Any = object()  # the fake insert never touches the pool
OUTAGE = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


def fast_writer(spool_dir: Path, **options: Any) -> CdrWriter:
    """A writer on the fake database that waits 1 ms for a batch and retries after 10 ms, backing off to 40 ms."""
    return CdrWriter(NO_POOL, spool_dir, **{"max_delay_s": 0.001, "retry_s": 0.01, "max_retry_s": 0.04, **options})


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until check() holds: the writer works in a background task."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.001)


def spooled_ids(writer: CdrWriter) -> list[str]:
    """The call ids in the spool file, read without touching it."""
    if not writer.spool.path.exists():
        return []
    return [Spooled.from_json(json.loads(line)).cdr.call.call_id
            for line in writer.spool.path.read_text().splitlines() if line]


def events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs]


class TestBatching:
    async def test_cdrs_submitted_together_are_written_in_one_insert(self, db: FakeDb, tmp_path: Path) -> None:
        async with fast_writer(tmp_path) as writer:
            for n in range(5):
                writer.submit(cdr(n))
        assert db.batches == [call_ids(range(5))]
        assert (writer.written, writer.spooled, writer.pending) == (5, 0, 0)

    async def test_a_full_batch_is_written_without_waiting_for_the_delay(self, db: FakeDb, tmp_path: Path) -> None:
        async with CdrWriter(NO_POOL, tmp_path, batch_size=3, backlog_batch_size=3, max_delay_s=60) as writer:
            for n in range(7):
                writer.submit(cdr(n))
            await eventually(lambda: len(db.rows) == 6)
        assert db.batches == [call_ids(range(3)), call_ids(range(3, 6)), call_ids([6])]

    async def test_a_backlog_goes_in_bigger_batches(self, db: FakeDb, tmp_path: Path) -> None:
        """CDRs already waiting when a batch is full join it, up to backlog_batch_size."""
        async with CdrWriter(NO_POOL, tmp_path, batch_size=3, backlog_batch_size=5, max_delay_s=60) as writer:
            for n in range(12):
                writer.submit(cdr(n))
            await eventually(lambda: len(db.rows) == 10)
            writer.submit(cdr(12))
        assert db.batches == [call_ids(range(5)), call_ids(range(5, 10)), call_ids([10, 11, 12])]

    async def test_a_lone_cdr_is_written_after_max_delay(self, db: FakeDb, tmp_path: Path) -> None:
        async with CdrWriter(NO_POOL, tmp_path, max_delay_s=0.01) as writer:
            writer.submit(cdr(1))
            await eventually(lambda: writer.written == 1)
            assert db.batches == [["call-1"]]

    async def test_writing_is_logged_with_the_count(self, db: FakeDb, tmp_path: Path) -> None:
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                writer.submit(cdr(1))
                writer.submit(cdr(2))
        [written] = [e for e in logs if e["event"] == "cdr.written"]
        assert (written["count"], written["new"], written["already_there"]) == (2, 2, 0)


class TestDatabaseOutage:
    async def test_cdrs_are_spooled_in_order_while_down_then_replayed_once_then_written_directly(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                db.down = OUTAGE
                for n in range(5):
                    writer.submit(cdr(n))
                await eventually(lambda: writer.spooled == 5)
                for n in range(5, 8):
                    writer.submit(cdr(n))
                await eventually(lambda: writer.spooled == 8)
                assert spooled_ids(writer) == call_ids(range(8))
                assert db.rows == {} and writer.database_down

                db.down = None
                # The spool is cleared just after the last replayed batch is counted as written.
                await eventually(lambda: writer.written == 8 and not writer.spool.has_cdrs())
                assert list(db.rows) == call_ids(range(8))
                assert spooled_ids(writer) == []

                writer.submit(cdr(8))
                writer.submit(cdr(9))
                await eventually(lambda: writer.written == 10)
        assert db.batches == [call_ids(range(8)), call_ids([8, 9])]
        assert writer.spooled == 8 and not writer.database_down
        seen = events(logs)
        assert seen.index("db.down") < seen.index("cdr.spooled") < seen.index("db.back") < seen.index("cdr.replayed")
        [replayed] = [e for e in logs if e["event"] == "cdr.replayed"]
        assert (replayed["count"], replayed["new"], replayed["already_there"]) == (8, 8, 0)
        assert seen.count("db.down") == 1 and seen.count("db.back") == 1

    async def test_a_replay_is_split_into_batches_in_order(self, db: FakeDb, tmp_path: Path) -> None:
        """A replay is a backlog: its batches are backlog_batch_size."""
        async with fast_writer(tmp_path, batch_size=2, backlog_batch_size=4) as writer:
            db.down = OUTAGE
            for n in range(10):
                writer.submit(cdr(n))
            await eventually(lambda: writer.spooled == 10)
            db.down = None
            await eventually(lambda: writer.written == 10)
        assert db.batches == [call_ids(range(4)), call_ids(range(4, 8)), call_ids(range(8, 10))]

    async def test_a_batch_committed_before_the_connection_died_is_not_doubled(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        """The reply was lost, so the writer spools it; the replay finds the rows already there."""
        db.lose_reply_once = True
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                writer.submit(cdr(1))
                writer.submit(cdr(2))
                await eventually(lambda: writer.written == 2 and not writer.database_down)
        assert list(db.rows) == ["call-1", "call-2"]
        [replayed] = [e for e in logs if e["event"] == "cdr.replayed"]
        assert (replayed["new"], replayed["already_there"]) == (0, 2)

    @pytest.mark.parametrize(
        "error",
        [
            OUTAGE,
            TimeoutError(),
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            asyncpg.CannotConnectNowError("the database system is shutting down"),
            asyncpg.AdminShutdownError("terminating connection due to administrator command"),
            asyncpg.InterfaceError("connection is closed"),
            asyncpg.TooManyConnectionsError("sorry, too many clients already"),
            asyncpg.UndefinedTableError('relation "cdrs" does not exist'),  # the schema is not there (yet)
            RuntimeError("a bug in the insert"),
        ],
    )
    async def test_any_failure_not_caused_by_a_row_spools_the_batch_and_retries(
        self, db: FakeDb, tmp_path: Path, error: Exception
    ) -> None:
        db.down = error
        async with fast_writer(tmp_path) as writer:
            writer.submit(cdr(1))
            await eventually(lambda: writer.spooled == 1)
            probes = db.probes
            await eventually(lambda: db.probes > probes + 1)  # it keeps trying, backing off from retry_s
            db.down = None
            await eventually(lambda: writer.written == 1)
        assert (list(db.rows), writer.rejected) == (["call-1"], 0)

    async def test_an_unexpected_failure_is_logged_with_its_traceback(self, db: FakeDb, tmp_path: Path) -> None:
        db.down = RuntimeError("a bug in the insert")
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                writer.submit(cdr(1))
                await eventually(lambda: writer.spooled == 1)
        [down] = [e for e in logs if e["event"] == "db.down"]
        assert down["exc_info"] is True and "a bug in the insert" in down["error"]

    async def test_a_hanging_insert_times_out_and_counts_as_an_outage(self, db: FakeDb, tmp_path: Path) -> None:
        db.hang = True
        async with fast_writer(tmp_path, timeout_s=0.01) as writer:
            writer.submit(cdr(1))
            await eventually(lambda: writer.spooled == 1)
            assert writer.database_down
            db.hang = False
            await eventually(lambda: writer.written == 1)


class TestRowErrors:
    async def test_a_row_the_database_refuses_is_rejected_and_the_rest_of_its_batch_is_written(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        db.refuse = {"call-2"}
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                for n in range(1, 5):
                    writer.submit(cdr(n))
        assert list(db.rows) == ["call-1", "call-3", "call-4"]
        assert (writer.written, writer.rejected, writer.spooled) == (3, 1, 0)
        [rejected] = [e for e in logs if e["event"] == "cdr.rejected"]
        assert rejected["call_id"] == "call-2" and "CheckViolationError" in rejected["error"]
        [kept] = [json.loads(line) for line in writer.spool.rejected_path.read_text().splitlines()]
        assert RatedCdr.from_json(kept["cdr"]) == cdr(2) and "check constraint" in kept["reason"]
        assert "db.down" not in events(logs)

    async def test_a_refused_row_in_the_spool_does_not_hold_back_the_replay(self, db: FakeDb, tmp_path: Path) -> None:
        Spool(tmp_path).append([cdr(1), cdr(2), cdr(3)])
        db.refuse = {"call-2"}
        async with fast_writer(tmp_path) as writer:
            writer.submit(cdr(4))
        assert list(db.rows) == call_ids([1, 3, 4])
        assert writer.rejected == 1 and not writer.spool.has_cdrs()

    async def test_an_outage_in_the_middle_of_row_by_row_spools_only_the_rows_not_yet_stored(
        self, db: FakeDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        db.refuse = {"call-1"}
        calls = 0

        async def insert_then_go_down(pool: Any, cdrs: Sequence[RatedCdr]) -> set[str]:
            nonlocal calls
            calls += 1
            if calls == 4:  # the batch, call-1 (refused), call-2 (stored), then call-3: down
                db.down = OUTAGE
            return await db.insert(pool, cdrs)

        monkeypatch.setattr(rating.storage.cdr_writer, "insert_cdrs", insert_then_go_down)
        async with fast_writer(tmp_path) as writer:
            for n in range(1, 5):
                writer.submit(cdr(n))
            await eventually(lambda: writer.spooled == 2)
            assert spooled_ids(writer) == ["call-3", "call-4"]
            db.down = None
            await eventually(lambda: writer.written == 3)
        assert list(db.rows) == call_ids([2, 3, 4])
        assert writer.rejected == 1

    @pytest.mark.parametrize(
        ("error", "row_fault"),
        [
            (asyncpg.CheckViolationError("violates check constraint"), True),
            (asyncpg.NotNullViolationError("null value in column"), True),
            (asyncpg.UniqueViolationError("duplicate key"), True),
            (asyncpg.NumericValueOutOfRangeError("numeric field overflow"), True),
            (asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding"), True),
            (asyncpg.exceptions._base.DataError("invalid input for query argument $8"), True),
            (asyncpg.ConnectionDoesNotExistError("closed in the middle of operation"), False),
            (asyncpg.CannotConnectNowError("the database system is starting up"), False),
            (asyncpg.AdminShutdownError("terminating connection"), False),
            (asyncpg.InterfaceError("connection is closed"), False),
            (asyncpg.UndefinedTableError('relation "cdrs" does not exist'), False),
            (ConnectionRefusedError(), False),
            (TimeoutError(), False),
        ],
    )
    def test_only_errors_about_the_rows_themselves_reject_rows(self, error: Exception, row_fault: bool) -> None:
        assert is_row_fault(error) is row_fault


class TestStartAndStop:
    async def test_exit_writes_what_is_queued_without_waiting_for_the_delay(self, db: FakeDb, tmp_path: Path) -> None:
        async with asyncio.timeout(2):
            async with CdrWriter(NO_POOL, tmp_path, max_delay_s=60) as writer:
                for n in range(3):
                    writer.submit(cdr(n))
        assert list(db.rows) == call_ids(range(3))
        assert writer.pending == 0

    async def test_exit_while_the_database_is_down_spools_everything(self, db: FakeDb, tmp_path: Path) -> None:
        db.down = OUTAGE
        async with fast_writer(tmp_path, batch_size=2) as writer:
            for n in range(5):
                writer.submit(cdr(n))
        assert spooled_ids(writer) == call_ids(range(5))
        assert (writer.spooled, writer.pending) == (5, 0)

    async def test_a_new_writer_replays_the_spool_before_anything_submitted_to_it(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        """How CDRs spooled before a crash or restart reach the database."""
        Spool(tmp_path).append([cdr(1), cdr(2)])
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                writer.submit(cdr(3))
        assert list(db.rows) == call_ids([1, 2, 3])
        assert not writer.spool.has_cdrs()
        assert "spool.found" in events(logs) and "db.down" not in events(logs)

    async def test_a_writer_started_while_the_database_is_down_queues_new_cdrs_behind_the_spooled_ones(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        Spool(tmp_path).append([cdr(1), cdr(2)])
        db.down = OUTAGE
        async with fast_writer(tmp_path) as writer:
            writer.submit(cdr(3))
            await eventually(lambda: writer.spooled == 1)
            assert spooled_ids(writer) == call_ids([1, 2, 3])
            db.down = None
            await eventually(lambda: len(db.rows) == 3)
        assert list(db.rows) == call_ids([1, 2, 3])

    async def test_an_unwritable_spool_stops_start_up(self, db: FakeDb, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(SpoolError, match=str(tmp_path / "file")):
            async with CdrWriter(NO_POOL, tmp_path / "file" / "spool"):
                pass

    async def test_cancelling_the_shutdown_still_spools_what_is_in_memory(self, db: FakeDb, tmp_path: Path) -> None:
        db.hang = True

        async def run() -> None:
            async with fast_writer(tmp_path) as writer:
                for n in range(3):
                    writer.submit(cdr(n))

        task = asyncio.create_task(run())
        await eventually(lambda: db.attempts == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [e.cdr.call.call_id for e in Spool(tmp_path).read_segment(0, limit=100).entries] == call_ids(range(3))


class TestSubmit:
    async def test_submit_never_raises_even_with_the_database_down_and_the_spool_unwritable(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        """CDRs stay in memory, logged as unspooled, until either the database or the spool works again."""
        db.down = OUTAGE
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                writer.spool.directory = tmp_path / "file" / "spool"
                (tmp_path / "file").write_text("")
                for n in range(100):
                    writer.submit(cdr(n))
                await eventually(lambda: "spool.write_failed" in events(logs))
                assert writer.pending == 100 and writer.spooled == 0
                db.down = None
                await eventually(lambda: writer.written == 100)
        assert list(db.rows) == call_ids(range(100))

    async def test_a_cdr_submitted_after_close_is_logged_whole_instead_of_raising(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        async with fast_writer(tmp_path) as writer:
            pass
        with capture_logs() as logs:
            writer.submit(cdr(1))
        [lost] = logs
        assert lost["event"] == "cdr.submit_after_close" and RatedCdr.from_json(lost["cdr"]) == cdr(1)


class TestStatus:
    """What /healthz and /metrics read: spool depth, write latency, and whether CDRs are at risk."""

    async def test_spool_depth_rises_during_an_outage_and_falls_to_zero_after_the_replay(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        Spool(tmp_path).append([cdr(1)])  # left by an earlier run
        db.down = OUTAGE
        async with fast_writer(tmp_path) as writer:
            assert writer.spool_depth == 1
            writer.submit(cdr(2))
            writer.submit(cdr(3))
            await eventually(lambda: writer.spooled == 2)
            assert (writer.spool_depth, writer.failing) == (3, None)  # spooled: not at risk
            db.down = None
            await eventually(lambda: writer.spool_depth == 0)
        assert list(db.rows) == call_ids([1, 2, 3])

    async def test_write_latency_counts_each_completed_insert_not_the_failed_ones(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        async with fast_writer(tmp_path) as writer:
            writer.submit(cdr(1))
            await eventually(lambda: writer.written == 1)
            db.down = OUTAGE
            writer.submit(cdr(2))
            await eventually(lambda: writer.spooled == 1)
            assert writer.write_latency.count == 1
            db.down = None
            await eventually(lambda: writer.written == 2)
        assert writer.write_latency.count == 2
        assert writer.write_latency.cumulative()[-1] == (float("inf"), 2)

    async def test_failing_while_neither_the_database_nor_the_spool_takes_cdrs(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        db.down = OUTAGE
        with capture_logs() as logs:
            async with fast_writer(tmp_path) as writer:
                assert writer.failing is None
                writer.spool.directory = tmp_path / "file" / "spool"
                (tmp_path / "file").write_text("")
                writer.submit(cdr(1))
                await eventually(lambda: "spool.write_failed" in events(logs))
                assert writer.failing is not None and "memory" in writer.failing
                db.down = None
                await eventually(lambda: writer.written == 1)
                assert writer.failing is None

    async def test_failing_once_the_writer_task_has_stopped_unexpectedly(self, db: FakeDb, tmp_path: Path) -> None:
        async with fast_writer(tmp_path) as writer:
            assert writer._task is not None
            writer._task.cancel()
            await eventually(lambda: writer.failing is not None)
            assert writer.failing == "the CDR writer has stopped"
            writer._task = None  # let __aexit__ finish without awaiting the cancelled task


class TestLatencyHistogram:
    def test_buckets_are_cumulative_and_a_value_on_a_bound_falls_in_that_bucket(self) -> None:
        hist = LatencyHistogram((0.1, 1.0))
        for seconds in (0.05, 0.1, 0.5, 3.0):
            hist.observe(seconds)
        assert hist.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
        assert (hist.count, hist.sum) == (4, pytest.approx(3.65))


TRIGGER_SAYS_NO = asyncpg.RaiseError("cdr 2 refused by trigger")  # SQLSTATE P0001: outside classes 22 and 23


class TestLongOutage:
    async def test_while_the_database_stays_down_only_a_probe_is_tried_the_spool_is_not_read(
        self, db: FakeDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Issue 17: each retry used to read and parse the whole spool before an insert found the database down."""
        Spool(tmp_path).append([cdr(n) for n in range(100)])
        reads: list[int] = []
        original = Spool.read_segment

        def counted(spool: Spool, offset: int, **kw: Any) -> Any:
            reads.append(offset)
            return original(spool, offset, **kw)

        monkeypatch.setattr(Spool, "read_segment", counted)
        db.down = OUTAGE
        async with fast_writer(tmp_path, batch_size=10, backlog_batch_size=30) as writer:
            await eventually(lambda: db.probes >= 5)
            assert (reads, db.attempts) == ([], 0)
            db.down = None
            await eventually(lambda: writer.written == 100 and not writer.spool.has_cdrs())
        assert len(reads) == len(set(reads)) == 4 and reads[0] == 0  # 30 + 30 + 30 + 10, each read once
        assert list(db.rows) == call_ids(range(100))

    async def test_retries_back_off_from_retry_s_to_max_retry_s_and_start_again_once_it_answers(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        db.down = OUTAGE
        with capture_logs() as logs:
            async with fast_writer(tmp_path, retry_s=0.001, max_retry_s=0.008) as writer:
                writer.submit(cdr(1))
                await eventually(lambda: db.probes >= 6)
                db.down = None
                await eventually(lambda: writer.written == 1)
                db.down = OUTAGE
                writer.submit(cdr(2))
                await eventually(lambda: writer.spooled == 2)
                db.down = None
        [first_down, second_down] = [e for e in logs if e["event"] == "db.down"]
        still = [e["retry_in_s"] for e in logs if e["event"] == "db.still_down"]
        assert first_down["retry_s"] == second_down["retry_s"] == 0.001
        assert still[:4] == [0.002, 0.004, 0.008, 0.008]

    async def test_new_cdrs_are_stored_behind_a_long_replay_without_waiting_for_all_of_it(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        """One segment per turn of the task: CDRs that arrive meanwhile reach the spool, then the database."""
        Spool(tmp_path).append([cdr(n) for n in range(50)])
        async with fast_writer(tmp_path, batch_size=2, backlog_batch_size=5) as writer:
            for n in range(50, 53):
                writer.submit(cdr(n))
            await eventually(lambda: writer.written == 53 and not writer.spool.has_cdrs())
        assert list(db.rows) == call_ids(range(53))
        assert all(len(batch) <= 5 for batch in db.batches)


class TestPoisonCdr:
    """A CDR PostgreSQL refuses for a reason outside classes 22/23 while it takes others (issue 17)."""

    async def test_it_is_tried_max_tries_times_then_dead_lettered_loudly_and_the_others_are_stored(
        self, db: FakeDb, tmp_path: Path
    ) -> None:
        db.poison = {"call-2": TRIGGER_SAYS_NO}
        with capture_logs() as logs:
            async with fast_writer(tmp_path, max_tries=3) as writer:
                for n in range(1, 5):
                    writer.submit(cdr(n))
                await eventually(lambda: writer.dead_lettered == 1 and not writer.spool.has_cdrs())
                writer.submit(cdr(5))
                await eventually(lambda: writer.written == 4)
        assert list(db.rows) == call_ids([1, 3, 4, 5])
        assert (writer.rejected, writer.dead_letters, writer.database_down) == (0, 1, False)
        refused = [e for e in logs if e["event"] == "cdr.refused_for_now"]
        assert [(e["call_id"], e["tries"]) for e in refused] == [("call-2", 1), ("call-2", 2)]
        [dead] = [e for e in logs if e["event"] == "cdr.dead_lettered"]
        assert (dead["call_id"], dead["tries"], dead["log_level"]) == ("call-2", 3, "error")
        assert "RaiseError" in dead["error"] and dead["path"] == str(writer.spool.dead_letter_path)
        [kept] = [json.loads(line) for line in writer.spool.dead_letter_path.read_text().splitlines()]
        assert (RatedCdr.from_json(kept["cdr"]), kept["tries"]) == (cdr(2), 3)
        assert "db.down" not in events(logs)

    async def test_the_cdrs_behind_it_flow_while_it_waits_for_its_next_try(self, db: FakeDb, tmp_path: Path) -> None:
        db.poison = {"call-1": TRIGGER_SAYS_NO}
        async with fast_writer(tmp_path, max_tries=1000, retry_s=0.01, max_retry_s=0.05) as writer:
            writer.submit(cdr(1))
            await eventually(lambda: writer.spooled >= 1)
            for n in range(2, 6):
                writer.submit(cdr(n))
            await eventually(lambda: set(db.rows) == set(call_ids(range(2, 6))))
            assert writer.dead_lettered == 0 and writer.spool.has_cdrs()  # call-1 still waits for a try
            db.poison = {}
            await eventually(lambda: "call-1" in db.rows and not writer.spool.has_cdrs())

    async def test_a_poison_cdr_in_the_spool_does_not_block_the_replay(self, db: FakeDb, tmp_path: Path) -> None:
        Spool(tmp_path).append([cdr(n) for n in range(1, 6)])
        db.poison = {"call-3": TRIGGER_SAYS_NO}
        async with fast_writer(tmp_path, max_tries=2) as writer:
            await eventually(lambda: writer.dead_lettered == 1 and not writer.spool.has_cdrs())
        assert list(db.rows) == call_ids([1, 2, 4, 5])

    async def test_an_error_the_probe_shares_is_an_outage_never_a_dead_letter(self, db: FakeDb, tmp_path: Path) -> None:
        """A table that is missing refuses every CDR: they wait in the spool, none is set aside."""
        db.down = asyncpg.UndefinedTableError('relation "cdrs" does not exist')
        async with fast_writer(tmp_path, max_tries=1) as writer:
            writer.submit(cdr(1))
            await eventually(lambda: db.probes >= 5)
            assert (writer.dead_lettered, writer.spool_depth, writer.database_down) == (0, 1, True)
            db.down = None
            await eventually(lambda: writer.written == 1)
