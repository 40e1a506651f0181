"""Billing commands: `fairline cdr import`, `fair-use report`, `invoice`, `heavy-user`, `service-charge`,
`queue report`.

Each command takes --database-url (default $DATABASE_URL) and applies the
database migrations before it works. Exit status: 0 done; 1 some input lines
were rejected (the others were imported); 2 bad usage or input; 3 the database
is unreachable or failed; 130 Ctrl-C, 141 stdout's reader went away (ari_app/cli.py).
Database URLs are shown with the password as ***.

Money is printed with 4 decimals, exactly as stored: calls are rounded to 4
decimals one by one, and a total is the exact sum of its lines. Rounding a total
to cents is the accounting system's business, not fairline's.

The SQL is in rating/storage/billing.py, rating/storage/queue_report.py and rating/storage/invoice_text.py; this module parses
arguments and input, and formats output (except the text invoices, which PostgreSQL formats: invoice_text.py). The composition root (ari_app/cli.py) calls register().
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from plumbing.bounded_lines import LineTooLong, bounded_lines
from rating.errors import InvalidCall, InvalidMonth, RatingError
from rating.core import queue_policy
from rating.core.fair_use import Month
from rating.commands import partitions_cli
from rating.commands.database_command import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    UnreadableInput,
    add_database_url,
    error,
    with_database,
)

# The driver, the SQL and the tariff (with its holiday calendars) are imported by the commands
# that use them, not here: fairline's composition root registers these commands for every
# run, `fairline --help` included, and that must stay quick.
if TYPE_CHECKING:
    import asyncpg

    from rating.storage import billing, queue_report
    from rating.core.cdr import RatedCdr
    from rating.core.tariff import RateTable

EXIT_LINES_REJECTED = 1
MAX_AMOUNT_EUR = Decimal("99999999.9999")  # service_charges.amount_eur is numeric(12,4)


RatesLoader = Callable[[Path], "RateTable"]  # raises ValueError saying what is wrong with the file

_FOUR = Decimal("0.0001")
_TENTH = Decimal("0.1")
_MILLISECOND = Decimal("0.001")
_AMOUNT_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # not \d: it takes any script's digits
_IMPORT_FIELDS = ("call_id", "number", "number_type", "start", "answer", "end", "customer_id")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *,
             load_rates: RatesLoader | None = None) -> None:
    """Add the billing commands to fairline's subcommands.

    With load_rates, `cdr import` takes --config FILE and prices calls with that
    file's tariff (as `fairline rate --config` does); without, with the published rates.
    """
    db = argparse.ArgumentParser(add_help=False)
    add_database_url(db)

    cdr = subparsers.add_parser("cdr", help="work with stored call detail records")
    cdr_sub = cdr.add_subparsers(dest="cdr_command", required=True, metavar="SUBCOMMAND")
    imp = cdr_sub.add_parser(
        "import", parents=[db], help="load historic CDRs from JSON Lines",
        description="Read one call per line, the fields of `fairline rate` plus customer_id, e.g. "
                    '{"call_id": "c1", "customer_id": "acme", "number": "+31201234567", "number_type": "local", '
                    '"start": "2026-11-23T18:59:30+01:00", "answer": "2026-11-23T18:59:40+01:00", '
                    '"end": "2026-11-23T19:01:10+01:00"} ("answer": null when unanswered; "caller" optional). '
                    "Each call is priced and stored once: a call id already stored is left as it is. "
                    "Prints each rejected line with its number and why, then how many were new, already there "
                    "and rejected. Exit status 1 when any line was rejected; the others are stored all the same, "
                    "in one transaction: an import cut short (Ctrl-C, the database failing) stores nothing.")
    imp.add_argument("file", nargs="?", type=Path, metavar="FILE", help="JSON Lines file; default stdin")
    if load_rates is not None:
        imp.add_argument("--config", type=Path,
                         help="price with this configuration file's 'tariff' section; default: the published rates")
    # --config here has never read $FAIRLINE_CONFIG: importing CDRs priced by whatever file the
    # environment names would change amounts silently (fairline's composition root honours this).
    imp.set_defaults(fn=lambda args: _cmd_cdr_import(args, load_rates), environment_exempt=("config",))
    partitions_cli.register(cdr_sub)

    fair_use = subparsers.add_parser("fair-use", help="fair-use assessment")
    fair_use_sub = fair_use.add_subparsers(dest="fair_use_command", required=True, metavar="SUBCOMMAND")
    report = fair_use_sub.add_parser(
        "report", parents=[db], help="assess fair use in a month and store the result",
        description="Show the month's platform average and allowance, and per customer with an active number: "
                    "answered calls, handled calls (a person of the customer's took them: what fair use counts), "
                    "eligible handled calls, minutes, status (ok, above, contact), months above of the last 6, "
                    "and what their answered calls cost at traffic rates. Stores the result in fair_use_results, "
                    "replacing the month's earlier result.")
    _month_option(report)
    report.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    report.set_defaults(fn=_cmd_fair_use_report)

    inv = subparsers.add_parser(
        "invoice", parents=[db], help="every customer's invoice for a month",
        description="Per customer: each answered call and service charge of the month with its amount, then the "
                    "total (exact, 4 decimals). --csv writes the lines only, one row each, for a spreadsheet.")
    _month_option(inv)
    inv.add_argument("--csv", action="store_true", help="CSV lines (header first) instead of text")
    inv.set_defaults(fn=_cmd_invoice)

    heavy = subparsers.add_parser("heavy-user", help="mark or unmark a customer as heavy user for a month")
    heavy_sub = heavy.add_subparsers(dest="heavy_user_command", required=True, metavar="SUBCOMMAND")
    for name, is_heavy, summary in (
        ("mark", True, "the customer pays traffic rates for all calls of the month"),
        ("unmark", False, "the customer's eligible calls of the month are free again"),
    ):
        decide = heavy_sub.add_parser(
            name, parents=[db], help=summary,
            description=f"Record the decision (who and why; every decision is kept) and re-price the month's "
                        f"calls: {summary}. Prints how many calls changed price and the month's new total.")
        _customer_argument(decide)
        _month_option(decide)
        _by_option(decide, "who decides")
        _reason_option(decide, "why, for the record")
        decide.set_defaults(fn=_cmd_heavy_user, heavy=is_heavy)

    charge = subparsers.add_parser("service-charge", help="fees for call-flow changes made by staff")
    charge_sub = charge.add_subparsers(dest="service_charge_command", required=True, metavar="SUBCOMMAND")
    add = charge_sub.add_parser(
        "add", parents=[db], help="put a fee on a customer's invoice for a month",
        description="Record a service charge with amount, reason and who; it appears on the month's invoice.")
    _customer_argument(add)
    _month_option(add)
    add.add_argument("--amount", required=True, type=amount_eur, metavar="EUR",
                     help="more than 0, at most 4 decimals, e.g. 25 or 12.50")
    _reason_option(add, "what the fee is for; shown on the invoice")
    _by_option(add, "who charged it")
    add.add_argument("--config-version", metavar="V", type=_nonblank("--config-version"),
                     help="the call-flow configuration version the fee paid for, e.g. v12: refused unless "
                          "it is a stored version made by staff (`fairline config history` shows the role)")
    add.set_defaults(fn=_cmd_service_charge_add)

    queue = subparsers.add_parser("queue", help="call queues: how long callers waited")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, metavar="SUBCOMMAND")
    queues = queue_sub.add_parser(
        "report", parents=[db], help="a month's queue waits, per queue and per customer",
        description=f"Per queue: visits, answered, answered within {queue_policy.SERVICE_LEVEL_SECONDS} s and "
                    "that as the service level, overflowed, timed out, abandoned, average and 90th-percentile "
                    "wait. Per customer: queued calls, visits, how often callers hit the wait cap and that as a "
                    f"share of visits; flagged at {queue_policy.FLAG_MIN_CAP_HITS} or more cap hits that are "
                    f"{queue_policy.FLAG_MIN_CAP_PERCENT} % or more of the visits.")
    _month_option(queues)
    queues.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    queues.set_defaults(fn=_cmd_queue_report)


# ------------------------------------------------------------ argument types


def month(text: str) -> Month:
    """argparse type for --month: YYYY-MM."""
    try:
        return Month.parse(text)
    except InvalidMonth as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def amount_eur(text: str) -> Decimal:
    """argparse type for --amount: euros, more than 0, at most 4 decimals."""
    if _AMOUNT_TEXT.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"expected an amount in euros like 25 or 12.50; got {text!r}")
    value = Decimal(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected more than 0; got {text!r}")
    if value.as_tuple().exponent < -4:  # type: ignore[operator]  # an int for finite values
        raise argparse.ArgumentTypeError(f"expected at most 4 decimals; got {text!r}")
    if value > MAX_AMOUNT_EUR:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_AMOUNT_EUR}; got {text!r}")
    return value


def _nonblank(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what}: expected some text, got {text!r}")
        return text.strip()

    return parse


def _month_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", required=True, type=month, metavar="YYYY-MM",
                        help="the calendar month, e.g. 2026-11")


def _customer_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("customer", type=_nonblank("CUSTOMER"), metavar="CUSTOMER", help="the customer id")


def _by_option(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument("--by", required=True, type=_nonblank("--by"), metavar="WHO", help=meaning)


def _reason_option(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument("--reason", required=True, type=_nonblank("--reason"), metavar="TEXT", help=meaning)


# -------------------------------------------------------------------- commands


def _cmd_cdr_import(args: argparse.Namespace, load_rates: RatesLoader | None) -> int:
    from rating.core.call_lines import MAX_LINE_BYTES
    from rating.core.tariff import DEFAULT_RATES
    from rating.storage import billing

    rates = DEFAULT_RATES
    if load_rates is not None and args.config is not None:
        try:
            rates = load_rates(args.config)
        except ValueError as bad:
            error(str(bad))
            return EXIT_BAD_INPUT
    try:
        stream = args.file.open("rb") if args.file is not None else sys.stdin.buffer
    except OSError as problem:
        error(f"cannot read {args.file}: {problem.strerror}")
        return EXIT_BAD_INPUT

    async def work(conn: asyncpg.Connection) -> int:
        reports = []
        # Batch by batch, so a file of millions of calls never has to fit in memory; all in one
        # transaction, so an import that stops part-way (the database failed, Ctrl-C) stores
        # nothing: the good lines of the input are stored together or not at all.
        batches = parse_import_batches(bounded_lines(stream, MAX_LINE_BYTES), rates, billing.IMPORT_BATCH)
        async with conn.transaction():
            while True:
                try:
                    parsed = next(batches, None)
                except OSError as problem:  # opened, but reading failed
                    raise UnreadableInput(f"cannot read {args.file or 'stdin'}: {problem.strerror}") from problem
                if parsed is None:
                    break
                outcome = await billing.import_cdrs(conn, [cdr for _, cdr in parsed.cdrs])
                reports.append(import_report(parsed, outcome))
        # After the commit: a reader gone (`| head`) must not undo the import.
        report = ImportReport.combined(reports)
        write_import_report(sys.stdout, report)
        return EXIT_LINES_REJECTED if report.rejected else EXIT_OK

    try:
        return with_database(args, work)
    finally:
        if args.file is not None:
            stream.close()


def _cmd_fair_use_report(args: argparse.Namespace) -> int:
    from rating.storage import billing

    async def work(conn: asyncpg.Connection) -> int:
        report = await billing.fair_use_report(conn, args.month)
        (write_fair_use_json if args.json else write_fair_use_table)(sys.stdout, report)
        return EXIT_OK

    return with_database(args, work)


def _cmd_invoice(args: argparse.Namespace) -> int:
    from rating.storage import billing, invoice_text

    async def work(conn: asyncpg.Connection) -> int:
        if args.csv:
            write_invoices_csv(sys.stdout, args.month, await billing.invoices(conn, args.month))
            return EXIT_OK
        sys.stdout.flush()
        out = sys.stdout.buffer

        async def write(data: bytes) -> None:
            out.write(data)

        await invoice_text.write_invoices(conn, args.month, write)
        return EXIT_OK

    return with_database(args, work)


def _cmd_heavy_user(args: argparse.Namespace) -> int:
    from rating.storage import billing

    async def work(conn: asyncpg.Connection) -> int:
        done = await billing.decide_heavy_user(
            conn, args.customer, args.month, heavy=args.heavy, decided_by=args.by, reason=args.reason
        )
        write_resettlement(sys.stdout, done)
        return EXIT_OK

    return with_database(args, work)


def _cmd_service_charge_add(args: argparse.Namespace) -> int:
    from rating.storage import billing

    async def work(conn: asyncpg.Connection) -> int:
        charge = await billing.add_service_charge(
            conn, args.customer, args.month, args.amount,
            reason=args.reason, charged_by=args.by, config_version=args.config_version,
        )
        write_service_charge(sys.stdout, charge)
        return EXIT_OK

    return with_database(args, work)


def _cmd_queue_report(args: argparse.Namespace) -> int:
    from rating.storage import queue_report

    async def work(conn: asyncpg.Connection) -> int:
        report = await queue_report.queue_report(conn, args.month)
        (write_queue_report_json if args.json else write_queue_report_table)(sys.stdout, report)
        return EXIT_OK

    return with_database(args, work)


# ---------------------------------------------------------------------- import


@dataclasses.dataclass(frozen=True, slots=True)
class Rejected:
    """An input line that was not imported, and why."""

    line_number: int
    call_id: str | None  # None when the line had no usable call id
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedImport:
    cdrs: tuple[tuple[int, RatedCdr], ...]  # with their line numbers; call ids distinct
    rejected: tuple[Rejected, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ImportReport:
    new: int
    already_there: int
    rejected: tuple[Rejected, ...]  # by line number

    @classmethod
    def combined(cls, reports: Sequence[ImportReport]) -> ImportReport:
        """One report for the batches of one input."""
        return cls(
            new=sum(r.new for r in reports),
            already_there=sum(r.already_there for r in reports),
            rejected=tuple(sorted((x for r in reports for x in r.rejected), key=lambda x: x.line_number)),
        )


def parse_import(lines: Iterable[bytes | LineTooLong], rates: RateTable) -> ParsedImport:
    """Price each input line as a CDR, or say why it cannot be imported; blank lines are skipped."""
    [parsed] = parse_import_batches(lines, rates, sys.maxsize)
    return parsed


def parse_import_batches(lines: Iterable[bytes | LineTooLong], rates: RateTable,
                         batch_size: int) -> Iterator[ParsedImport]:
    """parse_import in pieces of at most batch_size CDRs (and the rejections among them); at least one piece.

    Reads lines only as the pieces are taken. A call id is a duplicate if an earlier
    line of the whole input, in whatever piece, was accepted with it.
    """
    from rating.core.call_lines import too_long

    cdrs: list[tuple[int, RatedCdr]] = []
    rejected: list[Rejected] = []
    first_seen: dict[str, int] = {}
    for line_number, line in enumerate(lines, start=1):
        try:
            if isinstance(line, LineTooLong):
                raise too_long(line.length)
            if not line.strip():
                continue
            cdr = _import_line(line, rates)
        except InvalidCall as bad:
            rejected.append(Rejected(line_number, bad.call_id, bad.reason))
            continue
        call_id = cdr.call.call_id
        if call_id in first_seen:
            rejected.append(Rejected(line_number, call_id, f"call_id: duplicate of line {first_seen[call_id]}"))
            continue
        first_seen[call_id] = line_number
        cdrs.append((line_number, cdr))
        if len(cdrs) == batch_size:
            yield ParsedImport(tuple(cdrs), tuple(rejected))
            cdrs, rejected = [], []
    if cdrs or rejected or not first_seen:
        yield ParsedImport(tuple(cdrs), tuple(rejected))


def import_report(parsed: ParsedImport, outcome: billing.ImportOutcome) -> ImportReport:
    """Combine what the input said with what the database did."""
    unknown = [
        Rejected(n, cdr.call.call_id, f"customer_id: unknown customer {cdr.customer_id!r}, not in the customers table")
        for n, cdr in parsed.cdrs
        if cdr.call.call_id in outcome.unknown_customer
    ]
    refused = [
        Rejected(n, cdr.call.call_id, f"the database refused the call: {outcome.refused[cdr.call.call_id]}")
        for n, cdr in parsed.cdrs
        if cdr.call.call_id in outcome.refused
    ]
    return ImportReport(
        new=len(outcome.new),
        already_there=len(outcome.already_there),
        rejected=tuple(sorted(parsed.rejected + tuple(unknown) + tuple(refused), key=lambda r: r.line_number)),
    )


def write_import_report(out: TextIO, report: ImportReport) -> None:
    for r in report.rejected:
        call = f", call {r.call_id}" if r.call_id is not None else ""
        out.write(f"line {r.line_number}{call}: rejected: {r.reason}\n")
    out.write(f"{report.new} new, {report.already_there} already there, {len(report.rejected)} rejected\n")


def _import_line(line: bytes, rates: RateTable) -> RatedCdr:
    from rating.core.call_lines import decode_line, parse_call_object, parse_call_times
    from rating.core.cdr import CallRecord, Disposition, rate_record

    given, call_id = parse_call_object(decode_line(line), _IMPORT_FIELDS, empty_id=False)
    customer_id = given["customer_id"]
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise InvalidCall(call_id, f"customer_id: expected a customer id, got {json.dumps(customer_id)}")
    caller = given.get("caller")
    if caller is not None and not isinstance(caller, str):
        raise InvalidCall(call_id, f"caller: expected a string or null, got {json.dumps(caller)}")
    # The order of the times, the number and the bounds, with the messages `fairline rate` gives.
    times = parse_call_times(call_id, given)
    call = CallRecord(
        call_id=call_id, did=times.number, caller=caller,
        started_at=times.start.astimezone(UTC), answered_at=times.answer.astimezone(UTC) if times.answer else None,
        ended_at=times.end.astimezone(UTC), disposition=Disposition.ANSWERED if times.answer else Disposition.ABANDONED,
        hangup_cause=None,
    )
    cdr = rate_record(call, customer_id, times.number_type, rates, source="import")
    if cdr.rating_error is not None:
        # A live call is stored unpriced with the reason; an import is rejected instead, so
        # the corrected line can be imported later (a stored call id would block it).
        raise InvalidCall(call_id, cdr.rating_error)
    return cdr


# ------------------------------------------------------------------- fair use


def write_fair_use_table(out: TextIO, report: billing.FairUseReport) -> None:
    out.write(f"Fair use {report.month}: {report.active_customers} active customers, "
              f"{report.answered_calls} answered calls, {report.handled_calls} handled\n")
    out.write(f"platform average {_four(report.platform_average)} handled calls, floor (20 calls a week) "
              f"{_four(report.floor)}, allowance {_four(report.allowance)}\n")
    if not report.lines:
        out.write(f"no customer had an active number in {report.month}\n")
        return
    out.write("\n")
    rows = [
        [line.usage.customer_id, line.usage.name, str(line.usage.answered_calls), str(line.usage.handled_calls),
         str(line.usage.eligible_calls),
         _minutes(line.usage.billable_seconds), line.result.status.value,
         f"{line.result.months_above_of_last_6}/6", "yes" if line.usage.heavy_user else "no",
         _four(line.usage.list_price_eur), _four(line.usage.charged_eur)]
        for line in report.lines
    ]
    _table(out, ["customer", "name", "answered", "handled", "eligible", "minutes", "status", "above", "heavy",
                 "traffic EUR", "charged EUR"], rows, right={2, 3, 4, 5, 7, 9, 10})


def write_fair_use_json(out: TextIO, report: billing.FairUseReport) -> None:
    doc: dict[str, Any] = {
        "month": str(report.month),
        "active_customers": report.active_customers,
        "answered_calls": report.answered_calls,
        "handled_calls": report.handled_calls,
        # Strings, not JSON numbers: readers would turn those into floats.
        "platform_average": _four(report.platform_average),
        "floor": _four(report.floor),
        "allowance": _four(report.allowance),
        "customers": [
            {
                "customer_id": line.usage.customer_id,
                "name": line.usage.name,
                "answered_calls": line.usage.answered_calls,
                "handled_calls": line.usage.handled_calls,
                "eligible_calls": line.usage.eligible_calls,
                "billable_seconds": line.usage.billable_seconds,
                "minutes": _minutes(line.usage.billable_seconds),
                "above": line.result.above,
                "months_above_of_last_6": line.result.months_above_of_last_6,
                "status": line.result.status.value,
                "heavy_user": line.usage.heavy_user,
                "list_price_eur": _four(line.usage.list_price_eur),
                "charged_eur": _four(line.usage.charged_eur),
            }
            for line in report.lines
        ],
    }
    out.write(json.dumps(doc, indent=2) + "\n")


# -------------------------------------------------------------------- invoices

_CSV_COLUMNS = ("customer_id", "customer_name", "month", "kind", "reference", "at", "description",
                "billable_seconds", "fair_use_eligible", "list_price_eur", "amount_eur")


def write_invoices_csv(out: TextIO, month: Month, invoices: Sequence[billing.Invoice]) -> None:
    """One row per invoice line; no total rows, so every row is a line (a total is the sum of amount_eur)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for invoice in invoices:
        for line in invoice.lines:
            writer.writerow([
                invoice.customer_id, invoice.name, str(month), line.kind, line.reference,
                line.at.astimezone(UTC).isoformat(), line.description,
                "" if line.billable_seconds is None else line.billable_seconds,
                "true" if line.fair_use_eligible else "false",
                _four(line.list_price_eur), _four(line.amount_eur),
            ])


