"""Recording commands: `fairline recordings list`, `verify` and `purge` (issue 6).

Each takes --database-url (default $DATABASE_URL) and applies the database
migrations first, as the billing commands do. Exit status: 0 done; 1 `verify`
found a recording whose file is missing or changed, or `purge` could not delete
a file or refused one outside the recordings directory; 2 bad usage; 3 the
database is unreachable or failed. Database URLs are shown with the password as ***.

Rows hold the absolute path of each file, so list and verify need no recordings
directory; purge deletes only inside it, whatever a row says. The SQL and file checks are in rating/storage/recordings.py; the composition
root (ari_app/cli.py) calls register().
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rating.commands.database_command import EXIT_BAD_INPUT, EXIT_OK, add_database_url, error, with_database
from plumbing.clock import utc_now

if TYPE_CHECKING:  # imported by the commands, not by `fairline --help`
    import asyncpg

    from rating.storage import recordings, voicemails

EXIT_PROBLEMS = 1
MAX_DAYS = 36500  # a hundred years: more is a typo, and would not fit a timestamp


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *,
             default_recordings_dir: Path) -> None:
    """Add `recordings list|verify|purge` to fairline's subcommands; purge's directory is
    --recordings-dir, else $FAIRLINE_RECORDINGS_DIR (put there by the composition root), else the default."""
    db = argparse.ArgumentParser(add_help=False)
    add_database_url(db)

    rec = subparsers.add_parser("recordings", help="recorded calls: list, verify the files, purge old ones")
    rec_sub = rec.add_subparsers(dest="recordings_command", required=True, metavar="SUBCOMMAND")

    ls = rec_sub.add_parser(
        "list", parents=[db], help="every recording, oldest first",
        description="Per recording: call id, start (UTC), seconds, the mode the law asked for, customer, number, "
                    "the file (or when it was purged) and the evidence that allowed it.")
    ls.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="only recordings started on that day (UTC) or later")
    ls.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ls.set_defaults(fn=_cmd_list)

    ver = rec_sub.add_parser(
        "verify", parents=[db], help="check that every kept recording's file is there and unchanged",
        description="For every recording not purged: the file must exist and have the SHA-256 stored with it. "
                    "Lists each one that does not, with what is wrong; exit status 1 when any.")
    ver.set_defaults(fn=_cmd_verify)

    pur = rec_sub.add_parser(
        "purge", parents=[db], help="delete the files of recordings older than DAYS",
        description="Delete the file of every recording that ended more than DAYS days ago and mark its row "
                    "purged. The CDRs stay as they are (still marked recorded, with mode and evidence): billing "
                    "sees the same calls. Only files inside the recordings directory are deleted: a row whose file "
                    "resolves elsewhere (.., a symbolic link, another directory) is listed and stays unmarked. "
                    "Exit status 1 when a file could not be deleted or was refused (its row stays unmarked).")
    pur.add_argument("--older-than", required=True, type=days, metavar="DAYS",
                     help=f"whole days, 0 to {MAX_DAYS}; 0 purges every recording that has ended")
    pur.add_argument("--dry-run", action="store_true", help="show what would be purged; delete and mark nothing")
    pur.add_argument("--recordings-dir", type=Path, metavar="DIR",
                     help="where fairline keeps recordings (as `fairline run --recordings-dir`); files elsewhere are "
                          f"never deleted; default $FAIRLINE_RECORDINGS_DIR or {default_recordings_dir}")
    pur.set_defaults(fn=_cmd_purge, default_recordings_dir=default_recordings_dir)


# ------------------------------------------------------------ argument types


def day(text: str) -> date:
    """argparse type for --since: YYYY-MM-DD."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, e.g. 2026-11-01; got {text!r}") from None


