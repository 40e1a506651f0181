"""Migration 0020 (cdrs partitioned by month, decision 0033) on a filled table: how long per million rows.

A private PostgreSQL (bench/common.py), the schema of the migrations before 0020, N CDRs of
bench/settlement.py's shapes (those of November 2026) spread over twelve months by their billing_month,
then 0020 timed, with the row count and a checksum of every whole row before and after (they must
be equal). Prints one JSON object.

    python bench/cdr_partitioning.py [--cdrs 1000000] [--customers 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import date

import common

import asyncpg  # noqa: E402

from rating.storage.database import bundled_migrations, migrate  # noqa: E402
from settlement import _COPY_COLUMNS, call_shapes, cdr_rows  # noqa: E402

INSTANCE = "bench-partitioning"
MONTH_INDEX = _COPY_COLUMNS.index("billing_month")
_CHECKSUM = "SELECT count(*) AS n, md5(string_agg(md5(c::text), '' ORDER BY call_id)) AS sum FROM cdrs c"


async def run(url: str, cdrs: int, customers: int) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, [m for m in bundled_migrations() if m.version < "0020"])
        directory = common.directory(customers)
        shapes = call_shapes(1000)
        # Twelve months of rows: the shape's month moved back by the row number modulo 12.
        months = [date(2025 + (10 + k) // 12, (10 + k) % 12 + 1, 1) for k in range(12)]
        loaded, chunk = 0, 250_000
        while loaded < cdrs:
            n = min(chunk, cdrs - loaded)
            rows = [(*r[:MONTH_INDEX], months[i % 12], *r[MONTH_INDEX + 1:])
                    for i, r in enumerate(cdr_rows(directory, shapes, set(), n, loaded, seed=loaded), start=loaded)]
            await conn.copy_records_to_table("cdrs", records=rows, columns=_COPY_COLUMNS)
            loaded += n
        await conn.execute("VACUUM (ANALYZE) cdrs")
        before = dict(await conn.fetchrow(_CHECKSUM))
        t0 = time.perf_counter()
        assert await migrate(conn) == ["0020_cdrs_by_month"]
        seconds = time.perf_counter() - t0
        after = dict(await conn.fetchrow(_CHECKSUM))
        partitions = await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'cdrs'::regclass")
        return {"cdrs": cdrs, "migration_seconds": round(seconds, 1),
                "seconds_per_million": round(seconds / cdrs * 1e6, 1), "partitions": partitions,
                "before": before, "after": after, "same": before == after}
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=5_000)
    args = parser.parse_args()
    with common.private_postgres(INSTANCE) as stack:
        result = asyncio.run(run(stack.database_url, args.cdrs, args.customers))
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["same"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
