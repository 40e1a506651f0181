"""Customers' uploaded voicemail greetings: kept in PostgreSQL, written as files where each node reads them.

The console stores an upload here (already converted to what Asterisk plays) and makes a configuration
version whose box says `greeting_file: <greetings dir>/<sha256>.wav`. Every fairline, before it checks
a version (at start and for each new one), writes the greetings that version names into its own
greetings directory from this table (`install_named`): several nodes share one database, not one disk
(decision 0036). Only files directly in that directory and named by a stored greeting's hash are
written; anything else the version names is left to `config check`'s usual verdict.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg

from plumbing.durable import fsync_dir, write_all

# `greeting_file: /dir/<sha256>.wav`, quoted or not, in block or flow style.
_NAMED = re.compile(r"""greeting_file\s*:\s*["']?(/[^\s"'#,}\]]*/([0-9a-f]{64})\.wav)\b""")


@dataclass(frozen=True, slots=True)
class Greeting:
    sha256: str
    customer_id: str
    seconds: Decimal
    uploaded_by: str


def file_name(directory: Path, sha256: str) -> Path:
    """Where the greeting of hash `sha256` is kept under `directory` (absolute)."""
    return Path(os.path.abspath(directory)) / f"{sha256}.wav"


def named(text: str, directory: Path) -> dict[str, Path]:
    """The stored-greeting files a configuration text names directly in `directory`, by hash."""
    root = Path(os.path.abspath(directory))
    return {sha: Path(path) for path, sha in _NAMED.findall(text) if Path(path).parent == root}


async def store(conn: asyncpg.Connection, *, sha256: str, customer_id: str, audio: bytes, seconds: Decimal,
                uploaded_by: str) -> None:
    """Keep a greeting (the same content stored twice is one row, the first uploader's)."""
    await conn.execute(
        """INSERT INTO greetings (sha256, customer_id, audio, seconds, uploaded_by) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sha256) DO NOTHING""", sha256, customer_id, audio, seconds, uploaded_by)


async def audio(conn: asyncpg.Connection, sha256: str) -> bytes | None:
    value = await conn.fetchval("SELECT audio FROM greetings WHERE sha256 = $1", sha256)
    return bytes(value) if value is not None else None


def write(directory: Path, sha256: str, content: bytes) -> Path:
    """Put `content` at directory/<sha256>.wav, whole or not at all (mode 644: no secret, Asterisk may read it).

    A file already there with this content is left alone; one with other content is replaced:
    the name is the hash of what belongs there."""
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ValueError(f"greeting {sha256}: the content does not have this hash")
    dest = file_name(directory, sha256)
    if _holds(dest, sha256):
        return dest
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        write_all(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(dest.parent)
    return dest


async def install_named(conn: asyncpg.Connection, text: str, directory: Path) -> list[str]:
    """Write every stored greeting `text` names in `directory` that is missing there or differs; their hashes.

    A name with no stored greeting is skipped: checking the version then says the file is missing."""
    written = []
    for sha, path in named(text, directory).items():
        if await asyncio.to_thread(_holds, path, sha):
            continue
        content = await audio(conn, sha)
        if content is not None:
            await asyncio.to_thread(write, directory, sha, content)
            written.append(sha)
    return written


def _holds(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except FileNotFoundError:
        return False
