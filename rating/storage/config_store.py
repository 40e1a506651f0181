"""Configuration versions in PostgreSQL: record one, list the history.

A version is named "v<id>" (e.g. "v12"); that name is what service_charges.config_version
holds. DDL is in migrations/0004_config_versions.sql. Computing what changed is the
caller's business (ari_app/config_versions.py): this module stores plain values only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

ChangeKind = Literal["added", "changed", "removed"]


@dataclass(frozen=True, slots=True)
class NumberChange:
    """What one version did to one number, against the version before it."""

    number: str  # E.164 when it parses, the text as written otherwise; "*" for everything outside `numbers:`
    change: ChangeKind
    diff: str  # unified diff of the number's YAML, before -> after


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """A recorded configuration, with its changes (only the asked-for number's, when one was asked for)."""

    version: str  # "v12"
    content_hash: str  # sha256 hex of the file's text
    applied_at: datetime
    recorded_at: datetime
    author: str
    changes: tuple[NumberChange, ...]


async def record_version(conn: asyncpg.Connection, *, content_hash: str, author: str, content: str,
                         applied_at: datetime,
                         changes: Callable[[str | None], Sequence[NumberChange]]) -> str | None:
    """Store a configuration as the newest version with its changes, in one transaction; return its name.

    Returns None, storing nothing, when the newest version already has this content hash.
    `changes` gets the newest version's content (None when there is none yet) and says
    what this one changes against it: the diff is always against what is stored, even
    when versions were held back while the database was down.
    """
    async with conn.transaction():
        # Serialises recorders (two fairline processes, a reload racing a start): each
        # compares against the version really newest and diffs against it. Readers are not blocked.
        await conn.execute("LOCK TABLE config_versions IN SHARE ROW EXCLUSIVE MODE")
        newest = await conn.fetchrow("SELECT content_hash, content FROM config_versions ORDER BY id DESC LIMIT 1")
        if newest is not None and newest["content_hash"] == content_hash:
            return None
        found = changes(newest["content"] if newest is not None else None)
        row = await conn.fetchrow(
            """INSERT INTO config_versions (content_hash, applied_at, author, content) VALUES ($1, $2, $3, $4)
               RETURNING id, version""",
            content_hash, applied_at, author, content,
        )
        await conn.executemany(
            "INSERT INTO config_version_changes (version_id, number, change, diff) VALUES ($1, $2, $3, $4)",
            [(row["id"], c.number, c.change, c.diff) for c in found],
        )
        return str(row["version"])


async def config_history(conn: asyncpg.Connection, number: str | None = None) -> list[ConfigVersion]:
    """Every recorded version, newest first; given a number, only the versions that changed it."""
    rows = await conn.fetch(
        """SELECT v.version, v.content_hash, v.applied_at, v.recorded_at, v.author,
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
    return [
        ConfigVersion(
            version=r["version"], content_hash=r["content_hash"], applied_at=r["applied_at"],
            recorded_at=r["recorded_at"], author=r["author"],
            changes=tuple(NumberChange(n, k, d) for n, k, d in zip(r["numbers"], r["kinds"], r["diffs"])),
        )
        for r in rows
    ]
