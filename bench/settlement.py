"""Fair-use settlement benchmark: `fairline fair-use report` and `fairline invoice` over one busy month.

A private PostgreSQL (schema from the migrations) is loaded with one month
(2026-11) of synthetic CDRs: by default 10,000,000 calls to about 87,000 numbers of
50,000 customers, 80 % answered, traffic skewed so that some customers are above
the fair-use allowance; 1 % of the customers are marked heavy users for the month
(their eligible calls charged), 2 % have a service charge. The calls are priced by
`rating.core.cdr.rate_record` (a pool of rated call shapes per number type, reused with
new ids and numbers) and bulk-loaded with COPY, then VACUUM ANALYZE (what
autovacuum does to a table after a large insert).

Then each command runs as a whole process, as an operator runs it (a warm-up run,
then --runs counted runs), its output written to a file: wall time (median, min,
max), CPU time and peak memory from the kernel's accounting of the finished child.
Target (issue 8): under 30 s each.

The cluster is instance `bench-settlement` of the stack helper, its own, so that
the CDR-writing benchmark (`bench-rating`) does not drop this one's month. Loading
10 million CDRs takes many minutes: --reuse keeps the database when it holds exactly
the month this run would load (same --cdrs and --customers, and the row counts the
last load recorded), and says whether it did.

    python bench/settlement.py [--cdrs 10000000] [--customers 50000] [--runs 3] [--explain] [--reuse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import common

import asyncpg  # noqa: E402

from rating.storage import invoice_text  # noqa: E402
from rating.storage.billing import _USAGE  # noqa: E402
from rating.core.cdr import RatedCdr, rate_record  # noqa: E402
from rating.core.fair_use import Month  # noqa: E402
from rating.storage.database import migrate  # noqa: E402
from rating.core.tariff import DEFAULT_RATES, NumberType  # noqa: E402

TARGET_S = 30.0
INSTANCE = "bench-settlement"
MONTH = Month(2026, 11)
FAIRLINE = Path(sys.executable).parent / "fairline"
BYTES_PER_CDR = 700  # table and its six indexes: 357 measured at 10M rows; doubled for temp files and WAL
COMMANDS = {
    "fair-use report": ["fair-use", "report", "--month", str(MONTH)],
    "invoice": ["invoice", "--month", str(MONTH)],
}
_COPY_COLUMNS = (
    "call_id", "did", "caller", "started_at", "answered_at", "ended_at", "disposition", "hangup_cause",
    "customer_id", "number_type", "answered_target", "target_kind", "billable_seconds", "peak_seconds",
    "offpeak_seconds", "setup_eur", "usage_eur", "list_price_eur", "fair_use_eligible", "charged_eur",
    "billing_month", "source", "queue_name", "queue_wait_seconds", "queue_disposition", "queue_visits",
)


def call_shapes(per_type: int) -> dict[NumberType, list[RatedCdr]]:
    """Calls of the month rated by rate_record, per number type: the shapes the loaded CDRs reuse."""
    one_each = common.directory(1)
    shapes: dict[NumberType, list[RatedCdr]] = {}
    for seed, number_type in enumerate(NumberType):
        number = next(n for n in common.directory(40).numbers if n.number_type is number_type)
        single = common.Directory(one_each.customers, (number,), (1.0,))
        shapes[number_type] = [
            rate_record(call, number.customer_id, number.number_type, DEFAULT_RATES)
            for call in common.month_calls(single, MONTH, per_type, seed=seed)
        ]
    return shapes


def cdr_rows(directory: common.Directory, shapes: dict[NumberType, list[RatedCdr]], heavy: set[str],
             count: int, first: int, *, seed: int) -> Iterator[tuple[object, ...]]:
    """count rows for COPY: a shape of the number's type, with a new call id, number, caller and target."""
    rng = random.Random(seed)
    for i, number in enumerate(directory.pick(rng, count), start=first):
        shape = rng.choice(shapes[number.number_type])
        c, p = shape.call, shape.price
        owner = int(number.customer_id.removeprefix("cust"))
        target = None
        if c.answered_target is not None:
            target = f"+316{10_000_000 + owner:08d}" if c.target_kind == "mobile" else f"+3130{1_000_000 + owner:07d}"
        charged = 0 if p.fair_use_eligible and number.customer_id not in heavy else p.list_price_eur
        yield (
            f"{1793500000 + i // 50}.{i}", number.e164, c.caller, c.started_at, c.answered_at, c.ended_at,
            c.disposition.value, c.hangup_cause, number.customer_id, number.number_type.value, target,
            c.target_kind, p.billable_seconds, p.peak_seconds, p.offpeak_seconds, p.setup_eur, p.usage_eur,
            p.list_price_eur, p.fair_use_eligible, charged, shape.billing_month, "live", c.queue,
            c.queue_wait_seconds, c.queue_disposition.value if c.queue_disposition else None,
            json.dumps([v.to_json() for v in c.queue_visits]),
        )


