"""`fairline voicemail list`: every voicemail message and where its e-mail stands (issue 18).

Takes --database-url (default $DATABASE_URL) and applies the migrations first, as the other database
commands do. Exit status: 0 listed; 2 bad usage; 3 the database is unreachable or failed. Messages are
purged with the recordings (`fairline recordings purge`), once mailed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, TextIO

from rating.commands.database_command import EXIT_OK, add_database_url, with_database
from rating.commands.recordings_cli import _table, day

if TYPE_CHECKING:
    import asyncpg

    from rating.storage import voicemails


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = argparse.ArgumentParser(add_help=False)
    add_database_url(db)
    vm = subparsers.add_parser("voicemail", help="voicemail messages and their e-mails")
    vm_sub = vm.add_subparsers(dest="voicemail_command", required=True, metavar="SUBCOMMAND")
    ls = vm_sub.add_parser(
        "list", parents=[db], help="every message, oldest first, with its e-mail's status",
        description="Per message: call id, when it was left (UTC), seconds, customer, number, caller, the e-mail's "
                    "status (pending, retrying: SMTP down or busy; failed: refused, tried again; sent), attempts, "
                    "the next attempt or when it was sent, and the last error. Then the file and its SHA-256.")
    ls.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="only messages left on that day (UTC) or later")
    ls.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ls.set_defaults(fn=_cmd_list)


def _cmd_list(args: argparse.Namespace) -> int:
    from rating.storage import voicemails

    async def work(conn: asyncpg.Connection) -> int:
        found = await voicemails.voicemails(conn, since=args.since)
        (write_list_json if args.json else write_list)(sys.stdout, found, args.since)
        return EXIT_OK

    return with_database(args, work)


def write_list(out: TextIO, found: Sequence[voicemails.Voicemail], since: date | None) -> None:
    if not found:
        out.write("no voicemail messages" + (f" since {since.isoformat()}" if since else "") + "\n")
        return
    rows = [[v.call_id, _utc(v.started_at), str(v.duration_seconds), v.customer_id or "-", v.did, v.caller or "-",
             v.email_status, str(v.email_attempts),
             f"sent {_utc(v.sent_at)}" if v.sent_at else f"next {_utc(v.next_attempt_at)}",
             f"purged {_utc(v.purged_at)}" if v.purged_at else v.file, v.last_error or "-"] for v in found]
    _table(out, ["call", "left (UTC)", "seconds", "customer", "number", "caller", "e-mail", "attempts", "when",
                 "file", "last error"], rows, right={2, 7})
    counts = {status: sum(v.email_status == status for v in found) for status in ("sent", "pending", "retrying",
                                                                                   "failed")}
    out.write(f"{len(found)} messages: " + ", ".join(f"{n} {status}" for status, n in counts.items()) + "\n")


def write_list_json(out: TextIO, found: Sequence[voicemails.Voicemail], since: date | None) -> None:
    json.dump({"since": since.isoformat() if since else None, "voicemails": [_json(v) for v in found]}, out, indent=2)
    out.write("\n")


def _json(v: voicemails.Voicemail) -> dict[str, Any]:
    return {
        "call_id": v.call_id, "customer_id": v.customer_id, "did": v.did, "caller": v.caller, "file": v.file,
        "started_at": _iso(v.started_at), "ended_at": _iso(v.ended_at), "duration_seconds": str(v.duration_seconds),
        "sha256": v.sha256, "stored_at": _iso(v.stored_at), "purged_at": _iso(v.purged_at),
        "email_status": v.email_status, "email_attempts": v.email_attempts,
        "next_attempt_at": _iso(v.next_attempt_at), "last_error": v.last_error, "emailed_to": list(v.emailed_to),
        "sent_at": _iso(v.sent_at),
    }


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")
