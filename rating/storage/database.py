"""PostgreSQL storage: schema migrations, CDR writes and the customer/number directory.

Billing queries (reports, invoices, decisions) are in billing.py; DDL is in migrations/.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import asyncpg
import structlog

from rating.core.cdr import RatedCdr
from rating.core.charge import charge_sql
from rating.core.handled import handled
from rating.errors import RatingError

log = structlog.get_logger(__name__)

# Any fixed number: serialises concurrent start-ups applying migrations.
_MIGRATION_LOCK = 0x6661_6972  # "fair"


class StorageError(RatingError):
    """The database refused or could not be reached."""


class MigrationEdited(StorageError):
    """A migration that was already applied has changed on disk; migrations are never edited."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # the file name without .sql, e.g. "0001_cdrs"
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations() -> list[Migration]:
    """The migrations shipped with fairline, in the order they apply."""
    files = resources.files("rating.storage") / "migrations"
    return sorted(
        (Migration(f.name.removesuffix(".sql"), f.read_text()) for f in files.iterdir() if f.name.endswith(".sql")),
        key=lambda m: m.version,
    )


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their versions.

    Refuses to start when an applied migration's file has changed: a landed migration
    is history, and a schema that differs from the files would mislead everyone.
    """
    migrations = bundled_migrations() if migrations is None else migrations
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    text PRIMARY KEY,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        applied = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        done: list[str] = []
        for m in migrations:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise MigrationEdited(
                        f"migration {m.version} was applied but its file has changed since; "
                        "add a new migration instead of editing a landed one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", m.version, m.checksum
                )
            log.info("db.migration_applied", version=m.version)
            done.append(m.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


# A batch reaches PostgreSQL by binary COPY into a temporary table of the connection, then one
# statement moves it into cdrs (docs/performance.md): cheaper on both sides than 30 arrays.
# The staging table has the plain types of the columns and no constraints, so every check,
# conversion (numeric -> numeric(12,4)...) and conflict happens in the INSERT into cdrs, as when
# the rows came as arrays. Its rows are deleted by the statement that reads them, so a second
# batch in the same transaction never sees the first.
_STAGING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("call_id", "text"), ("did", "text"), ("caller", "text"), ("started_at", "timestamptz"),
    ("answered_at", "timestamptz"), ("ended_at", "timestamptz"), ("disposition", "text"), ("hangup_cause", "int"),
    ("customer_id", "text"), ("number_type", "text"), ("billable_seconds", "int"), ("peak_seconds", "int"),
    ("offpeak_seconds", "int"), ("setup_eur", "numeric"), ("usage_eur", "numeric"), ("list_price_eur", "numeric"),
    ("fair_use_eligible", "bool"), ("billing_month", "date"), ("rating_error", "text"), ("source", "text"),
    ("answered_target", "text"), ("target_kind", "text"), ("queue_name", "text"), ("queue_wait_seconds", "numeric"),
    ("queue_overflows", "smallint"), ("queue_disposition", "text"), ("queue_visits", "jsonb"), ("recorded", "bool"),
    ("recording_mode", "text"), ("recording_evidence", "text"), ("tariff", "text"), ("rating_zone", "text"),
    ("end_estimated", "bool"), ("answer_confirmed", "bool"), ("unconfirmed_answers", "smallint"), ("handled", "bool"),
    ("voicemail", "bool"),
)
_STAGING = "fairline_cdr_batch"
_STAGING_NAMES = [name for name, _ in _STAGING_COLUMNS]
_CREATE_STAGING = (f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
                   + ", ".join(f"{name} {kind}" for name, kind in _STAGING_COLUMNS) + ") ON COMMIT DELETE ROWS")

# The charge rule (rating/core/charge.py) with the heavy-user flag from a join: looked up once per
# batch, not once per row (the view sorts every decision; per row, that cost 150 us with 2,000
# decisions). The view heavy_users holds one row per customer and month, so the join never repeats
# a CDR; no row: not heavy.
_CHARGE_BY_JOIN = charge_sql(eligible="r.fair_use_eligible", heavy="h.heavy", list_price="r.list_price_eur")

# One statement for the CDRs and their recordings: a recording row is written exactly when
# its CDR is new, so the two land together (or neither does) and a replayed batch doubles nothing.
# A call already stored is left as it is, but for one case: fairline's own (live) CDR replaces
# the poorer one `fairline reconcile --import` built from Asterisk's record (source 'asterisk',
# no cause, no target, no recording), which it may have stored while the live CDR was still in
# fairline's spool; the recording row then lands with it (decision 0023). Nothing else ever
# overwrites a row, and an import never does.
# cdrs is partitioned by billing_month (decision 0033): its primary key is (call_id, billing_month)
# and cdr_calls holds each call id once, with its month. A call id cdr_calls knows is not inserted
# again, even when its partition was detached for archive; the live CDR that replaces Asterisk's
# takes the stored row's month (the two can differ only across a month's first instant), so the
# conflict finds it. Two writers storing one new call id in different months at once: the second
# fails on cdr_calls' primary key, a row fault, and its row-by-row retry then finds it known.
# Both look-ups are scalar subqueries, one primary-key probe per row whatever the plan: as a join,
# a cached generic plan read the whole of cdr_calls for every batch once it had been planned
# while the table was small (3 times slower at 300,000 rows, and growing).
_KEY = ("call_id", "billing_month")
_REPLACED = [c for c in [*_STAGING_NAMES, "charged_eur"] if c not in _KEY]
_MONTH = "coalesce(r.known, r.billing_month)"
_INSERT_CDRS = f"""
WITH staged AS (
    DELETE FROM {_STAGING} RETURNING *
), r AS MATERIALIZED (
    SELECT s.*, k.known,
           (SELECT x.source FROM cdrs x WHERE x.call_id = s.call_id AND x.billing_month = k.known) AS stored_source
    FROM staged s
    CROSS JOIN LATERAL (SELECT (SELECT c.billing_month FROM cdr_calls c WHERE c.call_id = s.call_id) AS known
                        OFFSET 0) k
), ins AS (
    INSERT INTO cdrs ({", ".join(_STAGING_NAMES)}, charged_eur)
    SELECT {", ".join(_MONTH if c == "billing_month" else "r." + c for c in _STAGING_NAMES)}, {_CHARGE_BY_JOIN}
    FROM r LEFT JOIN heavy_users h ON h.customer_id = r.customer_id AND h.month = {_MONTH}
    WHERE r.known IS NULL OR (r.source = 'live' AND r.stored_source = 'asterisk')
    ON CONFLICT (call_id, billing_month) DO UPDATE
        SET ({", ".join(_REPLACED)}, recorded_at) = ROW({", ".join("EXCLUDED." + c for c in _REPLACED)}, now())
        WHERE cdrs.source = 'asterisk' AND EXCLUDED.source = 'live'
    RETURNING call_id, recording_mode, recording_evidence
), rec AS (
    INSERT INTO recordings (call_id, file, started_at, ended_at, duration_seconds, sha256, mode, evidence)
    SELECT f.call_id, f.file, f.started_at, f.ended_at, f.duration_seconds, f.sha256,
           ins.recording_mode, ins.recording_evidence
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::numeric[], $6::text[])
         AS f(call_id, file, started_at, ended_at, duration_seconds, sha256)
    JOIN ins USING (call_id)
    ON CONFLICT (call_id) DO NOTHING
), vm AS (
    INSERT INTO voicemails (call_id, file, started_at, ended_at, duration_seconds, sha256)
    SELECT f.call_id, f.file, f.started_at, f.ended_at, f.duration_seconds, f.sha256
    FROM unnest($7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::numeric[], $12::text[])
         AS f(call_id, file, started_at, ended_at, duration_seconds, sha256)
    JOIN ins USING (call_id)
    ON CONFLICT (call_id) DO NOTHING
)
SELECT call_id FROM ins
"""
_RECORDING_COLUMNS = 12  # the recordings' six columns, then the voicemails' six
_NO_QUEUE = (None, None, 0, None, "[]")  # queue_name ... queue_visits of a call that never queued


# Errors that say "this row is wrong", not "the database cannot take writes now":
# bad values (SQLSTATE class 22), broken constraints (class 23), and asyncpg's own
# refusal to encode a value (its client-side DataError). Such a row is set aside and
# the rest of its batch stored. Every other failure (connection refused or lost,
# shutdown, timeout, too many connections, a missing table...) keeps the CDRs for
# later: rejecting good rows for a fault outside them would need a person to undo.
_ROW_FAULTS: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions._base.DataError,
)


def is_row_fault(exc: BaseException) -> bool:
    """Whether a failed insert blames the rows themselves rather than the database being unavailable."""
    return isinstance(exc, _ROW_FAULTS)


async def probe_cdr_store(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """Raise what storing CDRs would raise now for a reason outside any row; return when it would work.

    Runs the insert itself with no rows, in a transaction: it finds the database unreachable,
    the table missing, the transaction read-only or the role without rights, in one round trip
    or three, where a real insert would first encode thousands of rows. Before a spool replay,
    and to tell a row the database refuses for no fault of its values from a database that
    takes no rows at all.
    """
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as pooled:
            await _probe(pooled)
    else:
        await _probe(conn)


async def _probe(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(_CREATE_STAGING)
        await conn.fetch(_INSERT_CDRS, *([[]] * _RECORDING_COLUMNS))


# A backlog batch (a spool replay, `fairline cdr import`, a burst) this big or bigger goes in as two
# halves on two connections of the pool at once: while PostgreSQL moves one half into cdrs, Python
# encodes the other, and PostgreSQL's work is spread over two backends (docs/performance.md).
# Live traffic makes batches of about 20, which go in one statement as before.
HALVES_FROM = 1000


async def insert_cdrs(conn: asyncpg.Connection | asyncpg.Pool, cdrs: Sequence[RatedCdr]) -> set[str]:
    """Store a batch of rated CDRs, and the recordings of the recorded ones; return the call ids that were new.

    Idempotent: a call id already stored is left as it is (its recording row too), so a
    replayed batch doubles nothing; a call id twice in the batch is stored as it first comes.
    On one connection, or for a small batch, in one transaction; a big batch on a pool goes in
    two halves at once, the first committed first, so a failure may leave the first half stored
    and the second not: storing the batch again completes it.
    """
    firsts: dict[str, RatedCdr] = {}
    for r in cdrs:
        firsts.setdefault(r.call.call_id, r)
    unique = list(firsts.values())
    if not unique:
        return set()
    if not isinstance(conn, asyncpg.Pool):
        return await _in_one_transaction(conn, unique)
    if len(unique) < HALVES_FROM or conn.get_max_size() < 2:  # two halves need two connections at once
        async with conn.acquire() as pooled:
            return await _in_one_transaction(pooled, unique)
    half = len(unique) // 2
    async with conn.acquire() as first, conn.acquire() as second:
        return await _in_two_transactions(first, unique[:half], second, unique[half:])


async def _in_one_transaction(conn: asyncpg.Connection, cdrs: Sequence[RatedCdr]) -> set[str]:
    async with conn.transaction():
        return await _copy_and_insert(conn, cdrs)


async def _in_two_transactions(a: asyncpg.Connection, first: Sequence[RatedCdr],
                               b: asyncpg.Connection, second: Sequence[RatedCdr]) -> set[str]:
    """Both halves staged at once, then committed in order; any failure before the commits rolls both back."""
    # The first half's transaction starts first, so its rows' recorded_at are no later than the second's.
    ta, tb = a.transaction(), b.transaction()
    await ta.start()
    try:
        await tb.start()
    except BaseException:
        await ta.rollback()
        raise
    results = await asyncio.gather(_copy_and_insert(a, first), _copy_and_insert(b, second), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for transaction in (tb, ta):
            try:
                await transaction.rollback()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                pass  # the connection is broken: the pool closes it, and the transaction dies with it
        # A row's fault first: the writer then stores the rows one by one and sets the bad one aside.
        raise next((e for e in failed if is_row_fault(e)), failed[0])
    await ta.commit()
    await tb.commit()
    new_a, new_b = results
    assert isinstance(new_a, set) and isinstance(new_b, set)
    return new_a | new_b


def _copy_rows(cdrs: Sequence[RatedCdr]) -> tuple[list[tuple[Any, ...]], list[list[Any]]]:
    """The staging table's rows, and the recordings' columns, of a batch."""
    rows: list[tuple[Any, ...]] = []
    recordings: list[list[Any]] = [[] for _ in range(_RECORDING_COLUMNS)]
    for r in cdrs:
        c, p = r.call, r.price
        visits = c.queue_visits
        queue = _NO_QUEUE if not visits else (
            c.queue, c.queue_wait_seconds, c.queue_overflows, visits[-1].outcome.value,
            json.dumps([v.to_json() for v in visits]))
        rows.append((c.call_id, c.did, c.caller, c.started_at, c.answered_at, c.ended_at, c.disposition.value,
                     c.hangup_cause, r.customer_id, r.number_type.value if r.number_type else None,
                     p.billable_seconds, p.peak_seconds, p.offpeak_seconds, p.setup_eur, p.usage_eur,
                     p.list_price_eur, p.fair_use_eligible, r.billing_month, r.rating_error, r.source,
                     c.answered_target, c.target_kind, *queue, c.recording is not None, c.recording_mode,
                     c.recording_evidence, p.tariff, r.rating_zone, c.end_estimated, c.answer_confirmed,
                     c.unconfirmed_answers, handled(c, r.source), c.voicemail is not None))
        if (f := c.recording) is not None:
            fields: tuple[Any, ...] = (c.call_id, f.path, f.started_at, f.ended_at, f.duration_seconds, f.sha256)
            for column, field in zip(recordings[:6], fields, strict=True):
                column.append(field)
        if (m := c.voicemail) is not None:
            message: tuple[Any, ...] = (c.call_id, m.path, m.started_at, m.ended_at, m.duration_seconds, m.sha256)
            for column, field in zip(recordings[6:], message, strict=True):
                column.append(field)
    return rows, recordings


async def _copy_and_insert(conn: asyncpg.Connection, cdrs: Sequence[RatedCdr]) -> set[str]:
    """Within the connection's transaction: the batch into the staging table, then into cdrs and recordings."""
    rows, recordings = _copy_rows(cdrs)
    await conn.execute(_CREATE_STAGING)
    try:
        await conn.copy_records_to_table(_STAGING, records=rows, columns=_STAGING_NAMES)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, asyncpg.InterfaceError):
            raise
        # A value asyncpg cannot encode (an int too big for its column...): the row's fault, as
        # asyncpg says of a bad query argument, so the writer sets the row aside.
        raise asyncpg.exceptions._base.DataError(f"invalid input for a CDR column: {exc}") from exc
    stored = await conn.fetch(_INSERT_CDRS, *recordings)
    return {row["call_id"] for row in stored}


