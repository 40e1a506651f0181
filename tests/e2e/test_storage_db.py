"""Schema migrations, CDR inserts and the customer/number directory against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from rating.core.cdr import CallRecord, Disposition, RatedCdr, RecordingFile, node_of, rate_record
from rating.core.charge import charge_sql, charged_amount
from rating.storage.database import (HALVES_FROM, DirectoryNumber, Migration, MigrationEdited, bundled_migrations,
                                     insert_cdrs, is_row_fault, migrate, sync_directory)
from rating.core.tariff import DEFAULT_RATES, NumberType, RatedPrice
from tests.e2e.conftest import LiveStack

pytestmark = pytest.mark.e2e


@pytest.fixture
async def conn(live_stack: LiveStack) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(live_stack.stack.database_url)
    try:
        await migrate(connection)
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize("eligible", [True, False])
@pytest.mark.parametrize("heavy", [True, False, None])
async def test_postgresql_charges_a_call_as_the_charge_rule_does(conn: asyncpg.Connection, eligible: bool,
                                                                 heavy: bool | None) -> None:
    """charge_sql, which stores and re-settles CDRs, gives what charged_amount gives (no decision: not heavy)."""
    price = RatedPrice(90, 20, 70, Decimal("0.0400"), Decimal("0.0817"), Decimal("0.1217"), eligible)
    sql = charge_sql(eligible="$1::bool", heavy="$2::bool", list_price="$3::numeric")
    charged = await conn.fetchval(f"SELECT ({sql})::numeric(12,4)", eligible, heavy, price.list_price_eur)
    assert charged == charged_amount(price, heavy is True)


async def test_migrations_apply_once_and_an_edited_one_is_refused(conn: asyncpg.Connection) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    version = f"9999_{table}"
    first = Migration(version, f"CREATE TABLE {table} (id int)")
    try:
        assert await migrate(conn, [first]) == [version]
        assert await migrate(conn, [first]) == []
        with pytest.raises(MigrationEdited, match=version):
            await migrate(conn, [Migration(version, f"CREATE TABLE {table} (id bigint)")])
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", version)


async def test_a_failing_migration_leaves_nothing_behind(conn: asyncpg.Connection) -> None:
    version = f"9999_broken_{uuid.uuid4().hex[:8]}"
    with pytest.raises(asyncpg.PostgresError):
        await migrate(conn, [Migration(version, "CREATE TABLE half_done (id int); SELECT no_such_function()")])
    assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = $1", version) == 0
    assert await conn.fetchval("SELECT to_regclass('half_done')") is None


async def test_directory_follows_the_configuration(conn: asyncpg.Connection) -> None:
    """Numbers that leave the configuration are ended, not deleted; customers stay for old invoices."""
    suffix = uuid.uuid4().hex[:6]
    cust = f"cust-{suffix}"
    n1, n2 = DirectoryNumber("+31201110001", cust, "local"), DirectoryNumber("+31201110002", cust, "national")
    try:
        await sync_directory(conn, [(cust, "First name")], [n1, n2], date(2026, 11, 1))
        await sync_directory(conn, [(cust, "New name")], [n1], date(2026, 11, 20))
        rows = await conn.fetch("SELECT e164, number_type, active_from, active_until FROM numbers "
                                "WHERE customer_id = $1 ORDER BY e164", cust)
        assert [tuple(r) for r in rows] == [
            ("+31201110001", "local", date(2026, 11, 1), None),
            ("+31201110002", "national", date(2026, 11, 1), date(2026, 11, 20)),
        ]
        assert await conn.fetchval("SELECT name FROM customers WHERE customer_id = $1", cust) == "New name"
    finally:
        await conn.execute("DELETE FROM numbers WHERE customer_id = $1", cust)
        await conn.execute("DELETE FROM customers WHERE customer_id = $1", cust)


def _cdr(call_id: str, **call_changes: object) -> RatedCdr:
    started = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    call = CallRecord(call_id, "+31201234567", "+31612345678", started, started + timedelta(seconds=3),
                      started + timedelta(seconds=63), Disposition.ANSWERED, 16)
    return rate_record(dataclasses.replace(call, **call_changes), "cust-1", NumberType.LOCAL, DEFAULT_RATES)


async def test_batches_stored_in_one_transaction_do_not_see_each_other(conn: asyncpg.Connection) -> None:
    """The staging table is emptied by the insert that reads it, not only at commit."""
    p = f"stest-{uuid.uuid4().hex[:12]}-"
    try:
        async with conn.transaction():
            assert await insert_cdrs(conn, [_cdr(f"{p}0"), _cdr(f"{p}1")]) == {f"{p}0", f"{p}1"}
            assert await insert_cdrs(conn, [_cdr(f"{p}1"), _cdr(f"{p}2")]) == {f"{p}2"}
        assert await insert_cdrs(conn, [_cdr(f"{p}2"), _cdr(f"{p}3")]) == {f"{p}3"}
        assert await conn.fetchval("SELECT count(*) FROM cdrs WHERE call_id LIKE $1", f"{p}%") == 4
    finally:
        await conn.execute("DELETE FROM cdrs WHERE call_id LIKE $1", f"{p}%")


async def test_a_value_asyncpg_cannot_encode_is_a_client_side_data_error(conn: asyncpg.Connection) -> None:
    """As for a bad query argument: the writer reads it as the row's fault, and nothing is stored."""
    p = f"stest-{uuid.uuid4().hex[:12]}-"
    with pytest.raises(asyncpg.exceptions._base.DataError, match="out of int32 range") as raised:
        await insert_cdrs(conn, [_cdr(f"{p}0"), _cdr(f"{p}1", hangup_cause=2**40)])
    assert is_row_fault(raised.value)
    assert await conn.fetchval("SELECT count(*) FROM cdrs WHERE call_id LIKE $1", f"{p}%") == 0
    assert await insert_cdrs(conn, [_cdr(f"{p}0")]) == {f"{p}0"}  # the connection is usable again
    await conn.execute("DELETE FROM cdrs WHERE call_id LIKE $1", f"{p}%")


