"""Schema migrations and the customer/number directory against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest

from rating.storage import DirectoryNumber, Migration, MigrationEdited, migrate, sync_directory
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
