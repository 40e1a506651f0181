"""cdrs partitioned by month (issue 20, decision 0033) against the real PostgreSQL: the migration keeps every
row, a call id stays unique across months, partitions are made ahead and detached, and the billing,
settlement and reconcile queries read only their months' partitions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from plumbing.clock import utc_now
from rating.core.cdr import CallRecord, Disposition, RatedCdr, RecordingFile, rate_record
from rating.commands.reconcile_cli import IN_WINDOW
from rating.core.partitions import add_months, billing_months_around, partition_name
from rating.core.tariff import DEFAULT_RATES, NumberType
from rating.storage import billing, invoice_text, queue_report
from rating.storage.database import bundled_migrations, insert_cdrs, is_row_fault, migrate
from rating.storage.partitions import RecordingsNotPurged, detach_partitions, ensure_partitions, partitions
from tests.e2e.conftest import LiveStack, poll

pytestmark = pytest.mark.e2e

NOVEMBER = date(2026, 11, 1)


@pytest.fixture
async def db(scratch_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A migrated database of its own, with the partitions of September 2026 to January 2027."""
    conn = await asyncpg.connect(scratch_database)
    try:
        await ensure_partitions(conn, [add_months(NOVEMBER, n) for n in range(-2, 3)])
        yield conn
    finally:
        await conn.close()


def _cdr(call_id: str, started: datetime, **changes: object) -> RatedCdr:
    call = CallRecord(call_id, "+31201234567", "+31612345678", started, started + timedelta(seconds=3),
                      started + timedelta(seconds=63), Disposition.ANSWERED, 16)
    return rate_record(dataclasses.replace(call, **changes), "cust-1", NumberType.LOCAL, DEFAULT_RATES)


def _recording(call_id: str, started: datetime) -> RecordingFile:
    return RecordingFile(f"/var/lib/fairline/recordings/{call_id}.wav", "ab" * 32, started,
                         started + timedelta(seconds=59), Decimal("59"))


async def _where(conn: asyncpg.Connection, call_id: str) -> list[tuple[str, date]]:
    rows = await conn.fetch("SELECT tableoid::regclass::text AS p, billing_month FROM cdrs WHERE call_id = $1",
                            call_id)
    return [(r["p"], r["billing_month"]) for r in rows]


# ------------------------------------------------------------------ the migration

_CHECKSUM = "SELECT count(*), md5(string_agg(c::text, '|' ORDER BY call_id)) FROM cdrs c"


