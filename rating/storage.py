"""PostgreSQL storage: schema migrations, CDR writes and the customer/number directory.

Billing queries (reports, invoices, decisions) are in billing.py; DDL is in migrations/.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg
import structlog

from rating.cdr import RatedCdr
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
    files = resources.files("rating") / "migrations"
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


# The charge follows fair use: eligible calls are free unless the customer is marked
# a heavy user for that month (view heavy_users); all other calls pay list price.
# billing.decide_heavy_user applies the same rule when a decision changes.
CHARGE_RULE = """CASE WHEN {eligible} AND NOT coalesce(
    (SELECT h.heavy FROM heavy_users h WHERE h.customer_id = {customer} AND h.month = {month}), false)
  THEN 0 ELSE {list_price} END"""

# One statement for the CDRs and their recordings: a recording row is written exactly when
# its CDR is new, so the two land together (or neither does) and a replayed batch doubles nothing.
_INSERT_CDRS = f"""
WITH ins AS (
    INSERT INTO cdrs (call_id, did, caller, started_at, answered_at, ended_at, disposition, hangup_cause,
                      customer_id, number_type, billable_seconds, peak_seconds, offpeak_seconds,
                      setup_eur, usage_eur, list_price_eur, fair_use_eligible, billing_month, rating_error, source,
                      answered_target, target_kind, queue_name, queue_wait_seconds, queue_overflows,
                      queue_disposition, queue_visits, recorded, recording_mode, recording_evidence, charged_eur)
    SELECT r.*, {CHARGE_RULE.format(eligible="r.fair_use_eligible", customer="r.customer_id",
                                month="r.billing_month", list_price="r.list_price_eur")}
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
                $7::text[], $8::int[], $9::text[], $10::text[], $11::int[], $12::int[], $13::int[],
                $14::numeric[], $15::numeric[], $16::numeric[], $17::bool[], $18::date[], $19::text[], $20::text[],
                $21::text[], $22::text[], $23::text[], $24::numeric[], $25::smallint[], $26::text[], $27::jsonb[],
                $28::bool[], $29::text[], $30::text[])
         AS r(call_id, did, caller, started_at, answered_at, ended_at, disposition, hangup_cause,
              customer_id, number_type, billable_seconds, peak_seconds, offpeak_seconds,
              setup_eur, usage_eur, list_price_eur, fair_use_eligible, billing_month, rating_error, source,
              answered_target, target_kind, queue_name, queue_wait_seconds, queue_overflows,
              queue_disposition, queue_visits, recorded, recording_mode, recording_evidence)
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id, recording_mode, recording_evidence
), rec AS (
    INSERT INTO recordings (call_id, file, started_at, ended_at, duration_seconds, sha256, mode, evidence)
    SELECT f.call_id, f.file, f.started_at, f.ended_at, f.duration_seconds, f.sha256,
           ins.recording_mode, ins.recording_evidence
    FROM unnest($31::text[], $32::text[], $33::timestamptz[], $34::timestamptz[], $35::numeric[], $36::text[])
         AS f(call_id, file, started_at, ended_at, duration_seconds, sha256)
    JOIN ins USING (call_id)
    ON CONFLICT (call_id) DO NOTHING
)
SELECT call_id FROM ins
"""
_CDR_COLUMNS = 30
_RECORDING_COLUMNS = 6


async def insert_cdrs(conn: asyncpg.Connection | asyncpg.Pool, cdrs: Sequence[RatedCdr]) -> set[str]:
    """Store a batch of rated CDRs, and the recordings of the recorded ones, in one statement;
    return the call ids that were new.

    Idempotent: a call id already stored is left as it is (its recording row too), so a
    replayed batch doubles nothing.
    """
    if not cdrs:
        return set()
    columns: list[list[Any]] = [[] for _ in range(_CDR_COLUMNS)]
    recordings: list[list[Any]] = [[] for _ in range(_RECORDING_COLUMNS)]
    for r in cdrs:
        c, p = r.call, r.price
        row = (c.call_id, c.did, c.caller, c.started_at, c.answered_at, c.ended_at, c.disposition.value,
               c.hangup_cause, r.customer_id, r.number_type.value if r.number_type else None,
               p.billable_seconds, p.peak_seconds, p.offpeak_seconds, p.setup_eur, p.usage_eur, p.list_price_eur,
               p.fair_use_eligible, r.billing_month, r.rating_error, r.source, c.answered_target, c.target_kind,
               c.queue, c.queue_wait_seconds, c.queue_overflows,
               c.queue_disposition.value if c.queue_disposition else None,
               json.dumps([v.to_json() for v in c.queue_visits]),
               c.recorded, c.recording_mode, c.recording_evidence)
        for column, value in zip(columns, row, strict=True):
            column.append(value)
        if (f := c.recording) is not None:
            fields: tuple[Any, ...] = (c.call_id, f.path, f.started_at, f.ended_at, f.duration_seconds, f.sha256)
            for column, field in zip(recordings, fields, strict=True):
                column.append(field)
    rows = await conn.fetch(_INSERT_CDRS, *columns, *recordings)
    return {row["call_id"] for row in rows}


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


def redact(url: str) -> str:
    """The URL safe to print or log: its password, in the user part or as ?password=, replaced by ***."""
    parts = urlsplit(url)
    if not parts.netloc and "@" in url:
        # Not scheme://user:password@host/...: no telling which part is the password, so show none of it.
        return "(a URL not of the form postgresql://user:password@host/database)"
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = parts.query
    if "password" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*/")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide; rebuilding could change the spelling (postgresql:///db)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")
