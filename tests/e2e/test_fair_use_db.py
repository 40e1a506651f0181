"""What fair use counts (decision 0028) in the real PostgreSQL: cdrs.handled and the fair-use report.

The rule is rating/core/handled.py; the CDR writer stores its answer, migration 0016 gave it
to rows stored before, and the report counts it. Each test checks PostgreSQL against the rule
on the same varied CDRs: every way a call ends (tests/unit/test_fair_use_counts.py), from each
source, on numbers that are fair-use eligible or not, answered at home or abroad.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from rating.core.cdr import CallRecord, Disposition, RatedCdr, rate_record
from rating.core.fair_use import Month
from rating.core.handled import handled
from rating.core.tariff import DEFAULT_RATES, NumberType
from rating.storage import billing
from rating.storage.database import _STAGING_NAMES, _copy_rows, bundled_migrations, insert_cdrs, migrate
from tests.unit.test_fair_use_counts import HANDLED_CALLS, NOT_HANDLED_CALLS, PHONE, PHONE_ABROAD, cdr

pytestmark = pytest.mark.e2e

NOVEMBER = Month(2026, 11)
# (customer, number, type); bakery's Belgian number is answered by Dutch phones: abroad.
NUMBERS = [
    ("acme", "+31201234567", NumberType.LOCAL),
    ("acme", "+318001234567", NumberType.TOLLFREE),
    ("bakery", "+3215123456", NumberType.NATIONAL),
]
ABROAD_LINE = ("forwarder", "+31301234567", NumberType.LOCAL)  # international_forwarding to a Belgian mobile
SOURCES = ("live", "import", "asterisk")
CASES: list[CallRecord] = [p.values[0] for p in [*HANDLED_CALLS, *NOT_HANDLED_CALLS]]  # type: ignore[misc]


def varied_cdrs() -> list[RatedCdr]:
    """Every case from every source on every number, rated as the writer's callers rate them; then the
    forwarder's two calls, one answered at home and one abroad."""
    rated = [
        rate_record(dataclasses.replace(call, call_id=f"{source}-{number}-{i}", did=number), customer, number_type,
                    DEFAULT_RATES, source=source)
        for source in SOURCES
        for customer, number, number_type in NUMBERS
        for i, call in enumerate(CASES)
    ]
    customer, number, number_type = ABROAD_LINE
    for name, phone in (("home", PHONE), ("abroad", PHONE_ABROAD)):
        call = dataclasses.replace(cdr(target=phone), call_id=f"forwarded-{name}", did=number)
        rated.append(rate_record(call, customer, number_type, DEFAULT_RATES))
    return rated


async def add_directory(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO customers (customer_id, name) VALUES "
                       "('acme', 'Acme'), ('bakery', 'Bakery'), ('forwarder', 'Forwarder'), ('quiet', 'Quiet')")
    await conn.executemany(
        "INSERT INTO numbers (e164, customer_id, number_type, active_from) VALUES ($1, $2, $3, '2026-01-01')",
        [(n, c, t.value) for c, n, t in [*NUMBERS, ABROAD_LINE, ("quiet", "+31201234599", NumberType.LOCAL)]])


