"""`fairline config history [NUMBER]`: the configuration versions stored, newest first, with who, why and the fees.

Applies the database migrations first, like the billing commands. Exit status: 0
done (also when nothing is recorded); 2 bad usage; 3 the database is unreachable
or failed. The database URL is shown with its password as ***. The composition
root (ari_app/cli.py) calls register() with the `config` subcommands.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any, TextIO

from rating.commands.database_command import with_database

if TYPE_CHECKING:  # imported by the command, not by `fairline --help`
    import asyncpg

    from rating.storage.config_store import ConfigVersion

EXIT_OK = 0
SHORT_HASH = 12  # hex digits of the content hash shown in the table


def register(config_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `history` to the `fairline config` subcommands."""
    history = config_subparsers.add_parser(
        "history", help="the configuration versions stored, newest first, with author, role, reason and fees",
        description="List every configuration version stored (by `config apply` or `rollback`, or by fairline at start or reload), newest first: its "
                    "version (e.g. v12, what `service-charge add --config-version` takes), when it was applied "
                    "(UTC), who applied it in which role (admin, staff, customer), the start of its sha256, the "
                    "version it was made from, why, the service charges that name it, and per number whether it "
                    "was added, changed or removed. Numbers are in E.164; '*' stands for everything outside `numbers:` "
                    "(customers, tariff). With NUMBER, only the versions that changed it, with the diff.")
    history.add_argument("number", nargs="?", metavar="NUMBER",
                         help="a number as configured, e.g. +31201234567, or '*' for customers and tariff")
    history.add_argument("--database-url", metavar="URL",
                         help="PostgreSQL URL; default $DATABASE_URL (put the password in ~/.pgpass or the URL)")
    history.add_argument("--json", action="store_true",
                         help="one JSON object instead of text; it carries every diff, with or without NUMBER")
    history.set_defaults(fn=cmd_config_history)


def cmd_config_history(args: argparse.Namespace) -> int:
    from rating.core.numbering import to_e164
    from rating.storage.config_store import config_history

    number = None
    if args.number is not None:
        number = to_e164(args.number) or args.number.strip()

    async def show(conn: asyncpg.Connection) -> int:
        versions = await config_history(conn, number)
        (write_json if args.json else write_text)(sys.stdout, versions, number)
        return EXIT_OK

    return with_database(args, show)


def write_text(out: TextIO, versions: list[ConfigVersion], number: str | None) -> None:
    """One line per version, then one per number it changed; with a number asked for, its diff below."""
    if not versions:
        out.write("no configuration version recorded\n" if number is None else f"no version changed {number}\n")
        return
    for v in versions:
        when = v.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        made_from = f"  from {v.based_on}" if v.based_on is not None else ""
        out.write(f"{v.version}  {when}  {v.author} as {v.role}  {v.content_hash[:SHORT_HASH]}{made_from}\n")
        if v.reason:
            out.write(f"    why: {v.reason}\n")
        for fee in v.fees:
            out.write(f"    fee: {fee.amount_eur:.2f} EUR to {fee.customer_id} for {fee.month:%Y-%m}, "
                      f"charged by {fee.charged_by}\n")
        if not v.changes:
            out.write("    no number changed (only comments or layout)\n")
        for c in v.changes:
            out.write(f"    {c.change:<8} {c.number}\n")
            if number is not None:
                out.writelines(f"        {line}\n" for line in c.diff.splitlines())


def write_json(out: TextIO, versions: list[ConfigVersion], number: str | None) -> None:
    doc: dict[str, Any] = {
        "number": number,
        "versions": [
            {
                "version": v.version,
                "applied_at": v.applied_at.astimezone(UTC).isoformat(),
                "recorded_at": v.recorded_at.astimezone(UTC).isoformat(),
                "author": v.author,
                "role": v.role,
                "reason": v.reason,
                "based_on": v.based_on,
                "content_hash": v.content_hash,
                "fees": [{"customer_id": f.customer_id, "month": f"{f.month:%Y-%m}", "amount_eur": str(f.amount_eur),
                          "charged_by": f.charged_by} for f in v.fees],
                "changes": [{"number": c.number, "change": c.change, "diff": c.diff} for c in v.changes],
            }
            for v in versions
        ],
    }
    out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
