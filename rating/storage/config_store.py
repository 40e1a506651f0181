"""The configuration store in PostgreSQL: store a version, read one, list the history.

A version is named "v<id>" (e.g. "v12"); that name is what service_charges.config_version
holds. Each version keeps the whole YAML text, who made it in which role and why, and the
version it was made from; a change made from a version that is no longer the newest is
refused, never merged (docs/decisions/0021-config-store.md). DDL is in
migrations/0004_config_versions.sql and 0009_config_store.sql; every insert notifies the
channel `fairline_config` with the new id. Computing what changed is the caller's business
(ari_app/config_versions.py): this module stores plain values only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, get_args

import asyncpg

from rating.storage.database import StorageError

ChangeKind = Literal["added", "changed", "removed"]
Role = Literal["customer", "staff", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# The channel every stored version is announced on (payload: its id as text, e.g. "12").
# A wake-up only: the table is the truth, a listener reads it.
NOTIFY_CHANNEL = "fairline_config"

# Serialises writers (two fairline processes, `config apply` racing a reload): each compares
# against the version really newest. Readers are not blocked.
_LOCK = "LOCK TABLE config_versions IN SHARE ROW EXCLUSIVE MODE"

_COLUMNS = "id, version, content, content_hash, author, role, reason, based_on, applied_at"


@dataclass(frozen=True, slots=True)
class NumberChange:
    """What one version did to one number, against the version before it."""

    number: str  # E.164 when it parses, the text as written otherwise; "*" for everything outside `numbers:`
    change: ChangeKind
    diff: str  # unified diff of the number's YAML, before -> after
    owner_before: str | None = None  # the number's customer before the change (None: none, or not a number)
    owner_after: str | None = None  # and after it (None when removed); migration 0025


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One stored configuration: the whole YAML text as applied, and who made it from which version."""

    id: int
    name: str  # "v12"
    content: str  # the whole YAML text, exactly as given
    content_hash: str  # sha256 hex of content (UTF-8)
    author: str
    role: Role
    reason: str  # '' for versions `fairline run` recorded at start or reload
    based_on: int | None  # the id of the version it was made from; None for the first
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class Fee:
    """A service charge that names a version as the change it paid for."""

    customer_id: str
    month: date
    amount_eur: Decimal
    charged_by: str


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """A recorded configuration, with its changes (only the asked-for number's, when one was asked for)."""

    version: str  # "v12"
    content_hash: str  # sha256 hex of the file's text
    applied_at: datetime
    recorded_at: datetime
    author: str
    changes: tuple[NumberChange, ...]
    role: Role = "admin"
    reason: str = ""
    based_on: str | None = None  # "v11"
    fees: tuple[Fee, ...] = ()


class VersionRefused(StorageError):
    """The store refused a version; the message says why and what to do instead."""


class StaleBase(VersionRefused):
    """The change was made from a version that is no longer the newest: it would undo what came since."""

    def __init__(self, base: int | None, newest: int) -> None:
        self.base = base
        self.newest = newest
        made_from = f"based on v{base}" if base is not None else "based on no version"
        super().__init__(f"{made_from}, but v{newest} is the newest: export v{newest}, make the change again")


class MissingAuthor(VersionRefused, ValueError):
    """Every version names who made it."""

    def __init__(self) -> None:
        super().__init__("no author: say who makes this change (--author NAME)")


class SameContent(VersionRefused):
    """The content is the newest version's already: nothing to store."""

    def __init__(self, newest: StoredVersion) -> None:
        self.newest = newest
        super().__init__(f"no change: {newest.name} has this content already (sha256 {newest.content_hash[:12]})")


class NotAStaffChange(VersionRefused):
    """A fee names a version that does not exist or that staff did not make: nothing to charge for."""

    def __init__(self, name: str, found: StoredVersion | None) -> None:
        self.name = name
        self.found = found
        if found is None:
            why = "no such version (`fairline config history` lists them)"
        else:
            why = f"{found.name} was made by {found.author} as {found.role}; only a change made by staff is charged"
        super().__init__(f"--config-version {name}: {why}")


class NotTheCustomersChange(VersionRefused):
    """A fee names a staff change that changed none of the charged customer's numbers and queues."""

    def __init__(self, found: StoredVersion, customer_id: str) -> None:
        self.found = found
        super().__init__(f"--config-version {found.name}: it changed none of {customer_id}'s numbers or queues "
                         f"(`fairline config history` shows what it changed); a fee is charged for a change "
                         "made for the customer who pays it")


def content_hash(text: str) -> str:
    """sha256 hex of the configuration's text (UTF-8): `sha256sum FILE` gives the same for the file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def version_id(name: str) -> int | None:
    """The id a version name stands for: "v12" and "12" are 12; None when it is neither."""
    digits = name.strip().removeprefix("v")
    if not (digits.isascii() and digits.isdecimal() and len(digits) <= 18):  # 18 digits: within a bigint
        return None
    return int(digits) or None


def refusal(*, author: str, based_on: int | None, content_hash: str,
            newest: StoredVersion | None) -> VersionRefused | None:
    """Why a version made by `author` from version `based_on` may not be stored over `newest`; None if it may.

    The same content as the newest is no change (whatever it was based on); otherwise the
    base must be the newest version (None only while nothing is stored).
    """
    if not author.strip():
        return MissingAuthor()
    if newest is not None and newest.content_hash == content_hash:
        return SameContent(newest)
    newest_id = newest.id if newest is not None else None
    if based_on != newest_id:
        if newest_id is None:  # based on a version that is gone: only a test deletes versions
            return VersionRefused(f"based on v{based_on}, but no version is stored")
        return StaleBase(based_on, newest_id)
    return None


async def newest_version(conn: asyncpg.Connection) -> StoredVersion | None:
    """The version stored last; None when none is."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM config_versions ORDER BY id DESC LIMIT 1")
    return _stored(row) if row is not None else None


