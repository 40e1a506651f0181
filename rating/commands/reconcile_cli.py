"""`fairline reconcile`: Asterisk's own CDR file against fairline's rated CDRs, and --import of what fairline lacks.

Reads Asterisk's CDR file (--asterisk-cdr, default $FAIRLINE_ASTERISK_CDR; written by
cdr_custom with dialplan/cdr_custom.conf) and PostgreSQL (--database-url, default
$DATABASE_URL; migrations first). Exit status: 0 no differences; 1 differences (after
--import: those left); 2 bad usage or input; 3 the database is unreachable or failed.
The comparison is rating/core/reconcile.py; this module parses arguments, reads the file and
the database, and prints. The composition root (ari_app/cli.py) calls register().
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rating.commands.billing_cli import RatesLoader
from rating.commands.database_command import EXIT_BAD_INPUT, EXIT_OK, add_database_url, with_database
from plumbing.clock import utc_now

# The comparison (rating/core/reconcile.py) prices calls, so it brings the tariff and its holiday
# calendars; it and the driver are imported where used, not here: fairline's composition root
# registers this command for every run, `fairline --help` included.
if TYPE_CHECKING:
    import asyncpg

    from rating.core.cdr import RatedCdr
    from rating.core.reconcile import (
        AsteriskCall,
        DirectoryEntry,
        FairlineCdr,
        MissingInFairline,
        Reconciliation,
        Window,
    )
    from rating.core.tariff import RateTable

EXIT_DIFFERENCES = 1
MAX_SETTLE_S = Decimal(86400)
# rating.core.reconcile.SETTLE, which --help shows; a unit test checks the two agree.
DEFAULT_SETTLE = timedelta(seconds=10)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *,
             load_rates: RatesLoader | None = None) -> None:
    """Add `fairline reconcile`. With load_rates, --import prices with --config's tariff (default $FAIRLINE_CONFIG)."""
    rec = subparsers.add_parser(
        "reconcile", help="compare Asterisk's own call records with fairline's CDRs",
        description="List every inbound call of the window that Asterisk recorded and fairline has no CDR of, "
                    "and every CDR of fairline that Asterisk has no record of, each with the likely reason. "
                    "A call is in the window when it started there. Calls on one side only that ended within "
                    "the settle margin are left for the next run: either side may still be writing them. "
                    "Exit status 0 when both sides agree, 1 when they differ.")
    rec.add_argument("--since", required=True, type=instant, metavar="WHEN",
                     help="ISO 8601 date or time, e.g. 2026-11-25 or 2026-11-25T14:00:00+01:00 (UTC without offset)")
    rec.add_argument("--until", type=instant, metavar="WHEN", help="end of the window (exclusive); default: now")
    rec.add_argument("--asterisk-cdr", type=Path, metavar="FILE",
                     help="Asterisk's CDR file (astlogdir/cdr-custom/fairline-cdr.csv); default $FAIRLINE_ASTERISK_CDR")
    add_database_url(rec)
    rec.add_argument("--settle", type=settle_seconds, default=DEFAULT_SETTLE, metavar="SECONDS",
                     help=f"calls that ended this recently are not judged yet; default {DEFAULT_SETTLE.seconds}")
    rec.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    rec.add_argument("--import", dest="import_missing", action="store_true",
                     help="store a rated CDR (source 'asterisk') for each call only Asterisk has, built from its "
                          "record, then compare again; a call fairline took is imported only when its own CDR "
                          "is not waiting in --spool-dir")
    rec.add_argument("--spool-dir", type=Path, metavar="DIR",
                     help="with --import: the spool directory of the fairline that took the calls, read only; "
                          "default $FAIRLINE_SPOOL_DIR, without either no call fairline took is imported")
    if load_rates is not None:
        rec.add_argument("--config", type=Path, metavar="FILE",
                         help="with --import: price with this configuration's tariff; default $FAIRLINE_CONFIG, "
                              "without either the published rates")
    rec.set_defaults(fn=lambda args: _cmd_reconcile(args, load_rates))


