"""What the rating and settlement benchmarks share: a private PostgreSQL, synthetic calls, results.

Neither benchmark starts Asterisk: they drive fairline's rating and billing code and
its CLI against a PostgreSQL cluster of their own (instance `bench-rating` of
asterisk-docker/stack.py), whose `fairline` database is dropped and created anew.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asterisk-docker"))
sys.path.insert(0, str(ROOT))

import stack as stackmod  # noqa: E402

from rating.core.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit  # noqa: E402
from rating.core.fair_use import Month  # noqa: E402
from rating.core.tariff import NumberType  # noqa: E402

INSTANCE = "bench-rating"
RESULTS = ROOT / "results"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# E.164 prefixes that phonenumbers accepts as valid, with a time zone and holidays,
# followed by 7 or 8 digits of the synthetic number.
_PREFIXES = {
    NumberType.LOCAL: ("+3120", 7),  # Amsterdam
    NumberType.NATIONAL: ("+3185", 7),  # nation-wide 085
    NumberType.TOLLFREE: ("+31800", 7),
    NumberType.PREMIUM: ("+31900", 7),
    NumberType.INTERNATIONAL: ("+4930", 8),  # Berlin: a number abroad
}
# The mix of numbers a provider sells: mostly local, some national, few of the others.
_TYPE_WEIGHTS = {NumberType.LOCAL: 55, NumberType.NATIONAL: 20, NumberType.TOLLFREE: 12,
                 NumberType.PREMIUM: 5, NumberType.INTERNATIONAL: 8}


@dataclass(frozen=True, slots=True)
class Number:
    """A number in the synthetic directory: what the ARI app looks up in its configuration."""

    e164: str
    customer_id: str
    number_type: NumberType


@dataclass(frozen=True, slots=True)
class Directory:
    """Synthetic customers and their numbers; cum_weights says how busy each number is (skewed, like real traffic)."""

    customers: tuple[str, ...]
    numbers: tuple[Number, ...]
    cum_weights: tuple[float, ...]

    def by_e164(self) -> dict[str, Number]:
        return {n.e164: n for n in self.numbers}

    def pick(self, rng: random.Random, k: int) -> list[Number]:
        """k numbers drawn by traffic weight: a few customers make many calls, most few."""
        return rng.choices(self.numbers, cum_weights=self.cum_weights, k=k)


def directory(customers: int, *, seed: int = 8) -> Directory:
    """customers customers with 1-3 numbers each; call volume per customer follows a Pareto tail."""
    rng = random.Random(seed)
    types = list(_TYPE_WEIGHTS)
    type_weights = list(_TYPE_WEIGHTS.values())
    ids = tuple(f"cust{i:06d}" for i in range(customers))
    numbers: list[Number] = []
    cum: list[float] = []
    total = 0.0
    serial = 0
    for cid in ids:
        volume = rng.paretovariate(2.5)  # mean 1.67; about 1 customer in 30 makes 3 times the mean or more
        count = rng.choice((1, 1, 2, 3))
        for _ in range(count):
            number_type = rng.choices(types, type_weights)[0]
            prefix, digits = _PREFIXES[number_type]
            serial += 1
            numbers.append(Number(f"{prefix}{1000000 + serial * 7:0{digits}d}", cid, number_type))
            total += volume / count
            cum.append(total)
    return Directory(ids, tuple(numbers), tuple(cum))


def month_calls(directory_: Directory, month: Month, n: int, *, seed: int = 11) -> Iterator[CallRecord]:
    """n finished calls into the directory's numbers, started in month on Amsterdam's clock.

    Shaped like fairline's traffic: 80 % answered (most forwarded to a landline or
    mobile, 8 % after a wait in a queue), the rest abandoned, unanswered or busy; more
    calls in office hours; talk times from seconds to an hour (median about 1.5 min).
    """
    rng = random.Random(seed)
    start = month.start(AMSTERDAM)
    span = (month.end(AMSTERDAM) - start).total_seconds() - 4000
    offsets = [rng.random() * span for _ in range(n)]
    for k, offset in enumerate(offsets):
        if rng.random() < 0.5:  # half the calls fall in office hours: move them to 08:00-19:00 local
            offsets[k] = offset // 86400 * 86400 + 7 * 3600 + rng.random() * 11 * 3600  # UTC 07-18 ~ 08-19 CET
    # In start order, so call ids grow with time as Asterisk's channel ids do.
    offsets.sort()
    chunk = 10_000
    made = 0
    while made < n:
        numbers = directory_.pick(rng, min(chunk, n - made))
        for number in numbers:
            i = made
            offset = offsets[made]
            made += 1
            started = start + timedelta(seconds=offset)
            caller = None if rng.random() < 0.05 else f"+316{rng.randrange(10_000_000, 99_999_999)}"
            roll = rng.random()
            call_id = f"{1793500000 + i // 50}.{i}"
            if roll < 0.80:
                answered = started + timedelta(seconds=rng.uniform(2, 20))
                talk = min(3600.0, rng.lognormvariate(4.5, 1.1))
                ended = answered + timedelta(seconds=talk)
                visits: tuple[QueueVisit, ...] = ()
                if rng.random() < 0.08:
                    visits = (QueueVisit("support", answered, Decimal(f"{rng.uniform(1, 60):.3f}"),
                                         QueueOutcome.ANSWERED),)
                # Answered by one of the customer's own phones (their route's targets): a mobile or a landline.
                mobile = rng.random() < 0.4
                owner = int(number.customer_id.removeprefix("cust"))
                target = f"+316{10_000_000 + owner:08d}" if mobile else f"+3130{1_000_000 + owner:07d}"
                yield CallRecord(call_id, number.e164, caller, started, answered, ended, Disposition.ANSWERED, 16,
                                 answered_target=target, target_kind="mobile" if mobile else "fixed",
                                 queue_visits=visits)
            else:
                disposition = (Disposition.ABANDONED, Disposition.NO_ANSWER, Disposition.BUSY)[int(roll * 100) % 3]
                cause = {Disposition.ABANDONED: 16, Disposition.NO_ANSWER: 19, Disposition.BUSY: 17}[disposition]
                ended = started + timedelta(seconds=rng.uniform(1, 40))
                yield CallRecord(call_id, number.e164, caller, started, None, ended, disposition, cause)


# ---------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def private_postgres(instance: str = INSTANCE, *, keep: bool = False) -> Iterator[stackmod.Stack]:
    """The stack helper's private cluster on free ports, with an empty `fairline` database (with `keep`:
    the database as the last run left it); stopped on exit."""
    stackmod.install_prerequisites()
    stack = stackmod.Stack.create(instance, stackmod.Ports.free())
    stack.external_database_url = None  # always our own cluster: the benchmark drops its database
    stack.start_postgres()
    try:
        if not keep:
            stack.psql("postgres", "DROP DATABASE IF EXISTS fairline WITH (FORCE)")
            stack.psql("postgres", "CREATE DATABASE fairline")
        yield stack
    finally:
        stack.stop_postgres()


def server_settings(stack: stackmod.Stack) -> dict[str, str]:
    """The PostgreSQL settings that matter for these figures, as the cluster runs them (its defaults)."""
    names = ("server_version", "shared_buffers", "work_mem", "max_parallel_workers_per_gather", "fsync",
             "synchronous_commit")
    listed = ",".join(f"'{n}'" for n in names)
    out = stack.psql("fairline", f"SELECT name || '=' || current_setting(name) FROM unnest(ARRAY[{listed}]) AS name")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def disk_free_gb(path: Path = stackmod.CACHE) -> float:
    return shutil.disk_usage(path).free / 1e9


# ---------------------------------------------------------------- output


class Stopwatch:
    """Wall time of a block: `with Stopwatch() as sw: ...; sw.seconds`."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def write_results(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), **doc}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwritten {path}")
