"""PostgreSQL storage: schema migrations and CDR writes. All of fairline's SQL lives here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

from rating.cdr import CallRecord
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


_INSERT_CDR = """
INSERT INTO cdrs (call_id, did, caller, started_at, answered_at, ended_at, disposition, hangup_cause)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (call_id) DO NOTHING
"""


async def insert_cdr(conn: asyncpg.Connection | asyncpg.Pool, record: CallRecord) -> bool:
    """Store one CDR; False when a CDR with this call id was already there (nothing doubles)."""
    status = await conn.execute(
        _INSERT_CDR,
        record.call_id,
        record.did,
        record.caller,
        record.started_at,
        record.answered_at,
        record.ended_at,
        record.disposition.value,
        record.hangup_cause,
    )
    return bool(status == "INSERT 0 1")