# ---------------------------------------------------------------- queue report


def write_queue_report_table(out: TextIO, report: queue_report.QueueReport) -> None:
    if not report.queues:
        out.write(f"no queued calls in {report.month}\n")
        return
    queued = sum(c.queued_calls for c in report.customers)
    visits = sum(q.calls for q in report.queues)
    limit = queue_policy.SERVICE_LEVEL_SECONDS
    out.write(f"Queues {report.month}: {queued} queued calls, {visits} queue visits (a call that overflows "
              f"into another queue counts in both)\nservice %: calls answered within {limit} s per 100 calls\n\n")
    rows = [
        [q.queue, q.customer_id, str(q.calls), str(q.answered), str(q.answered_in_time),
         _tenth(q.service_level_percent), str(q.overflowed), str(q.queue_timeout), str(q.abandoned),
         _tenth(q.average_wait_seconds), _tenth(q.p90_wait_seconds)]
        for q in report.queues
    ]
    _table(out, ["queue", "customer", "calls", "answered", f"in {limit} s", "service %", "overflowed",
                 "timeout", "abandoned", "avg wait s", "p90 wait s"], rows, right=set(range(2, 11)))
    out.write("\n")
    rows = [
        [c.customer_id, c.name, str(c.queued_calls), str(c.visits), str(c.cap_hits), _tenth(c.cap_percent),
         "FLAG" if c.flagged else ""]
        for c in report.customers
    ]
    _table(out, ["customer", "name", "queued calls", "visits", "cap hits", "cap %", "flag"], rows,
           right={2, 3, 4, 5})
    out.write(f"\ncap hits: visits that reached the wait cap (overflowed or timed out)\n"
              f"FLAG: {queue_policy.FLAG_MIN_CAP_HITS} or more cap hits, {queue_policy.FLAG_MIN_CAP_PERCENT} % "
              f"or more of the visits\n")
    for c in report.customers:
        if c.flagged:
            out.write(f"{c.customer_id}: callers hit the cap in {c.cap_hits} of {c.visits} visits: "
                      f"{queue_policy.ADVICE}\n")


