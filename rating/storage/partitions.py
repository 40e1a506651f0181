"""The partitions of cdrs: make months ahead, list them, detach old ones for archive (decision 0033).

Names, bounds and which months are pure (rating/core/partitions.py); this module runs the DDL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import date

import asyncpg
import structlog

from rating.core.partitions import (DEFAULT_PARTITION, MONTHS_AHEAD, Partition, add_months, bounds,
                                    month_of_name, months_to_ensure, partition_name, to_detach)
from rating.storage.database import StorageError

log = structlog.get_logger(__name__)

# Serialises partition DDL between fairline nodes and commands starting together ("cdrp").
_PARTITION_LOCK = 0x6364_7270
# DDL on cdrs waits for the queries reading it (a long report) and holds back the CDR writes queued
# behind it meanwhile: give up after this long, say so, and let the next run try again.
LOCK_TIMEOUT = "5s"


class RecordingsNotPurged(StorageError):
    """A month to detach still has recording or voicemail files that `fairline recordings purge` keeps track of."""


_ATTACHED = """
SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound, c.reltuples::bigint AS rows,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'cdrs'::regclass
"""
# Detached months: tables of cdrs' schema named as partitions that no longer are one (archives).
_DETACHED = """
SELECT c.relname AS name, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c
WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ '^cdrs_[0-9]{4}_[0-9]{2}$'
  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'cdrs'::regclass)
"""


async def partitions(conn: asyncpg.Connection) -> list[Partition]:
    """Every partition of cdrs, months by their first day then the default, and the detached months."""
    found: list[Partition] = []
    for r in await conn.fetch(_ATTACHED):
        rng = bounds(r["bound"])
        found.append(Partition(r["name"], rng[0] if rng else None, rng[1] if rng else None, True,
                               max(r["rows"], 0), r["bytes"]))
    for r in await conn.fetch(_DETACHED):
        if (month := month_of_name(r["name"])) is not None:
            found.append(Partition(r["name"], month, add_months(month, 1), False, max(r["rows"], 0), r["bytes"]))
    return sorted(found, key=lambda p: (p.first is None, p.first or date.min, not p.attached))


async def ensure_partitions(conn: asyncpg.Connection, months: Sequence[date]) -> list[str]:
    """Make the partitions of those months that have none; return the names made.

    A month whose CDRs went to the default partition meanwhile gets them moved into its own,
    in the transaction that makes it: no row is lost or doubled.
    """
    made: list[str] = []
    for month in sorted(set(months)):
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
            if any(p.first == month for p in await partitions(conn)):
                continue
            await _make_month(conn, month)
        log.info("cdr.partition_created", partition=partition_name(month), month=month.isoformat())
        made.append(partition_name(month))
    return made


async def _make_month(conn: asyncpg.Connection, month: date) -> None:
    name, end = partition_name(month), add_months(month, 1)
    waiting = await conn.fetchval(
        f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE billing_month >= $1 AND billing_month < $2", month, end)
    if not waiting:
        await conn.execute(f"CREATE TABLE {name} PARTITION OF cdrs FOR VALUES FROM ('{month}') TO ('{end}')")
        return
    # PostgreSQL refuses a partition for rows the default holds. The default leaves cdrs for a
    # moment, the rows go straight from it into the new month's table, and both join again: cdrs'
    # triggers see no insert or delete, so cdr_calls, and the recordings referring to it, stay as
    # they are.
    await conn.execute(f"ALTER TABLE cdrs DETACH PARTITION {DEFAULT_PARTITION}")
    await conn.execute(f"CREATE TABLE {name} (LIKE cdrs INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                       "INCLUDING GENERATED INCLUDING STORAGE)")
    columns = await _stored_columns(conn)
    moved = await conn.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE billing_month >= $1 AND billing_month < $2 "
        f"RETURNING *) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved", month, end)
    await conn.execute(f"ALTER TABLE cdrs ATTACH PARTITION {name} FOR VALUES FROM ('{month}') TO ('{end}')")
    await conn.execute(f"ALTER TABLE cdrs ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
    log.warning("cdr.partition_filled_from_default", partition=name, rows=int(moved.split()[-1]))


async def _stored_columns(conn: asyncpg.Connection) -> str:
    """cdrs' columns but the generated ones, in order, quoted."""
    names = await conn.fetch(
        "SELECT quote_ident(attname) AS name FROM pg_attribute WHERE attrelid = 'cdrs'::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum")
    return ", ".join(r["name"] for r in names)


async def detach_partitions(conn: asyncpg.Connection, before: date) -> list[Partition]:
    """Detach the monthly partitions of months before `before` (never dropped); return them.

    Refuses (RecordingsNotPurged), detaching nothing, while a call of those months has a recording or
    voicemail file not yet purged: `fairline recordings purge` finds files through their CDRs.
    """
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK)
        chosen = to_detach(await partitions(conn), before)
        if not chosen:
            return []
        kept = await conn.fetchval(
            """SELECT (SELECT count(*) FROM recordings r JOIN cdr_calls k USING (call_id)
                       WHERE k.billing_month < $1 AND r.purged_at IS NULL)
                    + (SELECT count(*) FROM voicemails v JOIN cdr_calls k USING (call_id)
                       WHERE k.billing_month < $1 AND v.purged_at IS NULL)""",
            chosen[-1].end)
        if kept:
            raise RecordingsNotPurged(
                f"{kept} recording or voicemail files of calls before {chosen[-1].end:%Y-%m} are not purged; "
                "run `fairline recordings purge` first (their CDRs must stay attached until then)")
        for p in chosen:
            await conn.execute(f"ALTER TABLE cdrs DETACH PARTITION {p.name}")
            log.info("cdr.partition_detached", partition=p.name)
    return chosen


async def keep_partitions_ahead(pool: asyncpg.Pool, stop: asyncio.Event, *, today: Callable[[], date],
                                months_ahead: int = MONTHS_AHEAD, every_s: float = 86_400.0,
                                retry_s: float = 60.0) -> None:
    """Make the coming months' partitions now, then daily, until stop (`fairline run`).

    A failure (the database away, a lock not granted) is logged and tried again after retry_s;
    meanwhile a CDR of a month without a partition goes to cdrs_default, and the next success
    moves it into its month.
    """
    while not stop.is_set():
        try:
            async with pool.acquire(timeout=5) as conn:
                await ensure_partitions(conn, months_to_ensure(today(), months_ahead))
            wait = every_s
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("cdr.partitions_not_made", error=str(exc) or type(exc).__name__, retry_in_s=retry_s,
                      cdrs="a month without a partition goes to cdrs_default meanwhile; nothing is lost")
            wait = retry_s
        try:
            await asyncio.wait_for(stop.wait(), timeout=wait)
        except TimeoutError:
            pass
