"""Voicemail messages kept by fairline: the `voicemails` table, which is also their e-mail's outbox (issue 18).

The rows are written with their CDRs (database.py); the mailer (ari_app/runtime/voicemail_outbox.py) claims
the messages due (`claim_due`: a lease, so two fairlines never mail one message at once), and marks each
sent or failed with the time of its next attempt. `fairline voicemail list` reads them; `fairline recordings
purge` deletes the files of old messages that were mailed, never of one still to send, and nothing outside
the recordings directory (decision 0027).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg

from rating.storage.recordings import _unlink_within, _within


@dataclass(frozen=True, slots=True)
class Voicemail:
    """One row of `voicemails`, with the call's number, customer and caller from its CDR."""

    call_id: str
    did: str
    customer_id: str | None
    caller: str | None
    file: str  # absolute path of the WAV file
    started_at: datetime
    ended_at: datetime
    duration_seconds: Decimal
    sha256: str
    stored_at: datetime
    purged_at: datetime | None  # None: the file is kept
    email_status: str  # pending, retrying, failed, sent (ari_app.core.voicemail.Delivery)
    email_attempts: int
    next_attempt_at: datetime
    last_error: str | None
    emailed_to: tuple[str, ...]
    sent_at: datetime | None


_COLUMNS = """v.call_id, c.did, c.customer_id, c.caller, v.file, v.started_at, v.ended_at, v.duration_seconds, v.sha256,
       v.stored_at, v.purged_at, v.email_status, v.email_attempts, v.next_attempt_at, v.last_error, v.emailed_to,
       v.sent_at"""
_SELECT = f"SELECT {_COLUMNS} FROM voicemails v JOIN cdrs c USING (call_id)\n"


def _row(r: asyncpg.Record) -> Voicemail:
    values = list(r.values())
    values[15] = tuple(values[15] or ())
    return Voicemail(*values)


async def voicemails(conn: asyncpg.Connection, *, since: date | None = None) -> tuple[Voicemail, ...]:
    """Every message (purged ones too) left on `since` or later (UTC days), oldest first."""
    rows = await conn.fetch(
        _SELECT + "WHERE $1::date IS NULL OR v.started_at >= ($1::date)::timestamp AT TIME ZONE 'UTC' "
                  "ORDER BY v.started_at, v.call_id", since)
    return tuple(_row(r) for r in rows)


async def claim_due(conn: asyncpg.Connection | asyncpg.Pool, *, now: datetime, lease_s: float,
                    limit: int) -> tuple[Voicemail, ...]:
    """The messages to mail now (not sent, next attempt due), at most `limit`, first due first; each is leased
    for `lease_s` (its next attempt moved on), so no other mailer takes it meanwhile, and a mailer that dies
    while sending leaves it to be tried again when the lease ends."""
    rows = await conn.fetch(f"""
        WITH due AS (
            SELECT call_id FROM voicemails
            WHERE email_status <> 'sent' AND purged_at IS NULL AND next_attempt_at <= $1
            ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED
        )
        UPDATE voicemails v SET next_attempt_at = $1 + make_interval(secs => $2)
        FROM due, cdrs c WHERE v.call_id = due.call_id AND c.call_id = v.call_id
        RETURNING {_COLUMNS}""", now, lease_s, limit)
    return tuple(sorted((_row(r) for r in rows), key=lambda v: (v.next_attempt_at, v.call_id)))


async def mark_sent(conn: asyncpg.Connection | asyncpg.Pool, call_id: str, *, to: Sequence[str],
                    now: datetime, note: str | None = None) -> None:
    """The SMTP server took the message for `to` (`note`: recipients it refused, if some)."""
    await conn.execute("""UPDATE voicemails SET email_status = 'sent', sent_at = $3, email_attempts = email_attempts + 1,
                          emailed_to = $2, last_error = $4 WHERE call_id = $1""", call_id, list(to), now, note)


async def mark_failed(conn: asyncpg.Connection | asyncpg.Pool, call_id: str, *, status: str, error: str,
                      to: Sequence[str], next_attempt_at: datetime) -> None:
    """An attempt failed (`status` retrying or failed): why, and when the next one is due."""
    await conn.execute("""UPDATE voicemails SET email_status = $2, email_attempts = email_attempts + 1,
                          last_error = $3, emailed_to = $4, next_attempt_at = $5
                          WHERE call_id = $1 AND email_status <> 'sent'""",
                       call_id, status, error, list(to), next_attempt_at)


@dataclass(frozen=True, slots=True)
class Purge:
    """What a purge of messages did (or, dry, would do)."""

    purged: tuple[Voicemail, ...]
    already_gone: tuple[Voicemail, ...]
    unsent: tuple[Voicemail, ...]  # old enough, but not mailed yet: kept
    failed: tuple[tuple[Voicemail, str], ...]  # could not be deleted, or outside the directory: row unmarked


async def purge(conn: asyncpg.Connection, *, ended_before: datetime, now: datetime, recordings_dir: Path,
                dry_run: bool = False) -> Purge:
    """Delete the files of messages mailed and ended before `ended_before`; set their purged_at = now.

    As recordings.purge: only inside `recordings_dir`, the file first and then the row. A message not
    mailed yet is never purged: it is listed in `unsent` and kept until it is sent.
    """
    root = os.path.realpath(recordings_dir)
    rows = [_row(r) for r in await conn.fetch(
        _SELECT + "WHERE v.purged_at IS NULL AND v.ended_at < $1 ORDER BY v.ended_at, v.call_id", ended_before)]
    unsent = tuple(v for v in rows if v.email_status != "sent")
    purged: list[Voicemail] = []
    gone: list[Voicemail] = []
    failed: list[tuple[Voicemail, str]] = []
    for v in (v for v in rows if v.email_status == "sent"):
        where = _within(v.file, root)
        if isinstance(where, str):
            failed.append((v, where.replace("recordings directory", "recordings directory (voicemail)")))
            continue
        if dry_run:
            (gone if not os.path.lexists(v.file) else purged).append(v)
            continue
        try:
            _unlink_within(root, where)
        except FileNotFoundError:
            gone.append(v)
        except OSError as exc:
            failed.append((v, f"cannot delete it: {exc.strerror or exc}"))
            continue
        purged.append(v)
    if dry_run:
        purged += gone
    elif purged:
        await conn.execute("UPDATE voicemails SET purged_at = $2 WHERE call_id = ANY($1::text[]) AND purged_at IS NULL",
                           [v.call_id for v in purged], now)
    return Purge(tuple(purged), tuple(gone), unsent, tuple(failed))