def write_queue_report_json(out: TextIO, report: queue_report.QueueReport) -> None:
    """Waits in seconds with 3 decimals and percentages with 1, as strings: JSON numbers would become floats."""
    doc: dict[str, Any] = {
        "month": str(report.month),
        "service_level_seconds": queue_policy.SERVICE_LEVEL_SECONDS,
        "flag_rule": {"min_cap_hits": queue_policy.FLAG_MIN_CAP_HITS,
                      "min_cap_percent": str(queue_policy.FLAG_MIN_CAP_PERCENT)},
        "queues": [
            {
                "queue": q.queue,
                "customer_id": q.customer_id,
                "calls": q.calls,
                "answered": q.answered,
                "answered_in_time": q.answered_in_time,
                "service_level_percent": _tenth(q.service_level_percent),
                "overflowed": q.overflowed,
                "queue_timeout": q.queue_timeout,
                "abandoned": q.abandoned,
                "average_wait_seconds": _milliseconds(q.average_wait_seconds),
                "p90_wait_seconds": _milliseconds(q.p90_wait_seconds),
            }
            for q in report.queues
        ],
        "customers": [
            {
                "customer_id": c.customer_id,
                "name": c.name,
                "queued_calls": c.queued_calls,
                "visits": c.visits,
                "cap_hits": c.cap_hits,
                "cap_percent": _tenth(c.cap_percent),
                "flagged": c.flagged,
                "advice": queue_policy.ADVICE if c.flagged else None,
            }
            for c in report.customers
        ],
    }
    out.write(json.dumps(doc, indent=2) + "\n")