async def load(url: str, cdrs: int, customers: int) -> dict[str, object]:
    """Migrate, then load the directory, decisions, service charges and cdrs CDRs; return what was loaded."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        directory = common.directory(customers)
        rng = random.Random(3)
        heavy = set(rng.sample(directory.customers, customers // 100))
        charged = rng.sample(directory.customers, customers // 50)
        await conn.copy_records_to_table(
            "customers", records=[(c, f"Customer {c[4:]} BV") for c in directory.customers],
            columns=("customer_id", "name"))
        await conn.copy_records_to_table(
            "numbers", records=[(n.e164, n.customer_id, n.number_type.value, date(2026, 1, 1))
                                for n in directory.numbers],
            columns=("e164", "customer_id", "number_type", "active_from"))
        await conn.executemany(
            "INSERT INTO heavy_user_decisions (customer_id, month, heavy, decided_by, reason) "
            "VALUES ($1, $2, true, 'bench', 'above in 3 of 6 months')",
            [(c, date(2026, 11, 1)) for c in sorted(heavy)])
        await conn.executemany(
            "INSERT INTO service_charges (customer_id, month, amount_eur, reason, charged_by) "
            "VALUES ($1, $2, 25, 'new call flow', 'bench')",
            [(c, date(2026, 11, 1)) for c in charged])

        shapes = call_shapes(4000)
        chunk = 500_000
        loaded = 0
        t0 = time.perf_counter()
        while loaded < cdrs:
            n = min(chunk, cdrs - loaded)
            await conn.copy_records_to_table(
                "cdrs", records=cdr_rows(directory, shapes, heavy, n, loaded, seed=loaded), columns=_COPY_COLUMNS)
            loaded += n
            print(f"  loaded {loaded:,} CDRs ({time.perf_counter() - t0:.0f} s)", flush=True)
        copy_seconds = time.perf_counter() - t0
        with common.Stopwatch() as vacuuming:
            await conn.execute("VACUUM (ANALYZE) cdrs")
        return {**await contents(conn), "copy_seconds": round(copy_seconds, 1),
                "vacuum_analyze_seconds": round(vacuuming.seconds, 1)}
    finally:
        await conn.close()


_CONTENTS = """
SELECT (SELECT count(*) FROM cdrs) AS cdrs,
       (SELECT count(*) FROM cdrs WHERE answered_at IS NOT NULL) AS answered,
       (SELECT count(*) FROM customers) AS customers,
       (SELECT count(*) FROM numbers) AS numbers,
       (SELECT count(*) FROM heavy_user_decisions) AS heavy_users,
       (SELECT count(*) FROM service_charges) AS service_charges,
       (SELECT count(*) FROM cdrs WHERE billing_month IS DISTINCT FROM $1) AS cdrs_of_other_months,
       pg_total_relation_size('cdrs') AS cdrs_total_bytes
