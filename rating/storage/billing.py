"""Billing queries: fair use per month, heavy-user decisions, service charges, invoices, CDR import.

The CDR writes are in database.py. Both price a call's charge with the one rule,
rating/core/charge.py (`charge_sql`), so storing and re-settling can never disagree.
Documented for people who query the tables in docs/billing.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

import asyncpg

from rating.core.cdr import RatedCdr
from rating.core.charge import charge_sql
from rating.errors import RatingError
from rating.core.fair_use import FairUseResult, Month, MonthlyUsage, allowance, assess
from rating.storage.config_store import staff_change
from rating.storage.database import insert_cdrs, is_row_fault

_WINDOW_MONTHS = 6  # fair use looks back on the month and the five before it
_STORED_STEP = Decimal("0.0001")  # fair_use_results keeps averages and allowances as numeric(14,4)
_EXACT = Context(prec=28)
IMPORT_BATCH = 1000  # CDRs per INSERT: one statement each


class UnknownCustomer(RatingError, LookupError):
    """The customer id is not in the customers table."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        super().__init__(f"unknown customer {customer_id!r}: not in the customers table")


def first_day(month: Month) -> date:
    """The date billing columns use for a month: its first day."""
    return date(month.year, month.month, 1)


# --------------------------------------------------------------------- fair use


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerMonth:
    """One customer's answered calls in one month, as the fair-use report shows them."""

    customer_id: str
    name: str
    answered_calls: int  # what billing prices: the seconds and amounts below are theirs
    handled_calls: int  # of them, those a person of the customer's took (cdrs.handled): what fair use counts
    eligible_calls: int  # of the handled calls, those fair use limits (cdrs.fair_use_eligible)
    billable_seconds: int
    list_price_eur: Decimal  # what the answered calls cost at traffic rates
    charged_eur: Decimal  # what the customer is charged for them now
    heavy_user: bool


@dataclasses.dataclass(frozen=True, slots=True)
class FairUseLine:
    """A customer's calls in the month and their fair-use standing."""

    usage: CustomerMonth
    result: FairUseResult


@dataclasses.dataclass(frozen=True, slots=True)
class FairUseReport:
    """Fair use in one month: the platform figures and one line per active customer, by customer id."""

    month: Month
    active_customers: int
    answered_calls: int  # of all active customers, on every number type
    handled_calls: int  # of those, the handled ones (decision 0028)
    platform_average: Decimal  # handled_calls / active_customers, exact
    floor: Decimal  # 20 calls a week over the month's days
    allowance: Decimal  # max(platform_average, floor)
    lines: tuple[FairUseLine, ...]


# Per month of the window: every customer with a number active in some day of the
# month (active_until inclusive), plus every customer with answered calls that month
# (the numbers table keeps one period per number, so history can be missing there).
# Fair use counts handled calls only (cdrs.handled, written from rating/core/fair_use.py
# handled(), decision 0028); seconds and amounts are those of every answered call.
_USAGE = """
WITH months AS (
    SELECT m::date AS month FROM generate_series($1::date, $2::date, interval '1 month') AS m
), calls AS (
    SELECT billing_month AS month, customer_id,
           count(*)::int AS answered_calls,
           (count(*) FILTER (WHERE handled))::int AS handled_calls,
           (count(*) FILTER (WHERE handled AND fair_use_eligible))::int AS eligible_calls,
           sum(billable_seconds)::bigint AS billable_seconds,
           sum(list_price_eur) AS list_price_eur,
           sum(charged_eur) AS charged_eur
    FROM cdrs
    WHERE customer_id IS NOT NULL AND answered_at IS NOT NULL AND billing_month BETWEEN $1 AND $2
    GROUP BY billing_month, customer_id
), active AS (
    SELECT mo.month, n.customer_id
    FROM months mo
    JOIN numbers n ON n.active_from < (mo.month + interval '1 month')::date
                  AND (n.active_until IS NULL OR n.active_until >= mo.month)
    UNION
    SELECT month, customer_id FROM calls
)
SELECT a.month, a.customer_id, cu.name,
       coalesce(c.answered_calls, 0) AS answered_calls, coalesce(c.handled_calls, 0) AS handled_calls,
       coalesce(c.eligible_calls, 0) AS eligible_calls,
       coalesce(c.billable_seconds, 0) AS billable_seconds,
       coalesce(c.list_price_eur, 0) AS list_price_eur, coalesce(c.charged_eur, 0) AS charged_eur,
       coalesce(h.heavy, false) AS heavy_user
FROM active a
JOIN customers cu USING (customer_id)
LEFT JOIN calls c USING (month, customer_id)
LEFT JOIN heavy_users h USING (month, customer_id)
ORDER BY a.month, a.customer_id
"""