def days(text: str) -> int:
    """argparse type for --older-than: whole days, 0 to MAX_DAYS."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"expected whole days from 0 to {MAX_DAYS}; got {text!r}")
    return int(text)


# ---------------------------------------------------------------- commands


def _cmd_list(args: argparse.Namespace) -> int:
    from rating.storage import recordings

    async def work(conn: asyncpg.Connection) -> int:
        found = await recordings.recordings(conn, since=args.since)
        (write_list_json if args.json else write_list)(sys.stdout, found, args.since)
        return EXIT_OK

    return with_database(args, work)


def _cmd_verify(args: argparse.Namespace) -> int:
    from rating.storage import recordings

    async def work(conn: asyncpg.Connection) -> int:
        checked, problems = await recordings.verify_kept(conn)
        write_verify(sys.stdout, checked, problems)
        return EXIT_PROBLEMS if problems else EXIT_OK

    return with_database(args, work)


def _cmd_purge(args: argparse.Namespace) -> int:
    from rating.storage import recordings, voicemails

    directory = Path(args.recordings_dir or args.default_recordings_dir)
    if not directory.is_dir():
        error(f"recordings directory {directory}: not a directory; give the one `fairline run` uses "
              "(--recordings-dir or $FAIRLINE_RECORDINGS_DIR)")
        return EXIT_BAD_INPUT

    async def work(conn: asyncpg.Connection) -> int:
        now = utc_now()
        done = await recordings.purge(conn, ended_before=now - timedelta(days=args.older_than), now=now,
                                      recordings_dir=directory, dry_run=args.dry_run)
        write_purge(sys.stdout, done, dry_run=args.dry_run)
        # Voicemail messages are kept beside the recordings and follow the same retention (issue 18).
        messages = await voicemails.purge(conn, ended_before=done.ended_before, now=now, recordings_dir=directory,
                                          dry_run=args.dry_run)
        write_voicemail_purge(sys.stdout, messages, dry_run=args.dry_run)
        return EXIT_PROBLEMS if done.failed or messages.failed else EXIT_OK

    return with_database(args, work)


# ------------------------------------------------------------------ output


def write_list(out: TextIO, found: Sequence[recordings.Recording], since: date | None) -> None:
    if not found:
        out.write("no recordings" + (f" since {since.isoformat()}" if since else "") + "\n")
        return
    rows = [
        [r.call_id, _utc(r.started_at), str(r.duration_seconds), r.mode, r.customer_id or "-", r.did,
         f"purged {_utc(r.purged_at)}" if r.purged_at else r.file, r.evidence or "-"]
        for r in found
    ]
    _table(out, ["call", "started (UTC)", "seconds", "mode", "customer", "number", "file", "evidence"], rows,
           right={2})
    purged = sum(r.purged_at is not None for r in found)
    out.write(f"{len(found)} recordings: {len(found) - purged} kept, {purged} purged\n")


def write_list_json(out: TextIO, found: Sequence[recordings.Recording], since: date | None) -> None:
    """One object: since, and the recordings with times in ISO 8601 (UTC) and seconds as a string, exact."""
    json.dump({"since": since.isoformat() if since else None, "recordings": [_json(r) for r in found]}, out, indent=2)
    out.write("\n")


def write_verify(out: TextIO, checked: int, problems: Sequence[recordings.Problem]) -> None:
    for p in problems:
        out.write(f"call {p.recording.call_id}: {p.recording.file}: {p.problem}\n")
    if problems:
        out.write(f"{len(problems)} of {checked} kept recordings have a problem\n")
    else:
        out.write(f"{checked} kept recordings checked: every file is there and unchanged\n")


def write_purge(out: TextIO, done: recordings.Purge, *, dry_run: bool) -> None:
    verb = "would purge" if dry_run else "purged"
    gone = {r.call_id for r in done.already_gone}
    for r in done.purged:
        note = " (the file is already gone)" if r.call_id in gone else ""
        out.write(f"{verb} {r.call_id} (ended {_utc(r.ended_at)} UTC): {r.file}{note}\n")
    for p in done.failed:
        out.write(f"cannot purge {p.recording.call_id}: {p.recording.file}: {p.problem}\n")
    out.write(f"{verb} {len(done.purged)} recordings that ended before {_utc(done.ended_before)} UTC"
              + ("; nothing deleted (dry run)" if dry_run else "; their CDRs stay, still marked recorded") + "\n")
    if done.failed:
        out.write(f"{len(done.failed)} " + ("would not be deleted\n" if dry_run
                                             else "could not be deleted: kept and not marked purged\n"))


def write_voicemail_purge(out: TextIO, done: voicemails.Purge, *, dry_run: bool) -> None:
    """What purge did to voicemail messages; nothing when no message was old enough."""
    if not (done.purged or done.unsent or done.failed):
        return
    verb = "would purge" if dry_run else "purged"
    gone = {v.call_id for v in done.already_gone}
    for v in done.purged:
        note = " (the file is already gone)" if v.call_id in gone else ""
        out.write(f"{verb} voicemail {v.call_id} (ended {_utc(v.ended_at)} UTC): {v.file}{note}\n")
    for v in done.unsent:
        out.write(f"kept voicemail {v.call_id}: not mailed yet ({v.email_status}, {v.email_attempts} attempt(s))\n")
    for v, problem in done.failed:
        out.write(f"cannot purge voicemail {v.call_id}: {v.file}: {problem}\n")
    out.write(f"{verb} {len(done.purged)} voicemail messages; {len(done.unsent)} kept until mailed\n")


def _json(r: recordings.Recording) -> dict[str, Any]:
    return {
        "call_id": r.call_id, "customer_id": r.customer_id, "did": r.did, "file": r.file,
        "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at),
        "duration_seconds": str(r.duration_seconds), "sha256": r.sha256, "mode": r.mode, "evidence": r.evidence,
        "stored_at": _iso(r.stored_at), "purged_at": _iso(r.purged_at) if r.purged_at else None,
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")


def _table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> None:
    """Columns padded to their widest cell; the columns in right (numbers) right-aligned."""
    widths = [max(map(len, column)) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        out.write("  ".join(cells).rstrip() + "\n")
