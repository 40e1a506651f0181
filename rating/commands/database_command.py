"""What every command that works on PostgreSQL shares: the --database-url option, the connection
(migrations first), and the exit status by whose fault a failure is.

Exit status: 0 done; 2 bad usage or input; 3 the database is unreachable or failed (a command may
add its own, as `cdr import`'s 1 for rejected lines). Database URLs are shown with the password as
***, also inside error messages that quote them.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING

from plumbing.redaction import redact, scrub
from rating.errors import RatingError

if TYPE_CHECKING:
    import asyncpg

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

CONNECT_TIMEOUT_S = 5.0

Work = Callable[["asyncpg.Connection"], Awaitable[int]]


class UnreadableInput(RatingError):
    """The input file could be opened but reading it failed."""


def add_database_url(parser: argparse.ArgumentParser) -> None:
    """The --database-url option every database command takes (with_database reads it)."""
    parser.add_argument("--database-url", metavar="URL",
                        help="PostgreSQL URL; default $DATABASE_URL (put the password in ~/.pgpass or the URL)")


def error(message: str) -> None:
    print(f"fairline: {message}", file=sys.stderr)


def with_database(args: argparse.Namespace, work: Work) -> int:
    """Connect to $DATABASE_URL / --database-url, migrate, run `work`; exit 2 bad input, 3 database trouble.

    The URL is shown with its password as ***, also inside error messages that quote it.
    """
    import asyncio

    import structlog

    url = args.database_url or ""  # $DATABASE_URL is in it already, put there by fairline's composition root
    if not url:
        error("no database given: use --database-url URL or set DATABASE_URL")
        return EXIT_BAD_INPUT
    if not structlog.is_configured():
        # Migrations log; stdout carries the command's output (a CSV, JSON), so logs go to stderr.
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
    # asyncio.run turns a first Ctrl-C into a cancellation that waits for the next await, which never
    # comes while a command blocks reading its input (a pipe, a terminal): KeyboardInterrupt at once
    # instead, wherever it lands. A transaction not committed is rolled back, by the unwinding or by
    # PostgreSQL when the connection drops.
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        return asyncio.run(_connected(url, work))
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


async def _connected(url: str, work: Work) -> int:
    import asyncpg

    from rating.storage import billing
    from rating.storage.database import StorageError, migrate

    shown = redact(url)
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except ValueError as bad:  # asyncpg's ClientConfigurationError is one too
        error(f"bad database URL {shown}: {scrub(str(bad), url)}")
        return EXIT_BAD_INPUT
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
        error(f"database {shown} unreachable: {_describe(problem, url)}")
        return EXIT_UNAVAILABLE
    try:
        await migrate(conn)
        return await work(conn)
    except (billing.UnknownCustomer, UnreadableInput, StorageError) as refused:
        error(str(refused))
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        raise  # stdout's reader went away (`| head`): not the database's fault
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
        error(f"database {shown} failed: {_describe(problem, url)}")
        return EXIT_UNAVAILABLE
    finally:
        try:
            await conn.close(timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()  # gone or hanging; nothing is pending: every write committed or rolled back


def _describe(problem: BaseException, url: str) -> str:
    return scrub(str(problem), url) or type(problem).__name__