_DELETE_STALE_RESULTS = """
DELETE FROM fair_use_results WHERE month = $1 AND NOT (customer_id = ANY($2::text[]))
"""

_UPSERT_RESULTS = """
INSERT INTO fair_use_results (month, customer_id, eligible_calls, platform_average, allowance, above,
                              months_above_of_last_6, status, computed_at)
SELECT $1, r.*, now()
FROM unnest($2::text[], $3::int[], $4::numeric[], $5::numeric[], $6::bool[], $7::int[], $8::text[])
     AS r(customer_id, eligible_calls, platform_average, allowance, above, months_above_of_last_6, status)
ON CONFLICT (month, customer_id) DO UPDATE SET
    eligible_calls = EXCLUDED.eligible_calls, platform_average = EXCLUDED.platform_average,
    allowance = EXCLUDED.allowance, above = EXCLUDED.above,
    months_above_of_last_6 = EXCLUDED.months_above_of_last_6, status = EXCLUDED.status,
    computed_at = EXCLUDED.computed_at
"""


def build_report(month: Month, usage: Sequence[MonthlyUsage], details: Sequence[CustomerMonth]) -> FairUseReport:
    """Assess month from the usage of its six-month window; details are the month's own rows, one per customer."""
    by_customer = {d.customer_id: d for d in details}
    results = assess(month, usage)
    handled = sum(d.handled_calls for d in details)
    with localcontext(_EXACT):
        average = Decimal(handled) / len(details) if details else Decimal(0)
    return FairUseReport(
        month=month,
        active_customers=len(details),
        answered_calls=sum(d.answered_calls for d in details),
        handled_calls=handled,
        platform_average=average,
        floor=allowance(month, 0, 0),
        allowance=allowance(month, handled, len(details)),
        lines=tuple(FairUseLine(by_customer[r.customer_id], r) for r in results),
    )


async def fair_use_report(conn: asyncpg.Connection, month: Month) -> FairUseReport:
    """Assess fair use in month and store the outcome in fair_use_results, replacing the month's earlier rows."""
    window = month.window(_WINDOW_MONTHS)
    async with conn.transaction():
        rows = await conn.fetch(_USAGE, first_day(window[0]), first_day(month))
        usage = [
            MonthlyUsage(r["customer_id"], _month_of(r["month"]), r["handled_calls"], r["eligible_calls"])
            for r in rows
        ]
        details = [
            CustomerMonth(
                customer_id=r["customer_id"], name=r["name"], answered_calls=r["answered_calls"],
                handled_calls=r["handled_calls"], eligible_calls=r["eligible_calls"],
                billable_seconds=r["billable_seconds"], list_price_eur=r["list_price_eur"],
                charged_eur=r["charged_eur"], heavy_user=r["heavy_user"],
            )
            for r in rows
            if r["month"] == first_day(month)
        ]
        report = build_report(month, usage, details)
        results = [line.result for line in report.lines]
        # Customers no longer active in the month (numbers corrected since) must not keep a stale row.
        await conn.execute(_DELETE_STALE_RESULTS, first_day(month), [r.customer_id for r in results])
        await conn.execute(
            _UPSERT_RESULTS,
            first_day(month),
            [r.customer_id for r in results],
            [r.calls for r in results],
            [_stored(report.platform_average)] * len(results),
            [_stored(r.allowance) for r in results],
            [r.above for r in results],
            [r.months_above_of_last_6 for r in results],
            [r.status.value for r in results],
        )
    return report


def _stored(value: Decimal) -> Decimal:
    return value.quantize(_STORED_STEP, rounding=ROUND_HALF_UP)


def _month_of(day: date) -> Month:
    return Month(day.year, day.month)


# ------------------------------------------------------- decisions and charges


@dataclasses.dataclass(frozen=True, slots=True)
class MonthTotals:
    """What one customer's invoice for one month adds up to: the sum of its lines."""

    customer_id: str
    month: Month
    calls: int  # answered calls on the invoice
    calls_eur: Decimal  # sum of their charged amounts, each already rounded to 4 decimals
    service_charges_eur: Decimal

    @property
    def total_eur(self) -> Decimal:
        return self.calls_eur + self.service_charges_eur


@dataclasses.dataclass(frozen=True, slots=True)
class Resettlement:
    """A heavy-user decision recorded and its month re-priced."""

    decision_id: int
    heavy: bool
    repriced_calls: int  # calls whose charged amount changed
    totals: MonthTotals


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceCharge:
    """A service charge as recorded."""

    reference: str  # "SC-<id>", as on the invoice
    customer_id: str
    month: Month
    amount_eur: Decimal
    totals: MonthTotals  # the month's invoice with the charge on it