async def test_a_backlog_batch_goes_in_as_two_halves_first_half_first(pool: asyncpg.Pool) -> None:
    """A spool replay's batch on the pool: every CDR once, a call id twice stored as it first came,
    and the first half's rows recorded no later than the second's (the order the writer keeps)."""
    p = f"stest-{uuid.uuid4().hex[:12]}-"
    n = 2 * HALVES_FROM
    batch = [_cdr(f"{p}{i}") for i in range(n)]
    twice = _cdr(f"{p}{n - 1}", disposition=Disposition.BUSY, answered_at=None)  # the last one again, changed
    try:
        assert await insert_cdrs(pool, [*batch, twice]) == {f"{p}{i}" for i in range(n)}
        rows = await pool.fetch("SELECT call_id, disposition, recorded_at FROM cdrs WHERE call_id LIKE $1", f"{p}%")
        by_n = sorted((int(r["call_id"].removeprefix(p)), r) for r in rows)
        assert [i for i, _ in by_n] == list(range(n))
        assert by_n[-1][1]["disposition"] == "answered"
        times = [r["recorded_at"] for _, r in by_n]
        assert max(times[:n // 2]) <= min(times[n // 2:])
        assert await insert_cdrs(pool, batch) == set()  # again: nothing new, nothing doubled
    finally:
        await pool.execute("DELETE FROM cdrs WHERE call_id LIKE $1", f"{p}%")


async def test_a_bad_row_in_either_half_stores_neither_and_blames_the_row(pool: asyncpg.Pool) -> None:
    """The writer then stores the rows one by one and sets the bad one aside; nothing half-done is left."""
    p = f"stest-{uuid.uuid4().hex[:12]}-"
    n = 2 * HALVES_FROM
    for bad in (3, n - 3):
        batch = [_cdr(f"{p}{i}", hangup_cause=2**40) if i == bad else _cdr(f"{p}{i}") for i in range(n)]
        with pytest.raises(asyncpg.exceptions._base.DataError) as raised:
            await insert_cdrs(pool, batch)
        assert is_row_fault(raised.value)
        assert await pool.fetchval("SELECT count(*) FROM cdrs WHERE call_id LIKE $1", f"{p}%") == 0
    assert len(await insert_cdrs(pool, [_cdr(f"{p}{i}") for i in range(n)])) == n  # the pool is usable again
    await pool.execute("DELETE FROM cdrs WHERE call_id LIKE $1", f"{p}%")


async def test_a_backlog_batch_on_a_pool_of_one_connection_goes_in_one_transaction(live_stack: LiveStack) -> None:
    """Two halves would wait for a second connection that never comes: the batch goes in whole instead."""
    p = f"stest-{uuid.uuid4().hex[:12]}-"
    one = await asyncpg.create_pool(live_stack.stack.database_url, min_size=1, max_size=1)
    try:
        n = 2 * HALVES_FROM
        stored = await asyncio.wait_for(insert_cdrs(one, [_cdr(f"{p}{i}") for i in range(n)]), timeout=30)
        assert len(stored) == n
    finally:
        await one.execute("DELETE FROM cdrs WHERE call_id LIKE $1", f"{p}%")
        await one.close()


async def test_a_live_cdr_replaces_an_import_from_asterisks_record_and_brings_its_recording(
        conn: asyncpg.Connection) -> None:
    """Issue 17: `reconcile --import` may have stored Asterisk's poorer record while fairline's own CDR
    waited in its spool; when that CDR is replayed it takes the row, with its recording row. Nothing else
    is ever overwritten: not a live row by an import, not a live row by a second live CDR."""
    p = f"stest-{uuid.uuid4().hex[:12]}-"
    recording = RecordingFile(f"/var/lib/fairline/recordings/{p}.wav", "ab" * 32,
                              datetime(2026, 11, 3, 10, 0, 4, tzinfo=UTC), datetime(2026, 11, 3, 10, 1, 3, tzinfo=UTC),
                              Decimal("59"))
    live = _cdr(f"{p}0", recording=recording, recording_mode="one_party", recording_evidence="one_party: NL")
    imported = dataclasses.replace(_cdr(f"{p}0", hangup_cause=None), source="asterisk")
    try:
        assert await insert_cdrs(conn, [imported]) == {f"{p}0"}
        assert await insert_cdrs(conn, [live]) == {f"{p}0"}
        row = await conn.fetchrow("SELECT source, hangup_cause, recorded FROM cdrs WHERE call_id = $1", f"{p}0")
        assert (row["source"], row["hangup_cause"], row["recorded"]) == ("live", 16, True)
        assert await conn.fetchval("SELECT file FROM recordings WHERE call_id = $1", f"{p}0") == recording.path

        assert await insert_cdrs(conn, [imported]) == set()  # an import never overwrites
        assert await insert_cdrs(conn, [dataclasses.replace(live, source="live", rating_error="other")]) == set()
        row = await conn.fetchrow("SELECT source, rating_error FROM cdrs WHERE call_id = $1", f"{p}0")
        assert (row["source"], row["rating_error"]) == ("live", None)
    finally:
        await conn.execute("DELETE FROM recordings WHERE call_id LIKE $1", f"{p}%")
        await conn.execute("DELETE FROM cdrs WHERE call_id LIKE $1", f"{p}%")


async def test_migration_0012_keeps_every_row_and_names_each_ones_node_as_node_of_does(
        scratch_database: str) -> None:
    """Rows stored before the node was part of a CDR's identity keep everything and get their node."""
    call_ids = ["1795622110.0", "fairline1-1795622110.1", "pbx-ams-2-1795622110.17", "hist-001"]
    conn = await asyncpg.connect(scratch_database)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        before = [m for m in bundled_migrations() if m.version < "0012"]
        await migrate(conn, before)
        # The rows as fairline stored them then (today's insert writes columns of later migrations too).
        for c in call_ids:
            await conn.execute("""INSERT INTO cdrs (call_id, did, started_at, ended_at, disposition, billing_month)
                                  VALUES ($1, '+31201234567', $2, $2, 'answered', '2026-11-01')""", c,
                               datetime(2026, 11, 20, 10, tzinfo=UTC))
        old = await conn.fetch("SELECT * FROM cdrs ORDER BY call_id")
        assert await migrate(conn, [m for m in bundled_migrations() if m.version < "0013"]) == ["0012_cdr_node"]
        new = await conn.fetch("SELECT * FROM cdrs ORDER BY call_id")
        assert [{k: v for k, v in r.items() if k != "node"} for r in new] == [dict(r) for r in old]
        assert {r["call_id"]: r["node"] for r in new} == {c: node_of(c) for c in call_ids}
    finally:
        await conn.close()