@pytest.fixture
async def conn(scratch_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(scratch_database)
    try:
        yield connection
    finally:
        await connection.close()


async def test_the_writer_stores_what_the_rule_says_and_the_report_counts_it(conn: asyncpg.Connection) -> None:
    await add_directory(conn)
    cdrs = varied_cdrs()
    assert await insert_cdrs(conn, cdrs) == {c.call.call_id for c in cdrs}

    stored = {r["call_id"]: r["handled"] for r in await conn.fetch("SELECT call_id, handled FROM cdrs")}
    assert stored == {c.call.call_id: handled(c.call, c.source) for c in cdrs}
    assert 0 < sum(stored.values()) < len(stored)  # both kinds are there

    report = await billing.fair_use_report(conn, NOVEMBER)

    def counts(customer_id: str) -> tuple[int, int, int]:
        mine = [c for c in cdrs if c.customer_id == customer_id]
        return (sum(c.call.answered_at is not None for c in mine),
                sum(handled(c.call, c.source) for c in mine),
                sum(handled(c.call, c.source) and c.price.fair_use_eligible for c in mine))

    assert {line.usage.customer_id: (line.usage.answered_calls, line.usage.handled_calls, line.usage.eligible_calls)
            for line in report.lines} == {c: counts(c) for c in ("acme", "bakery", "forwarder", "quiet")}
    all_handled = sum(handled(c.call, c.source) for c in cdrs)
    assert (report.active_customers, report.handled_calls) == (4, all_handled)
    assert report.platform_average == Decimal(all_handled) / 4
    assert {line.result.customer_id: line.result.calls for line in report.lines} == {
        c: counts(c)[2] for c in ("acme", "bakery", "forwarder", "quiet")}
    stored_results = {r["customer_id"]: r["eligible_calls"]
                      for r in await conn.fetch("SELECT customer_id, eligible_calls FROM fair_use_results")}
    assert stored_results == {line.result.customer_id: line.result.calls for line in report.lines}


async def test_a_call_answered_abroad_is_handled_but_never_eligible_in_the_report(conn: asyncpg.Connection) -> None:
    """The forwarder's local number: one call answered by a Dutch phone, one by a Belgian one
    (international_forwarding). Both count for the platform average; only the first against the allowance."""
    await add_directory(conn)
    await insert_cdrs(conn, [c for c in varied_cdrs() if c.customer_id == "forwarder"])

    rows = await conn.fetch("SELECT call_id, handled, fair_use_eligible, charged_eur, list_price_eur FROM cdrs "
                            "ORDER BY call_id")
    assert [(r["call_id"], r["handled"], r["fair_use_eligible"]) for r in rows] == [
        ("forwarded-abroad", True, False), ("forwarded-home", True, True)]
    abroad, home = rows
    assert (abroad["charged_eur"], home["charged_eur"]) == (abroad["list_price_eur"], 0)  # abroad pays, home is free

    report = await billing.fair_use_report(conn, NOVEMBER)
    [forwarder] = [line for line in report.lines if line.usage.customer_id == "forwarder"]
    assert (forwarder.usage.answered_calls, forwarder.usage.handled_calls, forwarder.usage.eligible_calls) == (2, 2, 1)
    assert forwarder.result.calls == 1


async def test_migration_0016_gives_rows_stored_before_it_what_the_rule_says(conn: asyncpg.Connection) -> None:
    """The backfill is the rule in SQL: on the same varied rows, stored as fairline stored them before
    migration 0016, it agrees with rating/core/handled.py, and every other column stays as it was."""
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await migrate(conn, [m for m in bundled_migrations() if m.version < "0016"])
    # Blocked calls (migration 0019) came after it: no row of that time had that disposition.
    cdrs = [c for c in varied_cdrs() if c.call.disposition is not Disposition.BLOCKED]
    existing = {r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'cdrs'")}
    columns = [name for name in _STAGING_NAMES if name in existing]  # the writer's columns of that time
    rows, _ = _copy_rows(cdrs)
    await conn.copy_records_to_table("cdrs", columns=columns, records=[
        tuple(value for name, value in zip(_STAGING_NAMES, row, strict=True) if name in existing) for row in rows])
    before = {r["call_id"]: dict(r) for r in await conn.fetch("SELECT * FROM cdrs")}

    assert await migrate(conn, [m for m in bundled_migrations() if m.version < "0017"]) == ["0016_cdr_handled"]

    after = {r["call_id"]: dict(r) for r in await conn.fetch("SELECT * FROM cdrs")}
    assert {k: r["handled"] for k, r in after.items()} == {c.call.call_id: handled(c.call, c.source) for c in cdrs}
    assert {k: {c: v for c, v in r.items() if c != "handled"} for k, r in after.items()} == before