"""


async def contents(conn: asyncpg.Connection) -> dict[str, int]:
    """What the database holds: the row counts a reuse compares, and the size of cdrs with its indexes."""
    return dict(await conn.fetchrow(_CONTENTS, date(MONTH.year, MONTH.month, 1)))


async def reusable(url: str, record: Path, cdrs: int, customers: int) -> dict[str, object] | str:
    """The recorded load when the database holds exactly what this run would load, else why not."""
    if not record.exists():
        return "no load recorded"
    loaded = json.loads(record.read_text())
    if (loaded["cdrs"], loaded["customers"]) != (cdrs, customers):
        return f"it holds {loaded['cdrs']:,} CDRs of {loaded['customers']:,} customers"
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        now = await contents(conn)
    finally:
        await conn.close()
    changed = [f"{k} {loaded.get(k, 0):,} -> {v:,}" for k, v in now.items()
               if k != "cdrs_total_bytes" and v != loaded.get(k, 0)]
    return f"its rows changed since the load ({', '.join(changed)})" if changed else loaded


def run_command(argv: list[str], env: dict[str, str], out: Path) -> dict[str, float]:
    """One run of a whole command, its stdout to out: wall, user and sys seconds, peak memory, exit code."""
    err_path = out.with_suffix(".err")
    with open(out, "wb") as stdout, open(err_path, "wb") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own CPU and peak memory, as the kernel counted
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{err_path.read_text(errors='replace')}")
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024}


def time_command(name: str, args: list[str], url: str, work: Path, runs: int, warmup: int) -> dict[str, object]:
    env = dict(os.environ, DATABASE_URL=url)
    out = work / f"{name.replace(' ', '-')}.out"
    for _ in range(warmup):
        run_command([str(FAIRLINE), *args], env, out)
    counted = [run_command([str(FAIRLINE), *args], env, out) for _ in range(runs)]
    walls = [r["wall_s"] for r in counted]
    median = statistics.median(walls)
    with open(out, "rb") as f:
        lines = sum(1 for _ in f)
    summary = {
        "command": f"fairline {' '.join(args)}", "runs": runs, "warmup": warmup,
        "wall_s_median": round(median, 2), "wall_s_min": round(min(walls), 2), "wall_s_max": round(max(walls), 2),
        "user_s_median": round(statistics.median(r["user_s"] for r in counted), 2),
        "sys_s_median": round(statistics.median(r["sys_s"] for r in counted), 2),
        "max_rss_mb": round(max(r["max_rss_mb"] for r in counted)),
        "output_lines": lines, "output_bytes": out.stat().st_size,
        "ratio_to_target": round(median / TARGET_S, 2),
    }
    print(f"  {name:16} median {median:7.2f} s  (min {min(walls):.2f}, max {max(walls):.2f}; "
          f"{lines:,} lines of output)", flush=True)
    return summary


async def explain(url: str) -> str:
    """EXPLAIN ANALYZE of the two commands' queries, as they run them (the invoice's with its settings)."""
    conn = await asyncpg.connect(url)
    try:
        window = MONTH.window(6)
        month_start = date(MONTH.year, MONTH.month, 1)
        usage = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {_USAGE}",
                                 date(window[0].year, window[0].month, 1), month_start)
        plans = ["-- fair-use report: _USAGE\n" + "\n".join(r[0] for r in usage)]
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for setting in invoice_text._SETTINGS:
                await conn.execute(setting)
            args = (month_start, str(MONTH))
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {invoice_text._INVOICES}", *args)
            plans.append("-- invoice: _INVOICES\n" + "\n".join(r[0] for r in rows))
            columns = list(zip(*(row[:9] for row in await conn.fetch(invoice_text._INVOICES, *args))))
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {invoice_text._LINES}", month_start, *columns)
            plans.append("-- invoice: _LINES\n" + "\n".join(r[0] for r in rows))
        return "\n\n".join(plans) + "\n"
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdrs", type=int, default=10_000_000, help="CDRs in the month")
    parser.add_argument("--customers", type=int, help="customers (default: one per 200 CDRs, at least 1,000)")
    parser.add_argument("--runs", type=int, default=3, help="counted runs of each command, after one warm-up")
    parser.add_argument("--explain", action="store_true",
                        help="also write EXPLAIN ANALYZE of the commands' queries to results/settlement_plans.txt")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the loaded month when the database holds exactly what this run would load")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "settlement.json")
    args = parser.parse_args()
    customers = args.customers or max(1_000, args.cdrs // 200)

    needed_gb = args.cdrs * BYTES_PER_CDR / 1e9
    free_gb = common.disk_free_gb()
    if needed_gb * 1.5 > free_gb:
        raise SystemExit(f"{args.cdrs:,} CDRs need about {needed_gb:.1f} GB in {common.stackmod.CACHE}, "
                         f"{free_gb:.1f} GB free: use a smaller --cdrs")

    print(f"settlement: {args.cdrs:,} CDRs of {customers:,} customers in {MONTH} "
          f"(about {needed_gb:.1f} GB; {free_gb:.0f} GB free)", flush=True)
    with common.private_postgres(INSTANCE, keep=args.reuse) as stack:
        url = stack.database_url
        record = stack.state_dir / "settlement_load.json"
        loaded = asyncio.run(reusable(url, record, args.cdrs, customers)) if args.reuse else "--reuse not given"
        if isinstance(loaded, dict):
            loaded = {**loaded, "reused": True}
            print(f"  reusing the loaded month: {loaded['cdrs']:,} CDRs, {loaded['answered']:,} answered, "
                  f"row counts as recorded after its load", flush=True)
        else:
            if args.reuse:
                print(f"  not reusing the database: {loaded}; loading anew", flush=True)
                stack.psql("postgres", "DROP DATABASE IF EXISTS fairline WITH (FORCE)")
                stack.psql("postgres", "CREATE DATABASE fairline")
            record.unlink(missing_ok=True)
            loaded = asyncio.run(load(url, args.cdrs, customers))
            record.write_text(json.dumps(loaded, indent=2) + "\n")
            print(f"  {loaded['cdrs']:,} CDRs in {loaded['copy_seconds']} s by COPY "
                  f"({loaded['cdrs'] / max(loaded['copy_seconds'], 0.001):,.0f} rows/s), "
                  f"{loaded['cdrs_total_bytes'] / 1e9:.2f} GB with indexes", flush=True)
        timings = [time_command(name, argv, url, stack.state_dir, args.runs, 1) for name, argv in COMMANDS.items()]
        if args.explain:
            plans = asyncio.run(explain(url))
            path = args.out.with_name("settlement_plans.txt")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(plans)
            print(f"  query plans written to {path}")
        settings = common.server_settings(stack)

    print(f"\nfair-use settlement of {MONTH}, {loaded['cdrs']:,} CDRs of {customers:,} customers "
          f"(target under {TARGET_S:.0f} s each):")
    common.print_table(
        ["command", "median s", "min s", "max s", "x target", "user s", "sys s", "peak MB", "output lines"],
        [[t["command"], t["wall_s_median"], t["wall_s_min"], t["wall_s_max"], t["ratio_to_target"],
          t["user_s_median"], t["sys_s_median"], t["max_rss_mb"], f"{t['output_lines']:,}"] for t in timings])
    common.write_results(args.out, {
        "method": __doc__.strip().splitlines()[0], "month": str(MONTH), "target_s": TARGET_S,
        "cores": os.cpu_count(), "postgres": settings, "loaded": loaded, "results": timings,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