async def test_migration_0020_keeps_every_row_recording_view_and_index(scratch_database: str) -> None:
    """A database of the previous schema, with calls of three months, recordings, a voicemail and an
    invoice: after 0020 every row reads as before (count and checksum of whole rows), each in its month's
    partition, and what referred to cdrs (foreign keys, the invoice_lines view, indexes by name) is there."""
    conn = await asyncpg.connect(scratch_database)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0020"])
        await conn.execute("INSERT INTO customers VALUES ('cust-1', 'Acme')")
        # As fairline stored them then (today's insert_cdrs needs cdr_calls, which 0020 makes).
        await conn.execute("""
            INSERT INTO cdrs (call_id, did, caller, started_at, answered_at, ended_at, disposition, customer_id,
                              number_type, billable_seconds, peak_seconds, setup_eur, usage_eur, list_price_eur,
                              charged_eur, billing_month, queue_name, queue_wait_seconds, queue_disposition,
                              queue_visits, recorded, recording_mode, tariff, rating_zone, handled)
            SELECT 'pbx-1-17956221' || g || '.' || g, '+31201234567', nullif('+3161234' || g, '+31612340'), t,
                   t + interval '3 s', t + interval '63 s', 'answered', 'cust-1', 'local', 60, 60, 0.04, 0.07, 0.11,
                   CASE WHEN g % 2 = 0 THEN 0.11 ELSE 0 END, date_trunc('month', t AT TIME ZONE 'Europe/Amsterdam'),
                   CASE WHEN g % 7 = 0 THEN 'support' END, CASE WHEN g % 7 = 0 THEN 1.5 END,
                   CASE WHEN g % 7 = 0 THEN 'answered' END,
                   CASE WHEN g % 7 = 0 THEN '[{"queue": "support"}]'::jsonb ELSE '[]' END,
                   g % 10 = 0, CASE WHEN g % 10 = 0 THEN 'one_party' END, 'x', 'Europe/Amsterdam', true
            FROM generate_series(0, 59) g,
                 LATERAL (SELECT timestamptz '2026-10-31 22:30Z' + (g % 3) * interval '16 days' + g * interval '1 min'
                          AS t) x""")
        await conn.execute("""
            INSERT INTO recordings (call_id, file, started_at, ended_at, duration_seconds, sha256, mode)
            SELECT call_id, '/r/' || call_id || '.wav', started_at, ended_at, 59, repeat('a', 64), 'one_party'
            FROM cdrs WHERE recorded""")
        before = tuple(await conn.fetchrow(_CHECKSUM))
        months_before = {partition_name(r["m"]): r["n"] for r in await conn.fetch(
            "SELECT billing_month AS m, count(*) AS n FROM cdrs GROUP BY 1")}
        invoice_before = [tuple(r) for r in await conn.fetch("SELECT * FROM invoice_lines ORDER BY reference")]
        indexes_before = {r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'cdrs'")}

        assert await migrate(conn) == ["0020_cdrs_by_month"]

        assert tuple(await conn.fetchrow(_CHECKSUM)) == before
        assert before[0] == 60
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM invoice_lines ORDER BY reference")] == invoice_before
        assert {r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'cdrs'")} == indexes_before
        by_partition = {r["p"]: r["n"] for r in await conn.fetch(
            "SELECT tableoid::regclass::text AS p, count(*) AS n FROM cdrs GROUP BY 1")}
        assert by_partition == months_before and len(months_before) == 3
        assert await conn.fetchval("SELECT count(*) FROM recordings") == 6
        assert await conn.fetchval("SELECT count(*) FROM cdr_calls") == 60
        references = {r["conrelid"]: r["target"] for r in await conn.fetch(
            "SELECT conrelid::regclass::text, confrelid::regclass::text AS target FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text IN ('recordings', 'voicemails')")}
        assert references == {"recordings": "cdr_calls", "voicemails": "cdr_calls"}
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("""INSERT INTO recordings (call_id, file, started_at, ended_at, duration_seconds,
                                  sha256, mode) VALUES ('nobody', '/x.wav', now(), now(), 1, repeat('a', 64),
                                  'one_party')""")
    finally:
        await conn.close()


# ------------------------------------------------------------------ one call id, one row

async def test_a_call_id_is_stored_once_whatever_month_a_replay_says(db: asyncpg.Connection) -> None:
    """The primary key is (call_id, billing_month); cdr_calls keeps a call id to one month: a replayed CDR
    whose month differs (its number's clock changed) stores nothing, and a row written by hand is refused."""
    first = dataclasses.replace(_cdr("pbx-1-1795622110.1", datetime(2026, 11, 20, tzinfo=UTC)), billing_month=NOVEMBER)
    assert await insert_cdrs(db, [first]) == {first.call.call_id}
    moved = dataclasses.replace(first, billing_month=date(2026, 12, 1))
    assert await insert_cdrs(db, [moved]) == set()
    assert await _where(db, first.call.call_id) == [("cdrs_2026_11", date(2026, 11, 1))]
    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        await db.execute("""INSERT INTO cdrs (call_id, did, started_at, ended_at, disposition, billing_month)
                            VALUES ('pbx-1-1795622110.1', '+31', now(), now(), 'answered', '2026-12-01')""")
    assert is_row_fault(refused.value)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="never updated"):
        await db.execute("UPDATE cdrs SET billing_month = '2026-12-01' WHERE call_id = 'pbx-1-1795622110.1'")


async def test_a_live_cdr_replaces_asterisks_record_of_another_month_in_that_months_partition(
        db: asyncpg.Connection) -> None:
    """Asterisk's record put the call in November, fairline's own CDR (late in the spool) says December: the
    live CDR still replaces it, with its recording, in the stored row's month, and is there once."""
    call_id = "pbx-1-1795622111.1"
    started = datetime(2026, 11, 30, 23, 0, 0, tzinfo=UTC)  # December in Amsterdam
    imported = dataclasses.replace(_cdr(call_id, started, hangup_cause=None), source="asterisk",
                                   billing_month=NOVEMBER)  # as a number without a clock (UTC) would have it
    live = _cdr(call_id, started, recording=_recording(call_id, started), recording_mode="one_party")
    assert live.billing_month != imported.billing_month
    assert await insert_cdrs(db, [imported]) == {call_id}
    assert await insert_cdrs(db, [live]) == {call_id}
    assert await _where(db, call_id) == [("cdrs_2026_11", date(2026, 11, 1))]
    row = await db.fetchrow("SELECT source, hangup_cause, recorded FROM cdrs WHERE call_id = $1", call_id)
    assert tuple(row) == ("live", 16, True)
    assert await db.fetchval("SELECT count(*) FROM recordings WHERE call_id = $1", call_id) == 1


# ------------------------------------------------------------------ partitions ahead, default, detach

async def test_a_month_without_partition_goes_to_the_default_and_moves_out_when_made(db: asyncpg.Connection) -> None:
    """No CDR fails for want of a partition; `ensure` later moves the month's rows, with nothing lost or doubled
    and the recording still pointing at its call."""
    started = datetime(2027, 6, 3, 9, tzinfo=UTC)
    cdr = _cdr("pbx-1-1795622112.1", started, recording=_recording("late", started), recording_mode="one_party")
    assert await insert_cdrs(db, [cdr]) == {cdr.call.call_id}
    assert await _where(db, cdr.call.call_id) == [("cdrs_default", date(2027, 6, 1))]

    assert await ensure_partitions(db, [date(2027, 5, 1), date(2027, 6, 1)]) == ["cdrs_2027_05", "cdrs_2027_06"]
    assert await ensure_partitions(db, [date(2027, 6, 1)]) == []
    assert await _where(db, cdr.call.call_id) == [("cdrs_2027_06", date(2027, 6, 1))]
    assert await db.fetchval("SELECT count(*) FROM cdrs_default") == 0
    assert await insert_cdrs(db, [cdr]) == set()  # still known: a replay doubles nothing


async def test_detach_keeps_the_table_refuses_unpurged_recordings_and_a_replay_stays_out(
        db: asyncpg.Connection) -> None:
    """Detaching a month takes it out of cdrs, never drops it; while one of its recordings is not purged it
    is refused, detaching nothing; a replayed CDR of a detached month is not stored again."""
    old = _cdr("pbx-1-1795622113.1", datetime(2026, 9, 10, tzinfo=UTC),
               recording=_recording("sept", datetime(2026, 9, 10, tzinfo=UTC)), recording_mode="one_party")
    kept = _cdr("pbx-1-1795622113.2", datetime(2026, 11, 10, tzinfo=UTC))
    await insert_cdrs(db, [old, kept])
    with pytest.raises(RecordingsNotPurged, match="recordings purge"):
        await detach_partitions(db, date(2026, 11, 1))
    assert {p.name for p in await partitions(db) if not p.attached} == set()

    await db.execute("UPDATE recordings SET purged_at = now() WHERE call_id = $1", old.call.call_id)
    detached = await detach_partitions(db, date(2026, 11, 1))
    assert [p.name for p in detached] == ["cdrs_2026_09", "cdrs_2026_10"]
    listed = {p.name: p.attached for p in await partitions(db)}
    assert listed["cdrs_2026_09"] is False and listed["cdrs_2026_11"] is True and listed["cdrs_default"] is True
    assert await db.fetchval("SELECT count(*) FROM cdrs_2026_09") == 1  # an archive, not gone
    assert await db.fetchval("SELECT count(*) FROM cdrs WHERE call_id = $1", old.call.call_id) == 0
    assert await insert_cdrs(db, [old]) == set()
    assert await db.fetchval("SELECT count(*) FROM cdrs_default") == 0
    assert await detach_partitions(db, date(2026, 11, 1)) == []


def test_fairline_run_makes_this_month_and_the_next_three(live_stack: LiveStack) -> None:
    """At start, fairline makes the partitions ahead (the stack's fairline runs on its database)."""
    wanted = [partition_name(add_months(utc_now().date().replace(day=1), n)) for n in range(4)]

    def made() -> bool:
        names = live_stack.stack.psql("fairline", "SELECT string_agg(relname, ' ') FROM pg_class WHERE relname "
                                      "LIKE 'cdrs_2%' AND relispartition")
        return set(wanted) <= set(names.split())

    assert poll(made, timeout=30), wanted


# ------------------------------------------------------------------ partition pruning

def _scanned(plan: Any) -> set[str]:
    """The relations a JSON plan reads."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _scanned(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _scanned(item)
    return found


async def _cdr_partitions_read(conn: asyncpg.Connection, sql: str, *args: object) -> set[str]:
    plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    return {name for name in _scanned(plan) if name.startswith("cdrs_")}  # not cdrs: an UPDATE's target


async def test_billing_settlement_and_reconcile_read_only_their_months_partitions(db: asyncpg.Connection) -> None:
    """The plan shape, not the time: each query names only the partitions of its months (never the default)."""
    await insert_cdrs(db, [_cdr(f"pbx-1-17956221{m}0.{m}", datetime(2026, m, 10, tzinfo=UTC)) for m in (9, 10, 11, 12)])
    await db.execute("ANALYZE cdrs")
    month = NOVEMBER
    november = {"cdrs_2026_11"}
    assert await _cdr_partitions_read(db, billing._USAGE, month, month) == november
    # The six months of a fair-use report: those with a partition, and the default for June to August.
    assert await _cdr_partitions_read(db, billing._USAGE, date(2026, 6, 1), month) == {
        "cdrs_2026_09", "cdrs_2026_10", "cdrs_2026_11", "cdrs_default"}
    assert await _cdr_partitions_read(db, billing._RESETTLE, "cust-1", month) == november
    assert await _cdr_partitions_read(db, billing._MONTH_TOTALS, "cust-1", month) == november
    assert await _cdr_partitions_read(db, billing._INVOICE_LINES, month) == november
    assert await _cdr_partitions_read(db, invoice_text._INVOICES, month, "2026-11") == november
    assert await _cdr_partitions_read(db, queue_report._QUEUES, month, 60) == november
    assert await _cdr_partitions_read(db, queue_report._CUSTOMERS, month) == november
    since, until = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    lowest, highest = billing_months_around(since, until)
    window = await _cdr_partitions_read(db, IN_WINDOW, since, until, None, lowest, highest)
    assert window == november