def instant(text: str) -> datetime:
    """argparse type for --since/--until: an ISO 8601 date or date and time; UTC when it has no offset."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or time, e.g. 2026-11-25 or 2026-11-25T14:00:00+01:00; got {text!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def settle_seconds(text: str) -> timedelta:
    """argparse type for --settle: seconds, 0 to a day."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not 0 <= value <= MAX_SETTLE_S:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {MAX_SETTLE_S}; got {text!r}")
    return timedelta(seconds=float(value))


def _cmd_reconcile(args: argparse.Namespace, load_rates: RatesLoader | None) -> int:
    from rating.core.reconcile import AsteriskCdrError, Window
    from rating.core.tariff import DEFAULT_RATES

    try:
        window = Window(args.since, args.until)
    except ValueError as bad:
        return _error(str(bad))
    # $FAIRLINE_ASTERISK_CDR and $FAIRLINE_CONFIG are in args already (fairline's composition root).
    path = Path(args.asterisk_cdr) if args.asterisk_cdr else None
    if path is None:
        return _error("no Asterisk CDR file given: use --asterisk-cdr FILE or set FAIRLINE_ASTERISK_CDR")
    try:
        calls = read_asterisk_calls(path)
    except OSError as problem:
        return _error(f"cannot read {path}: {problem.strerror or problem}")
    except AsteriskCdrError as bad:
        return _error(f"{path}: {bad}")
    rates = DEFAULT_RATES
    config = getattr(args, "config", None)
    if args.import_missing and load_rates is not None and config:
        try:
            rates = load_rates(Path(config))
        except ValueError as bad:
            return _error(str(bad))

    waiting = read_spool(Path(args.spool_dir)) if args.import_missing and args.spool_dir else None

    async def work(conn: asyncpg.Connection) -> int:
        found = await _reconcile(conn, calls, window, args.settle)
        imported: list[RatedCdr] = []
        refused: list[tuple[str, str]] = []
        if args.import_missing and found.missing_in_fairline:
            imported, refused = await import_missing(conn, found.missing_in_fairline, rates, waiting)
            found = await _reconcile(conn, calls, window, args.settle)
        if args.json:
            write_json(sys.stdout, found, imported if args.import_missing else None, refused)
        else:
            write_table(sys.stdout, found, imported, refused)
        return EXIT_DIFFERENCES if found.differences else EXIT_OK

    return with_database(args, work)


