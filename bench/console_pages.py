"""Console page benchmark (issue 19): every page under 200 ms (p95) with 5,000 customers, 50,000 numbers and
10 million CDRs in the month.

A private PostgreSQL (instance `bench-console`, its own) is loaded as the settlement
benchmark loads its month (bench/settlement.py: the same rated call shapes, COPY, then
VACUUM ANALYZE), but over a directory of 5,000 customers holding 50,000 numbers (1 to
about 1,200 each, skewed; the busiest customer gets about 330,000 calls, 3 % of the month's).
The configuration store gets one version with those customers and numbers, each
number routed to a mobile, and `fairline fair-use report` stores the month's standing
(the fair-use page shows it with the time it was computed).

Then `fairline console` runs as a process of its own (--plain-http on loopback) and
one client (httpx2, keep-alive) signs in as several customers (the three with the most
calls, the one with the most numbers, three picked at random) and as a staff member
(with TOTP), and asks each page --requests times in turn, each request another customer's
where the page is a customer's: p50, p95 and max per page, to the first byte of the
answer and to its last (a CSV is streamed). Before the counted requests each page is
asked once per session (not counted). Finally a new configuration version (one number
changed) is stored while pages are being asked: how long those requests take, and how
long until the pages show the new version.

    python bench/console_pages.py [--cdrs 10000000] [--customers 5000] [--numbers 50000] [--requests 300] [--reuse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import common
import settlement

import asyncpg  # noqa: E402
import httpx2  # noqa: E402
import pyotp  # noqa: E402

from ari_app.config.yaml_loader import parse  # noqa: E402
from ari_app.config_versions import number_changes  # noqa: E402
from console import storage  # noqa: E402
from console.core import passwords  # noqa: E402
from rating.core.fair_use import Month  # noqa: E402
from rating.core.tariff import NumberType  # noqa: E402
from rating.storage.config_store import newest_version, store_version  # noqa: E402
from rating.storage.database import migrate  # noqa: E402

TARGET_MS = 200.0
INSTANCE = "bench-console"
MONTH = Month(2026, 11)
FAIRLINE = Path(sys.executable).parent / "fairline"
PASSWORD = "bench-quartz-lantern-okapi-7"
STAFF = "staff@bench.example"
_TYPE_WEIGHTS = {NumberType.LOCAL: 55, NumberType.NATIONAL: 20, NumberType.TOLLFREE: 12,
                 NumberType.PREMIUM: 5, NumberType.INTERNATIONAL: 8}
_PREFIXES = {  # as bench/common.py: prefixes phonenumbers accepts, followed by 7 or 8 digits
    NumberType.LOCAL: ("+3120", 7), NumberType.NATIONAL: ("+3185", 7), NumberType.TOLLFREE: ("+31800", 7),
    NumberType.PREMIUM: ("+31900", 7), NumberType.INTERNATIONAL: ("+4930", 8),
}


def pages_directory(customers: int, numbers: int, *, seed: int = 19) -> common.Directory:
    """`customers` customers holding `numbers` numbers: each at least one, the rest spread by a Pareto tail
    (the biggest customers hold about a thousand); a customer's calls grow with its numbers, times a busyness
    of its own (Pareto, as bench/common.py's directory), shared evenly among its numbers."""
    rng = random.Random(seed)
    ids = tuple(f"cust{i:06d}" for i in range(customers))
    size = [rng.paretovariate(1.5) for _ in ids]
    counts = [1] * customers
    for k in rng.choices(range(customers), weights=size, k=numbers - customers):
        counts[k] += 1
    types, type_weights = list(_TYPE_WEIGHTS), list(_TYPE_WEIGHTS.values())
    made: list[common.Number] = []
    cum: list[float] = []
    total = 0.0
    serial = 0
    for cid, count in zip(ids, counts):
        busyness = rng.paretovariate(2.5)
        for _ in range(count):
            number_type = rng.choices(types, type_weights)[0]
            prefix, digits = _PREFIXES[number_type]
            serial += 1
            made.append(common.Number(f"{prefix}{1000000 + serial * 7:0{digits}d}", cid, number_type))
            total += busyness
            cum.append(total)
    return common.Directory(ids, tuple(made), tuple(cum))


def config_text(directory: common.Directory) -> str:
    """The configuration store's version: every customer, every number ringing one mobile."""
    lines = ["customers:\n"]
    lines += [f"  - id: {c}\n    name: Customer {c[4:]} BV\n" for c in directory.customers]
    lines.append("numbers:\n")
    for i, n in enumerate(directory.numbers):
        mobile = f"+49151{10_000_000 + i:08d}" if n.e164.startswith("+49") else f"+316{20_000_000 + i:08d}"
        lines.append(f'  - number: "{n.e164}"\n    customer: {n.customer_id}\n    type: {n.number_type.value}\n'
                     f'    route: {{targets: ["{mobile}"]}}\n')
    return "".join(lines)


async def load(url: str, cdrs: int, directory: common.Directory) -> dict[str, object]:
    """Migrate, load the directory and the month's CDRs as the settlement benchmark does, store the
    configuration version; return what was loaded."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.copy_records_to_table(
            "customers", records=[(c, f"Customer {c[4:]} BV") for c in directory.customers],
            columns=("customer_id", "name"))
        await conn.copy_records_to_table(
            "numbers", records=[(n.e164, n.customer_id, n.number_type.value, date(2026, 1, 1))
                                for n in directory.numbers],
            columns=("e164", "customer_id", "number_type", "active_from"))
        text = config_text(directory)
        with common.Stopwatch() as parsing:
            parse(text, "bench")  # a version is checked before it is stored
        await store_version(conn, content=text, author="bench", role="admin", reason="console page benchmark",
                            based_on=None, changes=number_changes(None, text))
        shapes = settlement.call_shapes(4000)
        loaded = 0
        t0 = time.perf_counter()
        while loaded < cdrs:
            n = min(500_000, cdrs - loaded)
            await conn.copy_records_to_table(
                "cdrs", records=settlement.cdr_rows(directory, shapes, set(), n, loaded, seed=loaded),
                columns=settlement._COPY_COLUMNS)
            loaded += n
            print(f"  loaded {loaded:,} CDRs ({time.perf_counter() - t0:.0f} s)", flush=True)
        copy_seconds = time.perf_counter() - t0
        with common.Stopwatch() as vacuuming:
            await conn.execute("VACUUM (ANALYZE) cdrs")
        return {**await contents(conn), "config_parse_seconds": round(parsing.seconds, 1),
                "copy_seconds": round(copy_seconds, 1),
                "vacuum_analyze_seconds": round(vacuuming.seconds, 1)}
    finally:
        await conn.close()


async def contents(conn: asyncpg.Connection) -> dict[str, int]:
    return dict(await conn.fetchrow(
        "SELECT (SELECT count(*) FROM cdrs) AS cdrs, (SELECT count(*) FROM customers) AS customers, "
        "(SELECT count(*) FROM numbers) AS numbers, "
        "(SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'cdrs'::regclass)::bigint "
        "AS cdrs_total_bytes"))


async def reusable(url: str, record: Path, wanted: dict[str, int]) -> dict[str, object] | str:
    """The recorded load when the database holds exactly what this run would load, else why not."""
    if not record.exists():
        return "no load recorded"
    loaded = json.loads(record.read_text())
    if {k: loaded.get(k) for k in wanted} != wanted:
        return f"it holds {loaded.get('cdrs', 0):,} CDRs, {loaded.get('customers', 0):,} customers"
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)  # a migration added since the load (an index, say) is built now
        now = await contents(conn)
    finally:
        await conn.close()
    changed = [f"{k} {loaded[k]:,} -> {v:,}" for k, v in now.items() if k != "cdrs_total_bytes" and v != loaded[k]]
    return f"its rows changed since the load ({', '.join(changed)})" if changed else loaded


# ---------------------------------------------------------------- accounts and the console process


@dataclass(frozen=True)
class Sample:
    customer_id: str
    why: str
    calls: int
    numbers: list[str]


async def accounts(url: str, directory: common.Directory, *, random_customers: int = 3) -> tuple[list[Sample], str]:
    """Customer accounts for the sample, a staff account with TOTP (its secret returned); anew each run."""
    conn = await asyncpg.connect(url)
    try:
        busiest = await conn.fetch(
            "SELECT customer_id, count(*) AS calls FROM cdrs WHERE billing_month = $1 "
            "GROUP BY customer_id ORDER BY calls DESC LIMIT 3", date(MONTH.year, MONTH.month, 1))
        by_customer: dict[str, list[str]] = {}
        for n in directory.numbers:
            by_customer.setdefault(n.customer_id, []).append(n.e164)
        most_numbers = max(by_customer, key=lambda c: len(by_customer[c]))
        picked = [(r["customer_id"], "most calls") for r in busiest]
        if most_numbers not in {c for c, _ in picked}:
            picked.append((most_numbers, "most numbers"))
        rng = random.Random(7)
        picked += [(c, "random") for c in rng.sample(sorted(set(directory.customers) - {c for c, _ in picked}),
                                                       random_customers)]
        samples = []
        for cid, why in picked:
            count = await conn.fetchval("SELECT count(*) FROM cdrs WHERE customer_id = $1", cid)
            samples.append(Sample(cid, why, count, sorted(by_customer[cid])))
        await conn.execute("TRUNCATE console_sessions, console_audit, console_users CASCADE")
        hashed = passwords.hash_password(PASSWORD)
        now = datetime.now(timezone.utc)
        for s in samples:
            await storage.add_account(conn, email=f"{s.customer_id}@bench.example", name=f"User {s.customer_id}",
                                      role="customer", customer_id=s.customer_id, password_hash=hashed, now=now)
        staff = await storage.add_account(conn, email=STAFF, name="Bench Staff", role="staff", customer_id=None,
                                          password_hash=hashed, now=now)
        secret = pyotp.random_base32()
        await storage.enrol_totp(conn, staff.user_id, secret, 0)
        # An audit of some length, as the staff page reads it.
        await conn.executemany(
            "INSERT INTO console_audit (at, event, email, address, detail) VALUES ($1, 'login_failed', $2, $3, '')",
            [(now - timedelta(minutes=i), f"user{i % 500}@bench.example", f"192.0.2.{i % 250}") for i in range(50_000)])
        return samples, secret
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_console(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url)
    proc = subprocess.Popen([str(FAIRLINE), "console", "--listen", f"127.0.0.1:{port}", "--plain-http"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"fairline console exited {proc.returncode}: see {log}")
        try:
            if httpx2.get(f"{base}/login", timeout=2).status_code == 200:
                return proc, base
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    stop_console(proc)
    raise SystemExit(f"fairline console did not answer within 60 s: see {log}")


def stop_console(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(base: str, email: str, totp: str | None = None) -> httpx2.Client:
    c = httpx2.Client(base_url=base, follow_redirects=False, timeout=900)  # the first page may wait for a parse
    token = _CSRF.search(c.get("/login").text)
    assert token, "no CSRF token on /login"
    r = c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code == 303, f"{email}: {r.status_code} {r.text[:200]}"
    if r.headers["location"] == "/login/totp":
        assert totp is not None
        token = _CSRF.search(c.get("/login/totp").text)
        assert token
        r = c.post("/login/totp", data={"code": pyotp.TOTP(totp).now(), "csrf_token": token.group(1)})
        assert r.status_code == 303, f"{email}: {r.status_code} {r.text[:200]}"
    return c


# ---------------------------------------------------------------- the pages


@dataclass(frozen=True)
class Ask:
    """One request: whose session, which path."""

    client: httpx2.Client
    path: str


def timed(ask: Ask) -> tuple[float, float, int]:
    """Milliseconds to the first byte of the answer's body and to its last, and the body's size."""
    t0 = time.perf_counter()
    with ask.client.stream("GET", ask.path) as r:
        first = None
        size = 0
        body = b""
        for chunk in r.iter_bytes():
            body = body or chunk
            if first is None:
                first = time.perf_counter()
            size += len(chunk)
        end = time.perf_counter()
        if r.status_code != 200:
            raise SystemExit(f"GET {ask.path}: {r.status_code} {r.headers} {body[:300]!r}")
    return ((first or end) - t0) * 1000, (end - t0) * 1000, size


def pages(customers: list[tuple[Sample, httpx2.Client]], staff: httpx2.Client,
          big: tuple[Sample, httpx2.Client]) -> dict[str, Callable[[int], Ask]]:
    """Each page: the request to make the k-th time (customers' pages rotate through the sample)."""
    month = f"from={MONTH.start(timezone.utc).date()}&to={date(MONTH.year, MONTH.month, 30)}"
    day = "from=2026-11-17&to=2026-11-17"
    older: dict[str, str] = {}
    for s, c in customers:  # the "Older calls" link of each customer's first page, as a browser follows it
        found = re.search(r'href="(/calls\?[^"]*after=[^"]*)"', c.get("/calls").text)
        older[s.customer_id] = found.group(1).replace("&amp;", "&") if found else "/calls"
    staff_pages = ["/staff/customers"]
    for _ in range(4):  # the first five pages of the customer list
        found = re.search(r'href="(/staff/customers\?after=[^"]*)"', staff.get(staff_pages[-1]).text)
        if found is None:
            break
        staff_pages.append(found.group(1))

    def mine(make: Callable[[Sample], str]) -> Callable[[int], Ask]:
        def ask(k: int) -> Ask:
            s, c = customers[k % len(customers)]
            return Ask(c, make(s))
        return ask

    def number(s: Sample, k: int = 0) -> str:
        return s.numbers[k % len(s.numbers)]

    return {
        "numbers": mine(lambda s: "/numbers"),
        "one number": mine(lambda s: f"/numbers/{number(s, 1)}"),
        "calls": mine(lambda s: "/calls"),
        "calls, older page": mine(lambda s: older[s.customer_id]),
        "calls, a number": mine(lambda s: "/calls?" + urlencode({"number": number(s)})),
        "calls, outcome busy": mine(lambda s: "/calls?outcome=busy"),
        "calls, the month": mine(lambda s: f"/calls?{month}"),
        "calls, a number and month": mine(lambda s: f"/calls?{month}&" + urlencode({"number": number(s, 2)})),
        "calls, failed in the month": mine(lambda s: f"/calls?{month}&outcome=failed"),
        "calls CSV, a day": mine(lambda s: f"/calls.csv?{day}"),
        "fair use": mine(lambda s: "/fair-use"),
        "staff: customers": lambda k: Ask(staff, staff_pages[k % len(staff_pages)]),
        "staff: biggest customer": lambda k: Ask(staff, f"/staff/customers/{big[0].customer_id}"),
        "staff: a customer": lambda k: Ask(staff, f"/staff/customers/{customers[k % len(customers)][0].customer_id}"),
        "staff: audit": lambda k: Ask(staff, "/staff/audit"),
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(asks: dict[str, Callable[[int], Ask]], requests: int, warm: int) -> list[dict[str, object]]:
    for ask in asks.values():  # each page and session once, uncounted (templates compiled, plans cached)
        for k in range(warm):
            timed(ask(k))
    rows = []
    for name, ask in asks.items():
        firsts, lasts, sizes = [], [], []
        for k in range(requests):
            first, last, size = timed(ask(k))
            firsts.append(first)
            lasts.append(last)
            sizes.append(size)
        row = {"page": name, "requests": requests, "p50_ms": round(statistics.median(lasts), 1),
               "p95_ms": round(percentile(lasts, 95), 1), "max_ms": round(max(lasts), 1),
               "first_byte_p95_ms": round(percentile(firsts, 95), 1), "median_bytes": int(statistics.median(sizes)),
               "example": ask(0).path}
        rows.append(row)
        print(f"  {name:28} p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  max {row['max_ms']:7.1f} ms",
              flush=True)
    return rows


async def new_version(url: str) -> str:
    """A version with one number's target changed, as a customer's edit stores it; its name."""
    conn = await asyncpg.connect(url)
    try:
        newest = await newest_version(conn)
        assert newest is not None
        at = newest.content.index('["+3162')
        text = newest.content[:at] + '["+3163' + newest.content[at + 7:]  # one mobile target, still a mobile
        # The change of that one number, as number_changes finds it (over the whole texts: a minute of CPU).
        start = newest.content.rindex("  - number:", 0, at)
        end = newest.content.find("  - number:", at)
        block = slice(start, end if end > 0 else None)
        changes = number_changes("numbers:\n" + newest.content[block], "numbers:\n" + text[block])
        stored = await store_version(conn, content=text, author="bench", role="admin", reason="one number",
                                     based_on=newest.id, changes=changes)
        return stored.name
    finally:
        await conn.close()


def after_new_version(url: str, ask: Ask) -> dict[str, object]:
    """Pages asked right after a new version is stored: their times, and how long until they show it."""
    name = asyncio.run(new_version(url))
    t0 = time.perf_counter()
    times = []
    shown_after = None
    while time.perf_counter() - t0 < 900:
        started = time.perf_counter()
        r = ask.client.get(ask.path)
        times.append((time.perf_counter() - started) * 1000)
        if f"version {name}, the one in service" in r.text:
            shown_after = time.perf_counter() - t0
            break
        time.sleep(0.1)  # a few people reloading, not a flood that would starve the parse of the GIL
    return {"version": name, "requests_until_shown": len(times), "max_ms": round(max(times), 1),
            "p95_ms": round(percentile(times, 95), 1),
            "seconds_until_shown": round(shown_after, 2) if shown_after is not None else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdrs", type=int, default=10_000_000, help="CDRs in the month")
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--numbers", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=300, help="counted requests per page")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the loaded month when the database holds exactly what this run would load")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "console_pages.json")
    args = parser.parse_args()

    needed_gb = args.cdrs * settlement.BYTES_PER_CDR / 1e9
    if needed_gb * 1.5 > common.disk_free_gb():
        raise SystemExit(f"{args.cdrs:,} CDRs need about {needed_gb:.1f} GB in {common.stackmod.CACHE}: "
                         "use a smaller --cdrs")
    print(f"console pages: {args.cdrs:,} CDRs in {MONTH}, {args.customers:,} customers, {args.numbers:,} numbers",
          flush=True)
    directory = pages_directory(args.customers, args.numbers)
    wanted = {"cdrs": args.cdrs, "customers": args.customers, "numbers": args.numbers}
    with common.private_postgres(INSTANCE, keep=args.reuse) as stack:
        url = stack.database_url
        record = stack.state_dir / "console_pages_load.json"
        loaded = asyncio.run(reusable(url, record, wanted)) if args.reuse else "--reuse not given"
        if isinstance(loaded, dict):
            loaded = {**loaded, "reused": True}
            print(f"  reusing the loaded month: {loaded['cdrs']:,} CDRs", flush=True)
        else:
            if args.reuse:
                print(f"  not reusing the database: {loaded}; loading anew", flush=True)
                stack.psql("postgres", "DROP DATABASE IF EXISTS fairline WITH (FORCE)")
                stack.psql("postgres", "CREATE DATABASE fairline")
            record.unlink(missing_ok=True)
            loaded = asyncio.run(load(url, args.cdrs, directory))
            with common.Stopwatch() as report:
                settlement.run_command([str(FAIRLINE), "fair-use", "report", "--month", str(MONTH)],
                                       dict(os.environ, DATABASE_URL=url), stack.state_dir / "fair-use.out")
            loaded = {**loaded, "fair_use_report_seconds": round(report.seconds, 1)}
            record.write_text(json.dumps(loaded, indent=2) + "\n")
            print(f"  {loaded['cdrs']:,} CDRs in {loaded['copy_seconds']} s by COPY, "
                  f"{loaded['cdrs_total_bytes'] / 1e9:.2f} GB with indexes", flush=True)
        samples, secret = asyncio.run(accounts(url, directory))
        for s in samples:
            print(f"  customer {s.customer_id} ({s.why}): {s.calls:,} calls, {len(s.numbers)} numbers", flush=True)
        log = stack.state_dir / "console.log"
        with common.Stopwatch() as starting:
            proc, base = start_console(url, log)
        try:
            customers = [(s, sign_in(base, f"{s.customer_id}@bench.example")) for s in samples]
            staff = sign_in(base, STAFF, secret)
            with common.Stopwatch() as first:
                timed(Ask(customers[0][1], "/numbers"))
            asks = pages(customers, staff, max(customers, key=lambda sc: len(sc[0].numbers)))
            rows = measure(asks, args.requests, warm=len(customers))
            switch = after_new_version(url, Ask(customers[0][1], "/numbers"))
            print(f"  new version {switch['version']}: shown after {switch['seconds_until_shown']} s, "
                  f"{switch['requests_until_shown']} requests meanwhile, max {switch['max_ms']} ms", flush=True)
        finally:
            stop_console(proc)
        settings = common.server_settings(stack)

    print(f"\nconsole pages, {loaded['cdrs']:,} CDRs, {args.customers:,} customers, {args.numbers:,} numbers "
          f"(target p95 under {TARGET_MS:.0f} ms):")
    common.print_table(["page", "p50 ms", "p95 ms", "max ms", "first byte p95", "bytes", "ok"],
                       [[r["page"], r["p50_ms"], r["p95_ms"], r["max_ms"], r["first_byte_p95_ms"], r["median_bytes"],
                         "yes" if float(r["p95_ms"]) < TARGET_MS else "NO"] for r in rows])  # type: ignore[arg-type]
    common.write_results(args.out, {
        "method": __doc__.strip().splitlines()[0], "month": str(MONTH), "target_ms": TARGET_MS,
        "cores": os.cpu_count(), "postgres": settings, "loaded": loaded,
        "customers_sampled": [s.__dict__ | {"numbers": len(s.numbers)} for s in samples],
        "console_start_s": round(starting.seconds, 2), "first_page_ms": round(first.seconds * 1000, 1),
        "new_version": switch, "results": rows,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