# Whether the CDR's customer is a heavy user in its month; NULL (no decision) means not.
_HEAVY = "(SELECT h.heavy FROM heavy_users h WHERE h.customer_id = c.customer_id AND h.month = c.billing_month)"

_RESETTLE = f"""
WITH priced AS (
    SELECT c.call_id, {charge_sql(eligible="c.fair_use_eligible", heavy=_HEAVY, list_price="c.list_price_eur")} AS charge
    FROM cdrs c
    WHERE c.customer_id = $1 AND c.billing_month = $2
), repriced AS (
    UPDATE cdrs SET charged_eur = p.charge
    FROM priced p
    WHERE cdrs.call_id = p.call_id AND cdrs.billing_month = $2 AND cdrs.charged_eur <> p.charge
    RETURNING 1
)
SELECT count(*)::int FROM repriced
"""

_MONTH_TOTALS = """
SELECT count(*) FILTER (WHERE kind = 'call')::int AS calls,
       coalesce(sum(amount_eur) FILTER (WHERE kind = 'call'), 0) AS calls_eur,
       coalesce(sum(amount_eur) FILTER (WHERE kind = 'service_charge'), 0) AS service_charges_eur
FROM invoice_lines
WHERE customer_id = $1 AND month = $2
"""


async def decide_heavy_user(conn: asyncpg.Connection, customer_id: str, month: Month, *, heavy: bool,
                            decided_by: str, reason: str) -> Resettlement:
    """Record that customer_id is (heavy) or is not a heavy user in month, and re-price the month's calls.

    One transaction: the decision and the new charges land together or not at all.
    Raises UnknownCustomer when the customer is not in the customers table.
    """
    async with conn.transaction():
        # CDR inserts price a call by the decision they see. Holding this lock until
        # commit makes an insert that races with us wait, then see the new decision:
        # otherwise a call written meanwhile would keep the old price. It blocks CDR
        # writes (not reads) for the few milliseconds the re-pricing takes.
        await conn.execute("LOCK TABLE cdrs IN SHARE ROW EXCLUSIVE MODE")
        try:
            # clock_timestamp(), not now(): the latest decision wins, and the one
            # that got the lock last is the latest even if its transaction began first.
            decision_id = await conn.fetchval(
                """INSERT INTO heavy_user_decisions (customer_id, month, heavy, decided_by, reason, decided_at)
                   VALUES ($1, $2, $3, $4, $5, clock_timestamp()) RETURNING id""",
                customer_id, first_day(month), heavy, decided_by, reason,
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownCustomer(customer_id) from None
        repriced = await conn.fetchval(_RESETTLE, customer_id, first_day(month))
        totals = await month_totals(conn, customer_id, month)
    return Resettlement(decision_id, heavy, repriced, totals)


async def add_service_charge(conn: asyncpg.Connection, customer_id: str, month: Month, amount_eur: Decimal, *,
                             reason: str, charged_by: str, config_version: str | None) -> ServiceCharge:
    """Record a fee on customer_id's invoice for month. Raises UnknownCustomer for an unknown customer,
    NotAStaffChange when config_version is given but names no version staff made, NotTheCustomersChange
    when that version changed none of the customer's numbers."""
    async with conn.transaction():
        change = await staff_change(conn, config_version, customer_id) if config_version is not None else None
        try:
            charge_id = await conn.fetchval(
                """INSERT INTO service_charges (customer_id, month, amount_eur, reason, charged_by, config_version,
                                                config_version_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
                customer_id, first_day(month), amount_eur, reason, charged_by,
                change.name if change else None, change.id if change else None,
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownCustomer(customer_id) from None
        totals = await month_totals(conn, customer_id, month)
    return ServiceCharge(f"SC-{charge_id}", customer_id, month, amount_eur, totals)


async def month_totals(conn: asyncpg.Connection, customer_id: str, month: Month) -> MonthTotals:
    """What customer_id's invoice for month adds up to now."""
    row = await conn.fetchrow(_MONTH_TOTALS, customer_id, first_day(month))
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return MonthTotals(customer_id, month, row["calls"], row["calls_eur"], row["service_charges_eur"])


# --------------------------------------------------------------------- invoices


@dataclasses.dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One row of the view invoice_lines."""

    kind: str  # "call" or "service_charge"
    reference: str  # the call id, or SC-<id>
    at: datetime  # when the call started / the charge was recorded
    description: str
    billable_seconds: int | None  # None for a service charge
    fair_use_eligible: bool
    list_price_eur: Decimal
    amount_eur: Decimal  # what the customer pays for this line


@dataclasses.dataclass(frozen=True, slots=True)
class Invoice:
    """A customer's invoice for a month: calls (by start), then service charges."""

    customer_id: str
    name: str
    month: Month
    lines: tuple[InvoiceLine, ...]

    @property
    def calls_eur(self) -> Decimal:
        return sum((line.amount_eur for line in self.lines if line.kind == "call"), Decimal("0.0000"))

    @property
    def service_charges_eur(self) -> Decimal:
        return sum((line.amount_eur for line in self.lines if line.kind != "call"), Decimal("0.0000"))

    @property
    def total_eur(self) -> Decimal:
        """The sum of the lines' amounts, exact: each is already rounded to 4 decimals."""
        return self.calls_eur + self.service_charges_eur


_INVOICE_LINES_OF = """
SELECT l.customer_id, coalesce(c.name, '') AS name, l.kind, l.reference, l.at, l.description,
       l.billable_seconds, l.fair_use_eligible, l.list_price_eur, l.amount_eur
FROM invoice_lines l
LEFT JOIN customers c USING (customer_id)
WHERE l.month = $1 {and_customer}
ORDER BY l.customer_id, l.kind <> 'call', l.at, l.reference
"""
_INVOICE_LINES = _INVOICE_LINES_OF.format(and_customer="")
# One customer's lines: the same statement with one more condition, so the console's invoice page
# shows exactly what `fairline invoice` shows for that customer.
_CUSTOMER_INVOICE_LINES = _INVOICE_LINES_OF.format(and_customer="AND l.customer_id = $2")


async def invoices(conn: asyncpg.Connection, month: Month) -> tuple[Invoice, ...]:
    """Every customer's invoice for month, by customer id; customers without lines have none."""
    return _invoices(month, await conn.fetch(_INVOICE_LINES, first_day(month)))


async def invoice(conn: asyncpg.Connection, customer_id: str, month: Month) -> Invoice | None:
    """customer_id's invoice for month, as in invoices(); None when it has no line."""
    found = _invoices(month, await conn.fetch(_CUSTOMER_INVOICE_LINES, first_day(month), customer_id))
    return found[0] if found else None


def _invoices(month: Month, rows: Sequence[asyncpg.Record]) -> tuple[Invoice, ...]:
    grouped: dict[str, tuple[str, list[InvoiceLine]]] = {}
    for customer_id, name, *line in rows:  # the columns of _INVOICE_LINES, in InvoiceLine's order after the first two
        _, lines = grouped.setdefault(customer_id, (name, []))
        lines.append(InvoiceLine(*line))
    return tuple(Invoice(cid, name, month, tuple(lines)) for cid, (name, lines) in grouped.items())


# ----------------------------------------------------------------------- import


@dataclasses.dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What became of each CDR given to import_cdrs, by call id."""

    new: frozenset[str]
    already_there: frozenset[str]  # a CDR with this call id was stored before; it is left as it was
    unknown_customer: frozenset[str]  # not stored: the customer is not in the customers table
    # Not stored: PostgreSQL refused the row itself (a value too big for its column...), with what it said.
    refused: Mapping[str, str] = dataclasses.field(default_factory=dict)


async def import_cdrs(conn: asyncpg.Connection, cdrs: Sequence[RatedCdr], *,
                      batch_size: int = IMPORT_BATCH) -> ImportOutcome:
    """Store rated CDRs whose customer exists, idempotently by call id, in batches.

    Call ids must be distinct. Each batch is one statement in a transaction of its own, or a
    savepoint when the caller holds a transaction (`fairline cdr import` does, around the whole
    input). A batch PostgreSQL refuses because of a row is stored again row by row, so only the
    rows it refuses are left out (`refused`); any other failure raises.
    """
    wanted = sorted({c.customer_id for c in cdrs if c.customer_id is not None})
    known = {r["customer_id"] for r in await conn.fetch(
        "SELECT customer_id FROM customers WHERE customer_id = ANY($1::text[])", wanted)}
    storable = [c for c in cdrs if c.customer_id in known]
    new: set[str] = set()
    refused: dict[str, str] = {}
    for start in range(0, len(storable), batch_size):
        batch = storable[start:start + batch_size]
        try:
            new |= await insert_cdrs(conn, batch)
        except Exception as exc:
            if not is_row_fault(exc):
                raise
            for cdr in batch:
                try:
                    new |= await insert_cdrs(conn, [cdr])
                except Exception as row_exc:
                    if not is_row_fault(row_exc):
                        raise
                    refused[cdr.call.call_id] = _one_line(row_exc)
    return ImportOutcome(
        new=frozenset(new),
        already_there=frozenset(c.call.call_id for c in storable) - new - refused.keys(),
        unknown_customer=frozenset(c.call.call_id for c in cdrs if c.customer_id not in known),
        refused=refused,
    )


def _one_line(exc: Exception) -> str:
    """What PostgreSQL said of a row, with its detail, on one line."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    detail = getattr(exc, "detail", None)
    return " ".join(f"{message} ({detail})".split() if detail else str(message).split())
