"""Call recordings kept by fairline: the `recordings` table and the files its rows name (issue 6).

ari_app/recording_store.py writes the files, rating/storage/database.py the rows (with their CDRs);
this module reads the rows (`fairline recordings list`), checks each kept file against its
row (`verify`) and deletes the files of old recordings (`purge`), marking their rows; purge
deletes nothing outside the recordings directory, whatever path a row holds (issue 17).
CDRs are never touched: after a purge billing sees the same calls, still `recorded`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg

_CHUNK = 1 << 20
_PURGE_MARK_BATCH = 1000  # rows marked per statement: a failure part-way leaves few deleted files unmarked


@dataclass(frozen=True, slots=True)
class Recording:
    """One row of `recordings`, with the call's number and customer from its CDR."""

    call_id: str
    did: str
    customer_id: str | None
    file: str  # absolute path of the WAV file
    started_at: datetime
    ended_at: datetime
    duration_seconds: Decimal
    sha256: str
    mode: str
    evidence: str | None
    stored_at: datetime
    purged_at: datetime | None  # None: the file is kept


@dataclass(frozen=True, slots=True)
class Problem:
    """A kept recording whose file is not as its row says."""

    recording: Recording
    problem: str  # what verify() found


@dataclass(frozen=True, slots=True)
class Purge:
    """What a purge did (or, dry, would do)."""

    ended_before: datetime
    purged: tuple[Recording, ...]  # file deleted (or already gone) and row marked; dry run: would be
    already_gone: tuple[Recording, ...]  # of purged: the file was missing already
    failed: tuple[Problem, ...]  # the file could not be deleted, or is outside the directory: the row stays unmarked


# ------------------------------------------------------------------- files


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file's content, as lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | os.PathLike[str], sha256: str) -> str | None:
    """None when the file at path is there and has the SHA-256 sha256; otherwise what is wrong, in words."""
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            return "not a regular file" + (" (a symbolic link)" if stat.S_ISLNK(mode) else "")
        actual = file_sha256(path)
    except FileNotFoundError:
        return "file missing"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if actual != sha256.lower():
        return f"changed since it was stored: its SHA-256 is {actual}, the row says {sha256}"
    return None


# --------------------------------------------------------------------- rows


_SELECT = """
SELECT r.call_id, c.did, c.customer_id, r.file, r.started_at, r.ended_at, r.duration_seconds, r.sha256,
       r.mode, r.evidence, r.stored_at, r.purged_at
FROM recordings r JOIN cdrs c USING (call_id)
"""


async def recordings(conn: asyncpg.Connection, *, since: date | None = None) -> tuple[Recording, ...]:
    """Every recording (purged ones too) that started on `since` or later (UTC days), by start."""
    rows = await conn.fetch(
        _SELECT + "WHERE $1::date IS NULL OR r.started_at >= ($1::date)::timestamp AT TIME ZONE 'UTC' "
                  "ORDER BY r.started_at, r.call_id", since)
    return tuple(Recording(*r) for r in rows)


async def verify_kept(conn: asyncpg.Connection) -> tuple[int, tuple[Problem, ...]]:
    """Check every recording not purged against its file: how many were checked, and the problems found."""
    rows = await conn.fetch(_SELECT + "WHERE r.purged_at IS NULL ORDER BY r.started_at, r.call_id")
    kept = [Recording(*r) for r in rows]
    problems = []
    for rec in kept:
        if (problem := verify(rec.file, rec.sha256)) is not None:
            problems.append(Problem(rec, problem))
    return len(kept), tuple(problems)


async def purge(conn: asyncpg.Connection, *, ended_before: datetime, now: datetime, recordings_dir: Path,
                dry_run: bool = False) -> Purge:
    """Delete the files of recordings not yet purged that ended before `ended_before`; set their purged_at = now.

    Only files inside `recordings_dir` are deleted: a row whose path resolves elsewhere (through
    `..`, a symbolic link, or an absolute path outside) is refused, as is a file that is itself a
    symbolic link; they are listed in `failed` and their rows stay unmarked (a dry run lists them too).
    The file goes first, then the row is marked: a purge cut short leaves rows whose file
    is gone (`verify` names them; purging again marks them), never a marked row whose file
    is still on disk. A file already missing is marked purged all the same. The CDRs stay.
    """
    root = os.path.realpath(recordings_dir)
    rows = await conn.fetch(_SELECT + "WHERE r.purged_at IS NULL AND r.ended_at < $1 ORDER BY r.ended_at, r.call_id",
                            ended_before)
    due: list[tuple[Recording, tuple[str, ...]]] = []
    refused: list[Problem] = []
    for rec in (Recording(*r) for r in rows):
        where = _within(rec.file, root)
        if isinstance(where, str):
            refused.append(Problem(rec, where))
        else:
            due.append((rec, where))
    if dry_run:
        return Purge(ended_before, tuple(rec for rec, _ in due),
                     tuple(rec for rec, _ in due if not os.path.lexists(rec.file)), tuple(refused))
    purged: list[Recording] = []
    gone: list[Recording] = []
    failed = list(refused)
    unmarked: list[Recording] = []
    for rec, parts in due:
        try:
            _unlink_within(root, parts)
        except FileNotFoundError:
            gone.append(rec)
        except OSError as exc:
            failed.append(Problem(rec, f"cannot delete it: {exc.strerror or exc}"))
            continue
        purged.append(rec)
        unmarked.append(rec)
        if len(unmarked) == _PURGE_MARK_BATCH:
            await _mark_purged(conn, unmarked, now)
            unmarked = []
    await _mark_purged(conn, unmarked, now)
    return Purge(ended_before, tuple(purged), tuple(gone), tuple(failed))


def _within(file: str, root: str) -> tuple[str, ...] | str:
    """The parts of `file`'s resolved path below `root` (a resolved directory), or why it may not be deleted."""
    resolved = os.path.realpath(file)
    if os.path.commonpath([resolved, root]) != root or resolved == root:
        shown = "" if resolved == file else f" (it resolves to {resolved})"
        return f"outside the recordings directory {root}{shown}: not deleted"
    if os.path.islink(file):
        return f"a symbolic link, not a recording fairline stored (it points to {resolved}): not deleted"
    return Path(resolved).relative_to(root).parts


def _unlink_within(root: str, parts: Sequence[str]) -> None:
    """Delete root/parts, opening each directory on the way without following a symbolic link: one put
    in place after _within looked fails (ELOOP, ENOTDIR) instead of leading outside the directory."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.unlink(parts[-1], dir_fd=fd)  # never follows a link: at worst the link goes
    finally:
        os.close(fd)


async def _mark_purged(conn: asyncpg.Connection, done: Sequence[Recording], now: datetime) -> None:
    if done:
        await conn.execute("UPDATE recordings SET purged_at = $2 WHERE call_id = ANY($1::text[]) AND purged_at IS NULL",
                           [r.call_id for r in done], now)

