"""The `fairline` command: the composition root of the program."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import date
from typing import TYPE_CHECKING, Any
from pathlib import Path

from ari_app import logs, settings as settings_mod
from ari_app.commands import config_history_cli, config_store_cli, queues_cli
from ari_app.errors import AriUnauthorized, ConfigError
from plumbing.redaction import redact
from ari_app.commands.queues_cli import QUEUE_STATUS_FILE
from rating.commands import billing_cli, reconcile_cli, recordings_cli, voicemail_cli
from console import commands as console_commands

# Only what building the parser needs is imported here: `fairline --help` and a mistyped
# option answer at once. Each command imports its own heavy modules (the YAML loader, the
# tariff with its holiday calendars, phonenumbers, asyncio, asyncpg, aiohttp) when it runs;
# a unit test (tests/unit/test_startup.py) keeps them out of this module's imports.
if TYPE_CHECKING:
    import asyncio

    import asyncpg
    import structlog

    from ari_app.core.model import Config
    from ari_app.runtime.app import RecordingDirs
    from rating.core.tariff import RateTable

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
# What a shell reports for a program ended by SIGINT (Ctrl-C) and SIGPIPE (its reader went away): 128 + signal.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The one read of the environment: each option not given takes its variable (ari_app/settings.py).
    settings_mod.fill_from_environment(args, os.environ)
    # Logs go to stderr, so command output on stdout (CSV, JSON) stays clean; `run` picks its own format.
    logs.configure(getattr(args, "log_format", "auto"), getattr(args, "log_level", "info"))
    try:
        status = int(args.fn(args))
        sys.stdout.flush()  # here, not at exit, where a reader gone would be reported with a traceback
        return status
    except KeyboardInterrupt:  # Ctrl-C: what was not committed is rolled back; stop quietly, as any tool does
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `fairline rate | head -1`: the reader has what it wanted
        # Output still buffered would fail again when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairline", description="Call control and fair billing for virtual numbers on Asterisk.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the ARI application (in Asterisk's call path)",
                         description="Connect to Asterisk's ARI and PostgreSQL, apply database migrations, "
                                     "and handle every call Asterisk hands to the Stasis app. Stops cleanly on SIGTERM or Ctrl-C.")
    run.add_argument("--config", help="numbers configuration (YAML); default $FAIRLINE_CONFIG or ./fairline.yaml")
    run.add_argument("--ari-url", help="Asterisk HTTP address; default $FAIRLINE_ARI_URL or http://127.0.0.1:8088")
    run.add_argument("--ari-app", help="Stasis application name; default $FAIRLINE_ARI_APP or fairline")
    run.add_argument("--secrets", help="file with ARI_USER= and ARI_PASSWORD= lines, mode 600; default $FAIRLINE_SECRETS")
    run.add_argument("--database-url", help="PostgreSQL URL; default $DATABASE_URL (put the password in ~/.pgpass or the URL)")
    run.add_argument("--author", help="who applies this configuration, recorded with its version; default the OS user")
    run.add_argument("--spool-dir", help="where CDRs wait on disk while PostgreSQL is unreachable; "
                                          "default $FAIRLINE_SPOOL_DIR or ./spool")
    run.add_argument("--recordings-dir", help="where call recordings are kept, readable by fairline's user only; "
                                              "default $FAIRLINE_RECORDINGS_DIR or ./recordings")
    run.add_argument("--asterisk-recordings-dir",
                     help="where Asterisk writes recordings (its astspooldir/recording) as seen from fairline; "
                          "default $FAIRLINE_ASTERISK_RECORDINGS_DIR or /var/spool/asterisk/recording")
    run.add_argument("--greetings-dir",
                     help="where customers' uploaded voicemail greetings are written from the database when a "
                          "configuration version names them: the same absolute path on every node and for the "
                          f"console; default $FAIRLINE_GREETINGS_DIR or {settings_mod.DEFAULT_GREETINGS_DIR}")
    run.add_argument("--asterisk-cdr",
                     help="Asterisk's CDR file (dialplan/cdr_custom.conf) as seen from fairline: the end of a call that "
                          "ended while fairline was disconnected is read there; default $FAIRLINE_ASTERISK_CDR "
                          "(none: such an end is estimated)")
    run.add_argument("--status-port", help="loopback port of /healthz and /metrics; default $FAIRLINE_STATUS_PORT "
                                           f"or {settings_mod.DEFAULT_STATUS_PORT}; 0 serves neither")
    run.add_argument("--shed-after-ms", type=int,
                     help="overload: a new call whose caller would wait longer than this for ringing takes the "
                          "dialplan fallback instead (default $FAIRLINE_SHED_AFTER_MS or 150; 0 never sheds)")
    run.add_argument("--loop-tick-ms",
                     help="how often the event loop's lag is sampled, in ms (/metrics); default "
                          f"$FAIRLINE_LOOP_TICK_MS or {settings_mod.DEFAULT_LOOP_TICK_MS}; 1 to measure short stalls "
                          "(a diagnostic: it wakes the loop every millisecond)")
    run.add_argument("--ami-host", help="Asterisk's AMI, where each new configuration version's dialplan fallback "
                                        f"is loaded; default $FAIRLINE_AMI_HOST or {settings_mod.DEFAULT_AMI_HOST} "
                                        "(AMI_USER and AMI_SECRET come from --secrets)")
    run.add_argument("--ami-port", help=f"default $FAIRLINE_AMI_PORT or {settings_mod.DEFAULT_AMI_PORT}")
    run.add_argument("--asterisk-fallback",
                     help="the fallback file extensions.conf includes, as seen from fairline; default "
                          f"$FAIRLINE_ASTERISK_FALLBACK or {settings_mod.DEFAULT_ASTERISK_FALLBACK}")
    run.add_argument("--smtp-host", help="the SMTP server voicemail messages are mailed through; default "
                                         "$FAIRLINE_SMTP_HOST (none: messages are kept, listed by `fairline "
                                         "voicemail list`, and mailed once it is set)")
    run.add_argument("--smtp-port", help="default $FAIRLINE_SMTP_PORT or 25 (587 is the usual port with STARTTLS)")
    run.add_argument("--smtp-from", help="the From address of voicemail e-mails; default $FAIRLINE_SMTP_FROM")
    run.add_argument("--smtp-starttls", choices=["yes", "no"],
                     help="STARTTLS before anything else (and before the login: SMTP_USER and SMTP_PASSWORD of "
                          "--secrets); default $FAIRLINE_SMTP_STARTTLS or no")
    run.add_argument("--log-level", choices=["debug", "info", "warning"], default="info",
                     help="debug adds one line per ARI event fairline acts on")
    run.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                     help="json for production, console (key=value) in a terminal; auto picks by whether stderr is a terminal")
    run.set_defaults(fn=cmd_run)

    rate = sub.add_parser("rate", help="price calls given as JSON Lines on stdin",
                          description="Read one call per line on stdin, e.g. "
                                      '{"call_id": "c1", "number": "+31201234567", "number_type": "local", '
                                      '"start": "2026-11-23T18:59:30+01:00", "answer": "2026-11-23T18:59:40+01:00", '
                                      '"end": "2026-11-23T19:01:10+01:00"} ("answer": null when unanswered), and write '
                                      "each with billable_seconds, peak_seconds, offpeak_seconds, setup_eur, usage_eur, "
                                      "list_price_eur and fair_use_eligible added. A bad line becomes "
                                      '{"call_id": ..., "error": ...}; the rest go on and the exit status is 1.')
    rate.add_argument("--config", type=Path, help="take the tariff from this configuration file's 'tariff' "
                                                  "section; default $FAIRLINE_CONFIG, else the published rates")
    rate.set_defaults(fn=cmd_rate)

    reload = sub.add_parser("reload", help="store the configuration file as the newest version; every fairline applies it",
                            description="The same as `fairline config apply FILE`, with the author the OS user and the "
                                        "reason 'fairline reload' unless given: validate the file, print what it changes, "
                                        "store it as a new version. Every fairline on the database applies it within a "
                                        "second; calls in progress keep their flow. An invalid file stores nothing.")
    reload.add_argument("--config", help="default $FAIRLINE_CONFIG or ./fairline.yaml")
    reload.add_argument("--author", help="who makes this change; default the OS user")
    reload.add_argument("--reason", default="fairline reload", help="why; default 'fairline reload'")
    reload.add_argument("--database-url", help="PostgreSQL URL; default $DATABASE_URL")
    reload.set_defaults(fn=cmd_reload)

    dialplan = sub.add_parser("dialplan", help="Asterisk dialplan generated from the configuration")
    dialplan_sub = dialplan.add_subparsers(dest="dialplan_command", required=True, metavar="SUBCOMMAND")
    generate = dialplan_sub.add_parser(
        "generate", help="print the fallback dialplan used while fairline is not connected",
        description="Print the context fairline-fallback: for each number, Dial() of its route's first target "
                    "(or its announcement). Install it as fairline-fallback.conf next to extensions.conf, which "
                    "includes it.")
    generate.add_argument("file", type=Path, help="the configuration (YAML)")
    generate.set_defaults(fn=cmd_dialplan_generate)
    dialable = dialplan_sub.add_parser(
        "dialable", help="print the phones the configuration may ring, as the cluster's Kamailio loads them",
        description="Print every phone the configuration may ring (the fallback dialplan's fairline-targets) as "
                    "a db_text table for Kamailio's htable `dialable` (cluster/kamailio.cfg, decision 0034): "
                    "Kamailio refuses with 403 any outbound call to a number not in it.")
    dialable.add_argument("file", type=Path, help="the configuration (YAML)")
    dialable.set_defaults(fn=cmd_dialplan_dialable)
    carrier_list = dialplan_sub.add_parser(
        "carrier-list", help="print the carrier's addresses as the cluster's Kamailio loads them",
        description="Print the given IPv4 addresses as a db_text table for Kamailio's htable `carrier` "
                    "(cluster/kamailio.cfg, decision 0034): Kamailio takes new calls from these addresses only.")
    carrier_list.add_argument("address", nargs="+", help="a source address of the carrier (IPv4)")
    carrier_list.set_defaults(fn=cmd_dialplan_carrier_list)
    publish = dialplan_sub.add_parser(
        "publish", help="generate the fallback dialplan and load it into the running Asterisk (AMI)",
        description="Generate the context fairline-fallback from the configuration, write it to the file "
                    "Asterisk's extensions.conf includes (with the text's SHA-256 in an extension 'digest'), reload "
                    "pbx_config over AMI and check that Asterisk shows that digest. The AMI user needs the class config only "
                    "(docs/operations.md). Exit 2: bad input or AMI refused the user; 3: Asterisk unreachable "
                    "or the dialplan not loaded.")
    publish.add_argument("--config", help="numbers configuration (YAML); default $FAIRLINE_CONFIG or ./fairline.yaml")
    publish.add_argument("--secrets", help="file with AMI_USER= and AMI_SECRET= lines, mode 600; default $FAIRLINE_SECRETS")
    publish.add_argument("--ami-host", help=f"default $FAIRLINE_AMI_HOST or {settings_mod.DEFAULT_AMI_HOST}")
    publish.add_argument("--ami-port", help=f"default $FAIRLINE_AMI_PORT or {settings_mod.DEFAULT_AMI_PORT}")
    publish.add_argument("--asterisk-fallback",
                         help="the file extensions.conf includes, as seen from fairline; default "
                              f"$FAIRLINE_ASTERISK_FALLBACK or {settings_mod.DEFAULT_ASTERISK_FALLBACK}")
    publish.set_defaults(fn=cmd_dialplan_publish)

    billing_cli.register(sub, load_rates=_configured_rates)
    reconcile_cli.register(sub, load_rates=_configured_rates)
    queues_cli.register(sub)
    recordings_cli.register(sub, default_recordings_dir=settings_mod.DEFAULT_RECORDINGS_DIR)
    voicemail_cli.register(sub)
    console_commands.register(sub)  # `fairline console` and `fairline users` (decision 0032)

    cfg = sub.add_parser("config", help="work with the numbers configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = cfg_sub.add_parser("check", help="validate a configuration file without touching anything",
                               description="Exit 0 when FILE is valid; otherwise list every problem with its line and exit 2.")
    check.add_argument("file", type=Path)
    check.set_defaults(fn=cmd_config_check)
    config_history_cli.register(cfg_sub)
    config_store_cli.register(cfg_sub)
    return parser


def _configured_rates(path: Path) -> RateTable:
    """The tariff of the configuration file at `path`; raises ConfigError (a ValueError) when it is invalid."""
    from ari_app.config import yaml_loader as config_mod

    return config_mod.load(path).rates


def cmd_rate(args: argparse.Namespace) -> int:
    from ari_app.config import yaml_loader as config_mod
    from rating.commands.rate_cli import run_rate
    from rating.core.tariff import DEFAULT_RATES

    rates = DEFAULT_RATES
    if args.config is not None:
        try:
            rates = config_mod.load(Path(args.config)).rates
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return EXIT_BAD_INPUT
    return run_rate(sys.stdin.buffer, sys.stdout, rates)


def cmd_dialplan_generate(args: argparse.Namespace) -> int:
    from ari_app.dialplan_gen import fallback_dialplan

    return print_from_config(args.file, fallback_dialplan)


def cmd_dialplan_dialable(args: argparse.Namespace) -> int:
    from ari_app.dialplan_gen import dialable, edge_list

    return print_from_config(args.file, lambda cfg: edge_list(dialable(cfg)))


def cmd_dialplan_carrier_list(args: argparse.Namespace) -> int:
    import ipaddress

    from ari_app.dialplan_gen import edge_list

    try:
        addresses = {str(ipaddress.IPv4Address(a)) for a in args.address}
    except ipaddress.AddressValueError as exc:
        print(f"not an IPv4 address: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(edge_list(addresses))
    return EXIT_OK


def print_from_config(file: Path, render: Callable[[Config], str]) -> int:
    """Print what `render` makes of the configuration `file`; a bad file prints its error, exit 2."""
    from ari_app.config import yaml_loader as config_mod

    try:
        cfg = config_mod.load(file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(render(cfg))
    return EXIT_OK


def cmd_dialplan_publish(args: argparse.Namespace) -> int:
    import asyncio

    from ari_app.ami.fallback import publish_fallback
    from ari_app.config import yaml_loader as config_mod
    from ari_app.dialplan_gen import CONTEXT, fallback_dialplan
    from ari_app.errors import AmiError, AmiRefused, AmiUnauthorized

    config_path = Path(args.config or settings_mod.DEFAULT_CONFIG)
    try:
        ami = settings_mod.ami_from_arguments(ami_host=args.ami_host, ami_port=args.ami_port, secrets=args.secrets,
                                              asterisk_fallback=args.asterisk_fallback)
        cfg = config_mod.load(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        done = asyncio.run(publish_fallback(ami, fallback_dialplan(cfg)))
    except (AmiUnauthorized, AmiRefused) as exc:
        print(f"fallback dialplan not published: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AmiError as exc:
        print(f"fallback dialplan not published: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"{config_path}: {CONTEXT} ({done.extensions} extension(s)) written to {done.file} and reloaded "
          f"through AMI at {ami.host}:{ami.port}; Asterisk runs it ({done.digest})")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    from ari_app.config import yaml_loader as config_mod

    try:
        cfg = config_mod.load(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.file}: ok, {len(cfg.numbers)} number(s)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    import structlog

    from ari_app import health
    from ari_app.config import yaml_loader as config_mod
    from ari_app.config_versions import default_author
    from ari_app.runtime.app import RecordingDirs

    log = structlog.get_logger("fairline")
    try:
        # The environment is in args already (main); {}: nothing is read from it twice.
        st = settings_mod.from_environment(
            {}, ari_url=args.ari_url, ari_app=args.ari_app, secrets=args.secrets,
            database_url=args.database_url, config=args.config, spool_dir=args.spool_dir,
        )
        cfg = config_mod.load(st.config_path)
        status_port = health.status_port(args.status_port, {})
        loop_tick_s = settings_mod.loop_tick_from_argument(args.loop_tick_ms)
        smtp = settings_mod.smtp_from_arguments(smtp_host=args.smtp_host, smtp_port=args.smtp_port,
                                                smtp_from=args.smtp_from, smtp_starttls=args.smtp_starttls,
                                                secrets=args.secrets)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config.invalid", problem=problem)
        return EXIT_BAD_INPUT
    log.info("config.loaded", file=str(st.config_path), numbers=len(cfg.numbers))
    try:
        ami: settings_mod.AmiSettings | None = settings_mod.ami_from_arguments(
            ami_host=args.ami_host, ami_port=args.ami_port, secrets=args.secrets,
            asterisk_fallback=args.asterisk_fallback)
    except ConfigError as exc:  # routing does not need AMI; the fallback then stays as it was
        log.warning("fallback.not_published", problems=exc.problems,
                    hint="without AMI settings the dialplan fallback does not follow new configuration versions")
        ami = None
    try:
        dirs = RecordingDirs(
            asterisk=Path(args.asterisk_recordings_dir or settings_mod.DEFAULT_ASTERISK_RECORDINGS_DIR),
            store=Path(args.recordings_dir or settings_mod.DEFAULT_RECORDINGS_DIR).absolute())
        shed_ms = int(args.shed_after_ms) if args.shed_after_ms is not None else settings_mod.DEFAULT_SHED_AFTER_MS
        shed = shed_ms / 1000 if shed_ms > 0 else None
        # What is loaded by now (the modules of the call path, the phone number metadata, the
        # configuration) lives as long as the process: the garbage collector need never walk it
        # again. Each full collection of it took 35 ms, a pause every caller in set-up then waited
        # through (docs/performance.md).
        _import_call_path()
        gc.freeze()
        cdr_file = Path(args.asterisk_cdr) if args.asterisk_cdr else None
        greetings_dir = Path(args.greetings_dir or settings_mod.DEFAULT_GREETINGS_DIR).absolute()
        return asyncio.run(_run(st, cfg, args.author or default_author(), dirs, status_port, shed, ami, cdr_file,
                                smtp, loop_tick_s, greetings_dir=greetings_dir))
    except KeyboardInterrupt:
        return EXIT_OK


async def _sync_directory(conn: asyncpg.Connection, cfg: Config) -> None:
    import asyncio

    from ari_app.runtime.config_parse import directory_rows  # the rows whose digest says when to sync again
    from rating.storage.database import DirectoryNumber, sync_directory

    def rows() -> tuple[list[tuple[str, str]], list[DirectoryNumber]]:
        customers, numbers = directory_rows(cfg)
        return customers, [DirectoryNumber(*n) for n in numbers]

    # In a worker thread: 5,000 numbers' rows held the event loop 20-45 ms at once (docs/performance.md).
    customers, numbers = await asyncio.to_thread(rows)
    await sync_directory(conn, customers, numbers, date.today())


_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None], log: structlog.typing.FilteringBoundLogger) -> None:
    """Run `coro` in the background until fairline stops; its exception is logged, never lost."""
    from plumbing.tasks import spawn

    spawn(coro, name=getattr(coro, "__name__", "background"), log=log, crashed="background.failed",
          keep=_background)


async def _prepare_database(pool: asyncpg.Pool, current: Callable[[], Config], st: settings_mod.Settings,
                            stop: asyncio.Event, refused: list[str]) -> None:
    """Apply migrations and sync the directory as soon as PostgreSQL answers, retrying meanwhile.

    Calls are routed all the while; their CDRs wait in the spool. A database whose
    schema history contradicts the migrations stops fairline: that needs a person.
    """
    import asyncio

    import asyncpg
    import structlog

    from plumbing.clock import utc_now
    from rating.storage.database import StorageError, migrate
    from rating.storage.partitions import keep_partitions_ahead

    log = structlog.get_logger("fairline")
    database = redact(st.database_url)
    delay, attempts = 1.0, 0
    while not stop.is_set():
        try:
            async with pool.acquire(timeout=5) as conn:
                applied = await migrate(conn)
                await _sync_directory(conn, current())
            log.info("db.ready", database=database, migrations_applied=applied)
            # cdrs' partitions for this month and the next ones, now and daily (decision 0033).
            _spawn(keep_partitions_ahead(pool, stop, today=lambda: utc_now().date()), log)
            return
        except StorageError as exc:
            log.error("startup.refused", error=str(exc))
            refused.append(str(exc))
            stop.set()
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            # Loud the first time and then every tenth try; routing goes on, CDRs are spooled.
            if attempts % 10 == 0:
                log.error("db.unreachable", database=database, error=str(exc) or type(exc).__name__,
                          retry_in_s=delay, routing="continues; CDRs are spooled until the database answers")
        attempts += 1
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 30.0)


def pid_file(spool_dir: Path) -> Path:
    return spool_dir / "fairline.pid"


def write_pid_file(spool_dir: Path) -> None:
    spool_dir.mkdir(parents=True, exist_ok=True)
    pid_file(spool_dir).write_text(f"{os.getpid()}\n")


def cmd_reload(args: argparse.Namespace) -> int:
    from ari_app.commands.config_store_cli import cmd_config_apply
    from ari_app.config_versions import default_author

    apply = argparse.Namespace(file=Path(args.config or settings_mod.DEFAULT_CONFIG), author=args.author or default_author(),
                               reason=args.reason, role="admin", base=None, database_url=args.database_url)
    return cmd_config_apply(apply)


def _import_call_path() -> None:
    """Load what `fairline run` runs before gc.freeze(): the commands import lazily, so that
    `fairline --help` stays quick, and `_run` would otherwise load it after the freeze."""
    import importlib

    for name in ("aiohttp", "asyncpg", "ari_app.ari.client", "ari_app.runtime.app", "ari_app.runtime.live_config",
                 "rating.storage.cdr_writer", "rating.storage.database", "rating.storage.spool", "plumbing.loop_watch"):
        importlib.import_module(name)


async def _run(st: settings_mod.Settings, cfg: Config, author: str, recording_dirs: RecordingDirs,
               status_port: int | None, shed_after_s: float | None, ami: settings_mod.AmiSettings | None,
               asterisk_cdr: Path | None, smtp: settings_mod.SmtpSettings | None = None,
               loop_tick_s: float = settings_mod.DEFAULT_LOOP_TICK_MS / 1000, *,
               greetings_dir: Path = settings_mod.DEFAULT_GREETINGS_DIR) -> int:
    import asyncio

    import asyncpg
    import structlog

    from ari_app import health
    from ari_app.ari.client import AriClient
    from ari_app.ari.version import UnsupportedAsterisk
    from ari_app.runtime.app import App
    from ari_app.runtime.config_watch import ConfigWatch
    from ari_app.runtime.config_parse import prime as prime_checker
    from ari_app.runtime.live_config import LiveConfig, initial_config, load_us_states
    from rating.storage.config_store import newest_version
    from rating.storage.database import StorageError
    from rating.storage.cdr_writer import CdrWriter
    from rating.storage.spool import SpoolError
    from plumbing.loop_watch import LoopWatch

    log = structlog.get_logger("fairline")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        # min_size=0: no connection is made here. Routing never waits on the database.
        pool = await asyncpg.create_pool(st.database_url, min_size=0, max_size=4, timeout=5)
    except ValueError:
        # asyncpg's parse error can quote part of the password: say only what to fix.
        log.error("db.bad_url", database=redact(st.database_url),
                  hint="expected postgresql://USER:PASSWORD@HOST:PORT/DB with special characters percent-encoded")
        return EXIT_BAD_INPUT
    refused: list[str] = []

    async def sync_directory(config: Config) -> bool:
        try:
            async with pool.acquire(timeout=5) as conn:
                await _sync_directory(conn, config)
            return True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("db.directory_sync_failed", error=str(exc) or type(exc).__name__)
            return False

    try:
        write_pid_file(st.spool_dir)
        # The store's newest version (or the cache, or the file, without the database): decision 0021.
        cfg, origin = await initial_config(st.database_url, cfg, st.config_path, author=author,
                                           spool_dir=st.spool_dir, log=log, greetings_dir=greetings_dir)
        async with CdrWriter(pool, st.spool_dir) as writer, \
                AriClient(st.ari_url, st.ari_user, st.ari_password, st.ari_app) as ari:
            app = App(ari, cfg, cfg.rates, writer.submit, queue_status_file=st.spool_dir / QUEUE_STATUS_FILE,
                      recording_dirs=recording_dirs, shed_after_s=shed_after_s, asterisk_cdr=asterisk_cdr)
            app.config_origin = origin
            live = LiveConfig(app, sync_directory=sync_directory, ami=ami, log=log)
            watch = ConfigWatch(st.database_url, fetch_newest=newest_version, apply=live.apply,
                                spool_dir=st.spool_dir, running=origin.id, log=log, greetings_dir=greetings_dir)
            _spawn(_prepare_database(pool, lambda: app.config, st, stop, refused), log)
            _spawn(load_us_states(cfg), log)
            _spawn(prime_checker(cfg), log)  # the next version is checked against this one: config_parse.py
            _spawn(watch.run(stop), log)
            if smtp is not None:
                from ari_app.runtime.voicemail_outbox import Outbox

                log.info("voicemail.mail_on", smtp=f"{smtp.host}:{smtp.port}", starttls=smtp.starttls,
                         login=smtp.user is not None)
                _spawn(Outbox(pool, smtp, lambda: app.config, log).run(stop), log)
            elif any(c.voicemail is not None for c in cfg.customers.values()):
                log.warning("voicemail.mail_off", hint="no --smtp-host / FAIRLINE_SMTP_HOST: messages are kept "
                                                       "and listed by `fairline voicemail list`, not mailed")
            loop.add_signal_handler(signal.SIGHUP, watch.wake)  # look for a newer version now
            async with LoopWatch(log, tick_s=loop_tick_s) as loop_watch, \
                    health.StatusServer(app, writer, port=status_port, loop=loop_watch):
                await app.run(stop)
    except AriUnauthorized as exc:
        log.error("ari.unauthorized", error=str(exc), hint="check ARI_USER/ARI_PASSWORD in the secrets file against ari.conf")
        return EXIT_BAD_INPUT
    except (UnsupportedAsterisk, SpoolError, StorageError) as exc:
        log.error("startup.refused", error=str(exc))
        return EXIT_BAD_INPUT
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config.invalid", problem=problem)
        return EXIT_BAD_INPUT
    finally:
        for task in list(_background):
            task.cancel()
        await pool.close()
    if refused:
        return EXIT_BAD_INPUT
    log.info("stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