# ------------------------------------------------------ decisions and charges


def write_resettlement(out: TextIO, done: billing.Resettlement) -> None:
    t = done.totals
    state = "now a heavy user" if done.heavy else "no longer a heavy user"
    out.write(f"{t.customer_id} is {state} in {t.month} (decision {done.decision_id}); "
              f"{done.repriced_calls} calls re-priced\n")
    _write_totals(out, t)


def write_service_charge(out: TextIO, charge: billing.ServiceCharge) -> None:
    out.write(f"{charge.reference}: {_four(charge.amount_eur)} EUR for {charge.customer_id} in {charge.month}\n")
    _write_totals(out, charge.totals)


def _write_totals(out: TextIO, t: billing.MonthTotals) -> None:
    out.write(f"invoice {t.month} for {t.customer_id}: {t.calls} calls {_four(t.calls_eur)} + service charges "
              f"{_four(t.service_charges_eur)} = total {_four(t.total_eur)} EUR\n")


# ---------------------------------------------------------------- formatting


def _four(amount: Decimal) -> str:
    """Money and averages: 4 decimals, half-up like every price (stored amounts have 4 already)."""
    return format(amount.quantize(_FOUR, rounding=ROUND_HALF_UP), "f")


def _minutes(seconds: int) -> str:
    return _tenth(Decimal(seconds) / 60)


def _tenth(value: Decimal) -> str:
    """Minutes, seconds of wait and percentages in tables: 1 decimal, half-up."""
    return format(value.quantize(_TENTH, rounding=ROUND_HALF_UP), "f")


def _milliseconds(seconds: Decimal) -> str:
    return format(seconds.quantize(_MILLISECOND, rounding=ROUND_HALF_UP), "f")


def _table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> None:
    """Columns padded to their widest cell; the columns in right (numbers) right-aligned."""
    widths = [max(map(len, column)) for column in zip(headers, *rows)]
    pads = [str.rjust if i in right else str.ljust for i in range(len(widths))]
    out.write("".join(
        "  ".join([pad(cell, w) for pad, cell, w in zip(pads, row, widths)]).rstrip() + "\n" for row in (headers, *rows)
    ))