def _error(message: str) -> int:
    print(f"fairline: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def read_asterisk_calls(path: Path) -> dict[str, AsteriskCall]:
    """The inbound calls in Asterisk's CDR file; raises OSError or AsteriskCdrError."""
    from rating.core.reconcile import inbound_calls, parse_asterisk_cdr

    # newline="": the csv module handles line ends itself (a quoted field may hold one).
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return inbound_calls(parse_asterisk_cdr(f))


def read_spool(directory: Path) -> dict[str, str] | None:
    """The call ids whose CDR waits in fairline's spool directory, with the file; None (and a warning) if unreadable."""
    from rating.storage.spool import waiting_call_ids

    try:
        return waiting_call_ids(directory)
    except OSError as problem:
        print(f"fairline: cannot read the spool directory {directory}: {problem.strerror or problem}; "
              "no call fairline took is imported", file=sys.stderr)
        return None


async def _reconcile(conn: asyncpg.Connection, calls: dict[str, AsteriskCall], window: Window,
                     settle: timedelta) -> Reconciliation:
    from rating.core.reconcile import nodes, reconcile

    in_window = [c.call_id for c in calls.values() if c.started_at in window]
    # The file speaks for its own nodes; without a call (an empty file) every CDR is compared with it.
    cdrs = await fetch_cdrs(conn, window, in_window, nodes(calls.values()) if calls else None)
    return reconcile(calls.values(), cdrs, window, now=utc_now(), settle=settle)


# -------------------------------------------------------------------- database


# The window's CDRs: the billing months around it bound the partitions read (decision 0033).
IN_WINDOW = """
SELECT call_id, did, started_at, ended_at, source, end_estimated FROM cdrs
WHERE started_at >= $1 AND ($2::timestamptz IS NULL OR started_at < $2)
  AND ($3::text[] IS NULL OR node = ANY($3::text[]))
  AND billing_month >= $4 AND billing_month <= coalesce($5, 'infinity'::date)
"""
_WINDOW_AND_CALLS = IN_WINDOW + """UNION
SELECT call_id, did, started_at, ended_at, source, end_estimated FROM cdrs WHERE call_id = ANY($6::text[])
"""


async def fetch_cdrs(conn: asyncpg.Connection, window: Window, call_ids: Sequence[str],
                     nodes: Collection[str] | None) -> list[FairlineCdr]:
    """The CDRs of `nodes` (None: of any) that started in the window, and those of the given call ids wherever they started."""
    from rating.core.partitions import billing_months_around
    from rating.core.reconcile import FairlineCdr

    # The billing months the window's calls can have: cdrs is partitioned by them (decision 0033),
    # so the query reads those months' partitions only.
    lowest, highest = billing_months_around(window.since, window.until)
    rows = await conn.fetch(
        _WINDOW_AND_CALLS, window.since, window.until, None if nodes is None else sorted(nodes), lowest, highest,
        list(call_ids))
    return [FairlineCdr(r["call_id"], r["did"], r["started_at"], r["ended_at"], r["source"], r["end_estimated"])
            for r in rows]


async def fetch_directory(conn: asyncpg.Connection, numbers: Sequence[str]) -> dict[str, DirectoryEntry]:
    """Owner and type of each of the numbers (E.164) that is in the `numbers` table."""
    from rating.core.reconcile import DirectoryEntry
    from rating.core.tariff import NumberType

    rows = await conn.fetch("SELECT e164, customer_id, number_type FROM numbers WHERE e164 = ANY($1::text[])",
                            list(numbers))
    return {r["e164"]: DirectoryEntry(r["customer_id"], NumberType(r["number_type"])) for r in rows}


async def import_missing(conn: asyncpg.Connection, missing: Sequence[MissingInFairline], rates: RateTable,
                         waiting: Mapping[str, str] | None) -> tuple[list[RatedCdr], list[tuple[str, str]]]:
    """Store a rated CDR for each call, as `fairline cdr import` does (rate_record, insert_cdrs).

    A call fairline took is left alone while its own CDR may still come (`waiting`: the call
    ids in fairline's spool directory, None when it could not be read). Returns the CDRs that
    were new (a call id stored meanwhile is left as it is: an import never overwrites a row)
    and the calls that were not imported, with why.
    """
    from rating.core.reconcile import NotImportable, asterisk_cdr, e164, not_importable_yet
    from rating.storage import billing
    from rating.storage.database import insert_cdrs

    numbers = sorted({key for m in missing if m.call.did is not None and (key := e164(m.call.did)) is not None})
    directory = await fetch_directory(conn, numbers)
    cdrs: list[RatedCdr] = []
    refused: list[tuple[str, str]] = []
    for m in missing:
        if (not_yet := not_importable_yet(m.call, waiting)) is not None:
            refused.append((m.call.call_id, not_yet))
            continue
        try:
            cdrs.append(asterisk_cdr(m.call, directory, rates))
        except NotImportable as no:
            refused.append((m.call.call_id, str(no)))
    new: set[str] = set()
    for start in range(0, len(cdrs), billing.IMPORT_BATCH):
        new |= await insert_cdrs(conn, cdrs[start:start + billing.IMPORT_BATCH])
    return [c for c in cdrs if c.call.call_id in new], refused


# ------------------------------------------------------------------ output


def write_table(out: TextIO, found: Reconciliation, imported: Sequence[RatedCdr],
                refused: Sequence[tuple[str, str]]) -> None:
    from rating.core.reconcile import SOURCE

    for cdr in imported:
        c = cdr.call
        out.write(f"imported {c.call_id}: {c.did} {c.disposition.value}, {cdr.price.billable_seconds} s, "
                  f"{cdr.price.list_price_eur} EUR (source {SOURCE})\n")
    for call_id, reason in refused:
        out.write(f"not imported {call_id}: {reason}\n")
    w = found.window
    until = _utc(w.until) if w.until is not None else "now"
    out.write(f"Calls started {_utc(w.since)} .. {until} UTC: Asterisk {found.asterisk_calls}, "
              f"fairline {found.fairline_cdrs}, in both {found.matched}\n")
    if found.limited:
        out.write(f"{found.limited} refused by the dialplan over a concurrent-call limit (busy; never fairline's)\n")
    if found.blocked:
        out.write(f"{found.blocked} blocked callers refused by the dialplan fallback (no CDR by design)\n")
    if found.lost_with_asterisk:
        out.write(f"{found.lost_with_asterisk} ended when Asterisk stopped, before it wrote a record of them "
                  "(fairline's CDRs say end_estimated)\n")
    if found.unsettled:
        out.write(f"{len(found.unsettled)} on one side only ended after {_utc(found.settled_before)} UTC: "
                  f"compared next time\n")
    if found.missing_in_fairline:
        out.write(f"\nmissing in fairline: {len(found.missing_in_fairline)}\n")
        _table(out, ["call id", "started (UTC)", "number", "caller", "Asterisk", "reason"], [
            [m.call.call_id, _utc(m.call.started_at), m.call.did or "?", m.call.caller or "",
             m.call.disposition, m.reason]
            for m in found.missing_in_fairline
        ])
    if found.missing_in_asterisk:
        out.write(f"\nmissing in Asterisk: {len(found.missing_in_asterisk)}\n")
        _table(out, ["call id", "started (UTC)", "number", "source", "reason"], [
            [m.cdr.call_id, _utc(m.cdr.started_at), m.cdr.did, m.cdr.source, m.reason]
            for m in found.missing_in_asterisk
        ])
    if found.differences:
        out.write(f"\n{len(found.missing_in_fairline)} missing in fairline, "
                  f"{len(found.missing_in_asterisk)} missing in Asterisk\n")
    else:
        out.write("no differences\n")


def write_json(out: TextIO, found: Reconciliation, imported: Sequence[RatedCdr] | None,
               refused: Sequence[tuple[str, str]]) -> None:
    """One object; `imported` and `not_imported` only with --import."""
    doc: dict[str, Any] = {
        "since": _iso(found.window.since),
        "until": _iso(found.window.until) if found.window.until is not None else None,
        "settled_before": _iso(found.settled_before),
        "asterisk_calls": found.asterisk_calls,
        "fairline_cdrs": found.fairline_cdrs,
        "matched": found.matched,
        "unsettled": list(found.unsettled),
        "not_for_fairline": found.not_for_fairline,
        "limited": found.limited,
        "blocked": found.blocked,
        "lost_with_asterisk": found.lost_with_asterisk,
        "missing_in_fairline": [
            {"call_id": m.call.call_id, "linkedid": m.call.linkedid, "channel": m.call.channel, "did": m.call.did,
             "caller": m.call.caller, "started_at": _iso(m.call.started_at),
             "answered_at": _iso(m.call.answered_at) if m.call.answered_at else None,
             "ended_at": _iso(m.call.ended_at), "asterisk_disposition": m.call.disposition,
             "path": m.call.path.value, "reason": m.reason}
            for m in found.missing_in_fairline
        ],
        "missing_in_asterisk": [
            {"call_id": m.cdr.call_id, "did": m.cdr.did, "started_at": _iso(m.cdr.started_at),
             "ended_at": _iso(m.cdr.ended_at), "source": m.cdr.source, "reason": m.reason}
            for m in found.missing_in_asterisk
        ],
    }
    if imported is not None:
        doc["imported"] = [
            {"call_id": c.call.call_id, "did": c.call.did, "disposition": c.call.disposition.value,
             "customer_id": c.customer_id, "billable_seconds": c.price.billable_seconds,
             "list_price_eur": str(c.price.list_price_eur), "rating_error": c.rating_error}
            for c in imported
        ]
        doc["not_imported"] = [{"call_id": call_id, "reason": reason} for call_id, reason in refused]
    out.write(json.dumps(doc, indent=2) + "\n")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")


def _table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(map(len, column)) for column in zip(headers, *rows)]
    for row in (headers, *rows):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