@dataclass(frozen=True, slots=True)
class DirectoryNumber:
    """A number as billing knows it: who owns it and its type."""

    e164: str
    customer_id: str
    number_type: str


async def sync_directory(conn: asyncpg.Connection, customers: Sequence[tuple[str, str]],
                         numbers: Sequence[DirectoryNumber], today: date) -> None:
    """Make the customers and numbers tables match the configuration, in one transaction.

    Customers are never deleted (old CDRs and invoices point at them). A number that
    left the configuration gets active_until = today; one that comes back is active again.
    """
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO customers (customer_id, name) VALUES ($1, $2)
               ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name""",
            customers,
        )
        await conn.executemany(
            """INSERT INTO numbers (e164, customer_id, number_type, active_from) VALUES ($1, $2, $3, $4)
               ON CONFLICT (e164) DO UPDATE SET customer_id = EXCLUDED.customer_id,
                   number_type = EXCLUDED.number_type, active_until = NULL""",
            [(n.e164, n.customer_id, n.number_type, today) for n in numbers],
        )
        await conn.execute(
            """UPDATE numbers SET active_until = GREATEST($2::date, active_from)
               WHERE active_until IS NULL AND NOT (e164 = ANY($1::text[]))""",
            [n.e164 for n in numbers], today,
        )
