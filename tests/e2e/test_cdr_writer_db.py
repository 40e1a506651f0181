"""The CDR writer against the real PostgreSQL: stop the database under it, and every CDR arrives exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from rating.core.cdr import CallRecord, Disposition, RatedCdr, rate_record
from rating.storage.cdr_writer import CdrWriter
from rating.core.tariff import DEFAULT_RATES, NumberType
from tests.e2e.conftest import LiveStack

pytestmark = pytest.mark.e2e

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
DEADLINE_S = 30


def cdr(prefix: str, n: int) -> RatedCdr:
    started = START + timedelta(seconds=n)
    call = CallRecord(f"{prefix}{n}", "+31201234567", "+31612345678", started, started + timedelta(seconds=3),
                      started + timedelta(seconds=63), Disposition.ANSWERED, 16)
    return rate_record(call, "cust-1", NumberType.LOCAL, DEFAULT_RATES)


@pytest.fixture
def prefix(live_stack: LiveStack) -> Iterator[str]:
    """A call id prefix only this test uses; its rows are deleted afterwards (the database is shared)."""
    p = f"wtest-{uuid.uuid4().hex[:12]}-"
    yield p
    live_stack.stack.psql("fairline", f"DELETE FROM cdrs WHERE call_id LIKE '{p}%'")


@contextlib.asynccontextmanager
async def postgres_stopping(live: LiveStack) -> AsyncIterator[asyncio.Task[None]]:
    """PostgreSQL shuts down (fast: open connections are cut) as the block starts, and is up again
    after the block, even when it fails. Await the task yielded to know it is down."""
    stopping = asyncio.create_task(asyncio.to_thread(live.stack.stop_postgres))
    try:
        yield stopping
    finally:
        await stopping
        await asyncio.to_thread(live.stack.start_postgres)


def stored(live: LiveStack, prefix: str) -> list[tuple[int, int]]:
    """(n, copies) for every stored CDR of this test, by n."""
    out = live.stack.psql("fairline", f"SELECT call_id, count(*) FROM cdrs WHERE call_id LIKE '{prefix}%' GROUP BY call_id")
    rows = [line.split("|") for line in out.splitlines() if line]
    return sorted((int(call_id.removeprefix(prefix)), int(copies)) for call_id, copies in rows)


def recorded_in_order(live: LiveStack, prefix: str) -> bool:
    """Whether CDR n+1 was inserted no earlier than CDR n (recorded_at is each insert's transaction time)."""
    out = live.stack.psql("fairline", f"""
        SELECT coalesce(bool_and(ok), true) FROM (
          SELECT recorded_at >= lag(recorded_at) OVER (ORDER BY substring(call_id FROM {len(prefix) + 1})::int)
                 OR lag(recorded_at) OVER (ORDER BY substring(call_id FROM {len(prefix) + 1})::int) IS NULL AS ok
          FROM cdrs WHERE call_id LIKE '{prefix}%') t""")
    return str(out).strip() == "t"


async def until(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


async def until_stored(live: LiveStack, prefix: str, n: int) -> list[tuple[int, int]]:
    rows: list[tuple[int, int]] = []

    def check() -> bool:
        nonlocal rows
        rows = stored(live, prefix)
        return len(rows) >= n

    await until(check, f"{n} CDRs in the table")
    return rows


async def test_every_cdr_arrives_exactly_once_and_in_order_when_postgres_stops_and_comes_back(
    live_stack: LiveStack, pool: asyncpg.Pool, prefix: str, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        async with CdrWriter(pool, tmp_path / "spool", batch_size=50, max_delay_s=0.05, retry_s=0.2,
                             timeout_s=5) as writer:
            for n in range(100):
                writer.submit(cdr(prefix, n))
            await until(lambda: writer.written == 100, "100 CDRs written before the outage")

            async with postgres_stopping(live_stack) as stopping:
                for n in range(100, 250):  # calls keep ending while PostgreSQL shuts down...
                    writer.submit(cdr(prefix, n))
                    if n % 10 == 0:
                        await asyncio.sleep(0.005)
                await stopping
                for n in range(250, 400):  # ...and after it is down
                    writer.submit(cdr(prefix, n))
                    if n % 10 == 0:
                        await asyncio.sleep(0.005)
                await until(lambda: writer.pending == 0, "every CDR stored or spooled")
                assert writer.database_down
                spooled = len(writer.spool.path.read_text().splitlines())
                # A batch cut off mid-insert may be in the table and in the spool: the replay will find it there.
                assert spooled == writer.spooled >= 150
                assert writer.written + writer.spooled >= 400

            await until(lambda: not writer.database_down and not writer.spool.has_cdrs(), "the spool replayed")
            for n in range(400, 450):
                writer.submit(cdr(prefix, n))

    assert await until_stored(live_stack, prefix, 450) == [(n, 1) for n in range(450)]
    assert recorded_in_order(live_stack, prefix)
    assert (writer.rejected, writer.pending) == (0, 0)
    seen = [e["event"] for e in logs]
    assert seen.count("db.down") == 1 and seen.count("db.back") == 1
    [replayed] = [e for e in logs if e["event"] == "cdr.replayed"]
    assert replayed["count"] == replayed["new"] + replayed["already_there"] == spooled


async def test_cdrs_spooled_by_a_writer_closed_during_the_outage_arrive_through_the_next_writer(
    live_stack: LiveStack, pool: asyncpg.Pool, prefix: str, tmp_path: Path
) -> None:
    """The restart case: the app stops while PostgreSQL is down and starts again after it is back."""
    spool_dir = tmp_path / "spool"
    async with postgres_stopping(live_stack) as stopping:
        await stopping
        async with CdrWriter(pool, spool_dir, max_delay_s=0.05, retry_s=0.2, timeout_s=5) as first:
            for n in range(50):
                first.submit(cdr(prefix, n))
        assert (first.spooled, first.pending, first.written) == (50, 0, 0)

    async with CdrWriter(pool, spool_dir, max_delay_s=0.05, retry_s=0.2, timeout_s=5) as second:
        for n in range(50, 60):
            second.submit(cdr(prefix, n))
        await until(lambda: second.written == 60, "the old spool and the new CDRs written")
    assert await until_stored(live_stack, prefix, 60) == [(n, 1) for n in range(60)]
    assert recorded_in_order(live_stack, prefix)
    assert not second.spool.has_cdrs()


async def test_rows_postgres_refuses_are_set_aside_and_the_rest_of_their_batch_is_stored(
    live_stack: LiveStack, pool: asyncpg.Pool, prefix: str, tmp_path: Path
) -> None:
    """A CHECK violation (server side) and a value asyncpg cannot encode (client side) are row faults, not outages."""
    good = [cdr(prefix, n) for n in range(4)]
    bad_price = dataclasses.replace(cdr(prefix, 4), price=dataclasses.replace(
        cdr(prefix, 4).price, list_price_eur=Decimal("99")))  # breaks cdrs_price_adds_up
    bad_cause = dataclasses.replace(cdr(prefix, 5), call=dataclasses.replace(
        cdr(prefix, 5).call, hangup_cause=2**40))  # does not fit the integer column
    with capture_logs() as logs:
        async with CdrWriter(pool, tmp_path / "spool", max_delay_s=0.05) as writer:
            for c in (good[0], bad_price, good[1], bad_cause, good[2], good[3]):
                writer.submit(c)
    assert stored(live_stack, prefix) == [(n, 1) for n in range(4)]
    assert (writer.written, writer.rejected, writer.spooled) == (4, 2, 0)
    rejected = {e["call_id"]: e["error"] for e in logs if e["event"] == "cdr.rejected"}
    assert rejected.keys() == {f"{prefix}4", f"{prefix}5"}
    assert rejected[f"{prefix}4"].startswith("CheckViolationError")
    assert rejected[f"{prefix}5"].startswith("DataError")
    assert "db.down" not in [e["event"] for e in logs]
    assert len(writer.spool.rejected_path.read_text().splitlines()) == 2