async def version(conn: asyncpg.Connection, name_or_id: str | int) -> StoredVersion | None:
    """The version named "v12" (or "12", or 12); None when there is no such version."""
    vid = name_or_id if isinstance(name_or_id, int) else version_id(name_or_id)
    if vid is None:
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM config_versions WHERE id = $1", vid)
    return _stored(row) if row is not None else None


async def staff_change(conn: asyncpg.Connection, name: str, customer_id: str) -> StoredVersion:
    """The version a fee to `customer_id` is charged for; raises NotAStaffChange unless it exists and staff
    made it, NotTheCustomersChange unless it changed one of that customer's numbers (as the number directory
    has them) or queues (the change rows' owners, migration 0025)."""
    found = await version(conn, name)
    if found is None or found.role != "staff":
        raise NotAStaffChange(name, found)
    theirs = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM config_version_changes c LEFT JOIN numbers n ON n.e164 = c.number
                          WHERE c.version_id = $1
                            AND (n.customer_id = $2
                                 OR c.number LIKE 'queue:%' AND $2 IN (c.owner_before, c.owner_after)))""",
        found.id, customer_id)
    if not theirs:
        raise NotTheCustomersChange(found, customer_id)
    return found


async def store_version(conn: asyncpg.Connection, *, content: str, author: str, role: Role, reason: str,
                        based_on: int | None, changes: Sequence[NumberChange],
                        applied_at: datetime | None = None) -> StoredVersion:
    """Store `content` as the newest version, made from version `based_on`, with its per-number `changes`.

    One transaction: the version, its change rows and the notification on `fairline_config`
    (delivered when it commits). `changes` must be against version `based_on`: that is checked
    to be the newest under the table lock, so a change made meanwhile is never overwritten.
    Raises StaleBase when `based_on` is not the newest, MissingAuthor for a blank author,
    SameContent (storing nothing) when the newest version has this content already.
    `applied_at` defaults to the time of storing.
    """
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    digest = content_hash(content)
    async with conn.transaction():
        await conn.execute(_LOCK)
        newest = await newest_version(conn)
        problem = refusal(author=author, based_on=based_on, content_hash=digest, newest=newest)
        if problem is not None:
            raise problem
        return await _insert(conn, content=content, digest=digest, author=author.strip(), role=role,
                             reason=reason, based_on=based_on, changes=changes, applied_at=applied_at)


async def _insert(conn: asyncpg.Connection, *, content: str, digest: str, author: str, role: Role, reason: str,
                  based_on: int | None, changes: Sequence[NumberChange],
                  applied_at: datetime | None) -> StoredVersion:
    row = await conn.fetchrow(
        f"""INSERT INTO config_versions (content_hash, applied_at, author, content, role, reason, based_on)
            VALUES ($1, coalesce($2, now()), $3, $4, $5, $6, $7)
            RETURNING {_COLUMNS}""",
        digest, applied_at, author, content, role, reason, based_on,
    )
    await conn.executemany(
        """INSERT INTO config_version_changes (version_id, number, change, diff, owner_before, owner_after)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [(row["id"], c.number, c.change, c.diff, c.owner_before, c.owner_after) for c in changes],
    )
    return _stored(row)


def _stored(row: asyncpg.Record) -> StoredVersion:
    return StoredVersion(id=row["id"], name=row["version"], content=row["content"],
                         content_hash=row["content_hash"], author=row["author"], role=row["role"],
                         reason=row["reason"], based_on=row["based_on"], applied_at=row["applied_at"])


async def config_history(conn: asyncpg.Connection, number: str | None = None) -> list[ConfigVersion]:
    """Every recorded version, newest first, with the fees charged for it; given a number, only the
    versions that changed it."""
    rows = await conn.fetch(
        """SELECT v.version, v.content_hash, v.applied_at, v.recorded_at, v.author, v.role, v.reason,
                  'v' || v.based_on::text AS based_on,
                  coalesce(array_agg(c.number ORDER BY c.number) FILTER (WHERE c.number IS NOT NULL), '{}') AS numbers,
                  coalesce(array_agg(c.change ORDER BY c.number) FILTER (WHERE c.number IS NOT NULL), '{}') AS kinds,
                  coalesce(array_agg(c.diff ORDER BY c.number) FILTER (WHERE c.number IS NOT NULL), '{}') AS diffs
           FROM config_versions v
           LEFT JOIN config_version_changes c ON c.version_id = v.id AND ($1::text IS NULL OR c.number = $1)
           GROUP BY v.id
           HAVING $1::text IS NULL OR count(c.number) > 0
           ORDER BY v.id DESC""",
        number,
    )
    # service_charges.config_version is free text (0002): a fee may name a version by hand.
    fee_rows = await conn.fetch(
        """SELECT config_version, customer_id, month, amount_eur, charged_by FROM service_charges
           WHERE config_version = ANY($1::text[]) ORDER BY id""",
        [r["version"] for r in rows],
    )
    fees: dict[str, list[Fee]] = {}
    for f in fee_rows:
        fees.setdefault(f["config_version"], []).append(
            Fee(f["customer_id"], f["month"], f["amount_eur"], f["charged_by"]))
    return [
        ConfigVersion(
            version=r["version"], content_hash=r["content_hash"], applied_at=r["applied_at"],
            recorded_at=r["recorded_at"], author=r["author"],
            changes=tuple(NumberChange(n, k, d) for n, k, d in zip(r["numbers"], r["kinds"], r["diffs"])),
            role=r["role"], reason=r["reason"], based_on=r["based_on"], fees=tuple(fees.get(r["version"], ())),
        )
        for r in rows
    ]
