"""`fairline cdr partitions ensure|list|detach`: the monthly partitions of the cdrs table (decision 0033).

Each takes --database-url (default $DATABASE_URL) and applies the migrations first, as the other
database commands do. Exit status: 0 done; 2 bad usage, or a detach refused (recordings not purged);
3 the database is unreachable or failed (a lock not granted within 5 s included: run it again).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date
from typing import TYPE_CHECKING, TextIO

from plumbing.clock import utc_now
from rating.commands.database_command import EXIT_BAD_INPUT, EXIT_OK, add_database_url, error, with_database
from rating.core.fair_use import Month
from rating.core.partitions import MONTHS_AHEAD, Partition, detach_refusal, months_to_ensure
from rating.errors import InvalidMonth

if TYPE_CHECKING:
    import asyncpg

MAX_MONTHS_AHEAD = 120


def register(cdr_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `partitions` to `fairline cdr`."""
    db = argparse.ArgumentParser(add_help=False)
    add_database_url(db)
    parts = cdr_subparsers.add_parser("partitions", help="the cdrs table's monthly partitions")
    sub = parts.add_subparsers(dest="partitions_command", required=True, metavar="SUBCOMMAND")
    ensure = sub.add_parser(
        "ensure", parents=[db], help="make this month's partition and the next ones (fairline run does it too)",
        description="Make the partitions of this month (UTC) and the months after it that have none. CDRs of a "
                    "month that had none went to cdrs_default; they move into the new partition, in the "
                    "transaction that makes it. Prints each partition made.")
    ensure.add_argument("--months-ahead", type=_months_ahead, default=MONTHS_AHEAD, metavar="N",
                        help=f"how many months after this one (default {MONTHS_AHEAD})")
    ensure.set_defaults(fn=_cmd_ensure)
    ls = sub.add_parser(
        "list", parents=[db], help="every partition, the default and the detached months, with rows and size",
        description="Per partition: name, months it takes, attached or detached, rows (PostgreSQL's estimate, "
                    "exact after ANALYZE) and size. Rows in cdrs_default mean a month had no partition: run ensure.")
    ls.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ls.set_defaults(fn=_cmd_list)
    detach = sub.add_parser(
        "detach", parents=[db], help="detach the months before one for archive (never drops)",
        description="Detach every monthly partition of a month before YYYY-MM: it stays in the database as a "
                    "table of its own (cdrs_YYYY_MM), out of every query on cdrs, for pg_dump and then DROP by "
                    "the operator. Refused while those months have recording or voicemail files not purged. "
                    "Prints each partition detached.")
    detach.add_argument("--before", required=True, type=_month, metavar="YYYY-MM",
                        help="the first month kept, e.g. 2025-01")
    detach.set_defaults(fn=_cmd_detach)


def _months_ahead(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_MONTHS_AHEAD:
        raise argparse.ArgumentTypeError(f"expected whole months from 0 to {MAX_MONTHS_AHEAD}; got {text!r}")
    return int(text)


def _month(text: str) -> date:
    try:
        m = Month.parse(text)
    except InvalidMonth as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None
    return date(m.year, m.month, 1)


def _cmd_ensure(args: argparse.Namespace) -> int:
    from rating.storage.partitions import ensure_partitions

    async def work(conn: asyncpg.Connection) -> int:
        made = await ensure_partitions(conn, months_to_ensure(utc_now().astimezone(UTC).date(), args.months_ahead))
        sys.stdout.write("".join(f"made {name}\n" for name in made) or "every partition was there\n")
        return EXIT_OK

    return with_database(args, work)


def _cmd_list(args: argparse.Namespace) -> int:
    from rating.storage.partitions import partitions

    async def work(conn: asyncpg.Connection) -> int:
        (write_list_json if args.json else write_list)(sys.stdout, await partitions(conn))
        return EXIT_OK

    return with_database(args, work)


def _cmd_detach(args: argparse.Namespace) -> int:
    from rating.storage.partitions import detach_partitions

    refused = detach_refusal(args.before, utc_now().astimezone(UTC).date())
    if refused is not None:
        error(refused)
        return EXIT_BAD_INPUT

    async def work(conn: asyncpg.Connection) -> int:
        done = await detach_partitions(conn, args.before)
        sys.stdout.write("".join(f"detached {p.name}\n" for p in done)
                         or f"no attached partition of a month before {args.before:%Y-%m}\n")
        return EXIT_OK

    return with_database(args, work)


def _months(p: Partition) -> str:
    if p.first is None or p.end is None:
        return "any other"
    return f"{p.first:%Y-%m}"


def write_list(out: TextIO, found: Sequence[Partition]) -> None:
    headers = ["partition", "month", "state", "rows", "size"]
    rows = [[p.name, _months(p), "attached" if p.attached else "detached", str(p.rows), _size(p.bytes)]
            for p in found]
    widths = [max(map(len, column)) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        out.write("  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                  .rstrip() + "\n")


def write_list_json(out: TextIO, found: Sequence[Partition]) -> None:
    json.dump({"partitions": [{"name": p.name, "month": p.first.isoformat()[:7] if p.first else None,
                               "attached": p.attached, "rows": p.rows, "bytes": p.bytes} for p in found]},
              out, indent=2)
    out.write("\n")


def _size(n: int) -> str:
    """Bytes as PostgreSQL's pg_size_pretty shows them, to one decimal."""
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "kB"
    for bigger in ("MB", "GB", "TB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
