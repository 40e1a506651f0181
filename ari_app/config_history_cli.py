"""`fairline config history [NUMBER]`: the configuration versions fairline applied, newest first.

Applies the database migrations first, like the billing commands. Exit status: 0
done (also when nothing is recorded); 2 bad usage; 3 the database is unreachable
or failed. The database URL is shown with its password as ***. The composition
root (ari_app/cli.py) calls register() with the `config` subcommands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

import asyncpg
import structlog

from ari_app.config import to_e164
from ari_app.settings import redact
from rating.config_store import ConfigVersion, config_history
from rating.storage import StorageError, migrate

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

CONNECT_TIMEOUT_S = 5.0
SHORT_HASH = 12  # hex digits of the content hash shown in the table


def register(config_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `history` to the `fairline config` subcommands."""
    history = config_subparsers.add_parser(
        "history", help="the configuration versions applied, newest first",
        description="List every configuration fairline applied (at start or by reload), newest first: its "
                    "version (e.g. v12, what `service-charge add --config-version` takes), when it was applied "
                    "(UTC), who applied it, the start of its sha256, and per number whether it was added, "
                    "changed or removed. Numbers are in E.164; '*' stands for everything outside `numbers:` "
                    "(customers, tariff). With NUMBER, only the versions that changed it, with the diff.")
    history.add_argument("number", nargs="?", metavar="NUMBER",
                         help="a number as configured, e.g. +31201234567, or '*' for customers and tariff")
    history.add_argument("--database-url", metavar="URL",
                         help="PostgreSQL URL; default $DATABASE_URL (put the password in ~/.pgpass or the URL)")
    history.add_argument("--json", action="store_true",
                         help="one JSON object instead of text; it carries every diff, with or without NUMBER")
    history.set_defaults(fn=cmd_config_history)


def cmd_config_history(args: argparse.Namespace) -> int:
    url = args.database_url or os.environ.get("DATABASE_URL", "")
    if not url:
        _error("no database given: use --database-url URL or set DATABASE_URL")
        return EXIT_BAD_INPUT
    number = None
    if args.number is not None:
        number = to_e164(args.number) or args.number.strip()
    if not structlog.is_configured():
        # Migrations log; stdout carries the command's output, so logs go to stderr.
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    return asyncio.run(_history(url, number, sys.stdout, as_json=args.json))


async def _history(url: str, number: str | None, out: TextIO, *, as_json: bool) -> int:
    shown = redact(url)
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except ValueError as bad:  # asyncpg's ClientConfigurationError is one too
        _error(f"bad database URL {shown}: {_scrub(str(bad), url)}")
        return EXIT_BAD_INPUT
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:  # OSError: also TimeoutError
        _error(f"database {shown} unreachable: {_describe(problem, url)}")
        return EXIT_UNAVAILABLE
    try:
        await migrate(conn)
        versions = await config_history(conn, number)
    except StorageError as refused:
        _error(str(refused))
        return EXIT_BAD_INPUT
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
        _error(f"database {shown} failed: {_describe(problem, url)}")
        return EXIT_UNAVAILABLE
    finally:
        try:
            await conn.close(timeout=CONNECT_TIMEOUT_S)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()  # gone or hanging; it only read
    if as_json:
        write_json(out, versions, number)
    else:
        write_text(out, versions, number)
    return EXIT_OK


def write_text(out: TextIO, versions: list[ConfigVersion], number: str | None) -> None:
    """One line per version, then one per number it changed; with a number asked for, its diff below."""
    if not versions:
        out.write("no configuration version recorded\n" if number is None else f"no version changed {number}\n")
        return
    for v in versions:
        when = v.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.write(f"{v.version}  {when}  {v.author}  {v.content_hash[:SHORT_HASH]}\n")
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
                "content_hash": v.content_hash,
                "changes": [{"number": c.number, "change": c.change, "diff": c.diff} for c in v.changes],
            }
            for v in versions
        ],
    }
    out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _error(message: str) -> None:
    print(f"fairline: {message}", file=sys.stderr)


def _scrub(text: str, url: str) -> str:
    """text with the URL's password (user part or ?password=) replaced by ***, in case an error message quotes it."""
    parts = urlsplit(url)
    secrets = {parts.password, unquote(parts.password or "")}
    secrets.update(v for k, v in parse_qsl(parts.query) if k.lower() == "password")
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _describe(problem: BaseException, url: str) -> str:
    return _scrub(str(problem), url) or type(problem).__name__
