"""Rating and CDR writing benchmark: synthetic finished calls priced and stored by the code `fairline run` uses.

Each call goes the way the ARI app sends it (ari_app/runtime/executor.py, Executor._write_cdr):
look the number up in the directory, `rating.core.cdr.rate_record`, then
`CdrWriter.submit`; the writer (as `fairline run` opens it: an asyncpg pool of at
most 4, default batches: 200, and up to 2,000 when more CDRs are already waiting)
inserts batches with `rating.storage.database.insert_cdrs` (binary COPY into a staging
table, then one INSERT ... SELECT; a batch of 1,000 or more as two halves at once
on two pool connections) into a real PostgreSQL (a private cluster, schema from
the migrations). Three phases over the same calls, each into an
empty `cdrs` table:

  rating            rate_record alone, in memory
  writing           the already-rated CDRs through CdrWriter alone
  rating+writing    rate and submit each call, as the app does; timed until the
                    writer has committed the last row

The calls come in the order they end, as the app writes them (call ids growing
with time, like Asterisk's). The producer yields to the event loop after each batch, as the app's event loop
would between calls, so rating overlaps with PostgreSQL executing the insert.
Target (issue 8): at least 50,000 rows/s.

    python bench/cdr_writing.py [--cdrs 1000000] [--customers 10000] [--out results/cdr_writing.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import common

import asyncpg  # noqa: E402
import structlog  # noqa: E402

from ari_app import logs  # noqa: E402
from rating.core.cdr import CallRecord, RatedCdr, rate_record  # noqa: E402
from rating.storage.cdr_writer import CdrWriter  # noqa: E402
from rating.core.fair_use import Month  # noqa: E402
from rating.storage.database import migrate  # noqa: E402
from rating.core.tariff import DEFAULT_RATES  # noqa: E402

TARGET_ROWS_PER_S = 50_000
MONTH = Month(2026, 11)


def rater(directory: common.Directory) -> Callable[[CallRecord], RatedCdr]:
    """What App._write_cdr does before submitting: find the number's owner and type, price the call."""
    numbers = directory.by_e164()

    def rate(record: CallRecord) -> RatedCdr:
        number = numbers.get(record.did)
        return rate_record(record, number.customer_id if number else None,
                           number.number_type if number else None, DEFAULT_RATES)

    return rate


def phase(name: str, rows: int, wall: float, cpu: float, batches: int | None = None) -> dict[str, object]:
    rate = rows / wall
    return {"phase": name, "rows": rows, "seconds": round(wall, 2), "rows_per_s": round(rate),
            "ratio_to_target": round(rate / TARGET_ROWS_PER_S, 2), "bench_process_cpu_s": round(cpu, 2),
            "inserts": batches}


async def write_through_writer(url: str, spool_dir: Path, items: Sequence[CallRecord] | Sequence[RatedCdr],
                               rate: Callable[[CallRecord], RatedCdr] | None) -> tuple[float, float, int, int]:
    """Submit every item (rating it first when rate is given); return wall and CPU seconds, rows stored, inserts."""
    conn = await asyncpg.connect(url)
    await conn.execute("TRUNCATE cdrs CASCADE")  # and rows that refer to them (recordings)
    await conn.execute("CHECKPOINT")  # start each phase with clean shared buffers, not the last one's dirty pages
    pool = await asyncpg.create_pool(url, min_size=0, max_size=4, timeout=5)  # as `fairline run` opens it
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        async with CdrWriter(pool, spool_dir) as writer:
            batch = 200
            for start in range(0, len(items), batch):
                for item in items[start:start + batch]:
                    writer.submit(rate(item) if rate is not None else item)  # type: ignore[arg-type]
                await asyncio.sleep(0)  # the app's loop handles other events between calls
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if writer.spooled or writer.rejected:
            raise SystemExit(f"writer spooled {writer.spooled} and rejected {writer.rejected} CDRs: see the log")
        stored = await conn.fetchval("SELECT count(*) FROM cdrs")
    finally:
        await pool.close()
        await conn.close()
    return wall, cpu, stored, writer.write_latency.count


async def measure(url: str, spool_dir: Path, calls: list[CallRecord], directory: common.Directory) -> list[dict[str, object]]:
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    rate = rater(directory)
    results = []

    wall0, cpu0 = time.perf_counter(), time.process_time()
    rated = [rate(c) for c in calls]
    results.append(phase("rating", len(rated), time.perf_counter() - wall0, time.process_time() - cpu0))
    print(f"  rating          {results[-1]['rows_per_s']:>9,} rows/s", flush=True)

    wall, cpu, stored, inserts = await write_through_writer(url, spool_dir, calls, rate)
    if stored != len(calls):
        raise SystemExit(f"rating+writing stored {stored} of {len(calls)} CDRs")
    results.append(phase("rating+writing", stored, wall, cpu, inserts))
    print(f"  rating+writing  {results[-1]['rows_per_s']:>9,} rows/s", flush=True)

    wall, cpu, stored, inserts = await write_through_writer(url, spool_dir, rated, None)
    if stored != len(rated):
        raise SystemExit(f"writing stored {stored} of {len(rated)} CDRs")
    results.append(phase("writing", stored, wall, cpu, inserts))
    print(f"  writing         {results[-1]['rows_per_s']:>9,} rows/s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdrs", type=int, default=1_000_000, help="synthetic calls to rate and store")
    parser.add_argument("--customers", type=int, default=10_000, help="customers in the synthetic directory")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "cdr_writing.json")
    args = parser.parse_args()

    directory = common.directory(args.customers)
    with common.Stopwatch() as made:
        # In the order the app writes them: when each call ends.
        calls = sorted(common.month_calls(directory, MONTH, args.cdrs), key=lambda c: c.ended_at)
    print(f"cdr writing: {len(calls):,} synthetic calls for {len(directory.numbers):,} numbers of "
          f"{args.customers:,} customers (made in {made.seconds:.1f} s, not counted)", flush=True)

    with common.private_postgres() as stack:
        spool_dir = stack.state_dir / "spool"
        spool_dir.mkdir(exist_ok=True)
        # As in production: JSON log lines at info (the writer logs each batch), here into a file.
        log_path = stack.state_dir / "cdr_writer.log"
        logs.configure("json", "info")
        with open(log_path, "w") as log_file:
            structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=log_file))
            results = asyncio.run(measure(stack.database_url, spool_dir, calls, directory))
        settings = common.server_settings(stack)

    print(f"\nrating and CDR writing, {len(calls):,} CDRs (target {TARGET_ROWS_PER_S:,} rows/s):")
    common.print_table(["phase", "rows", "seconds", "rows/s", "x target", "bench CPU s", "inserts"],
                       [[r["phase"], f"{r['rows']:,}", r["seconds"], f"{r['rows_per_s']:,}",
                         r["ratio_to_target"], r["bench_process_cpu_s"],
                         "-" if r["inserts"] is None else f"{r['inserts']:,}"] for r in results])
    common.write_results(args.out, {
        "method": __doc__.strip().splitlines()[0],
        "cdrs": len(calls), "customers": args.customers, "numbers": len(directory.numbers),
        "target_rows_per_s": TARGET_ROWS_PER_S, "cores": os.cpu_count(), "postgres": settings,
        "results": results,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
