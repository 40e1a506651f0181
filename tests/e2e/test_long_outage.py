"""A ten-minute PostgreSQL outage under call load (issue 17). Not in `make test` (it takes 12 minutes):
`make test-faults` runs it.

sipp places 35 calls a second, as the carrier would, to a routed number whose target answers
and talks 2 s: about 21,000 calls during the outage, each with a CDR fairline must spool and
later replay. PostgreSQL is stopped once CDRs flow and started again after ten minutes. All the
while /metrics is read every 5 s: the event loop's lag histogram (fairline_event_loop_lag_seconds,
a 50 ms ticker's late wake-ups) must keep its p99 under 20 ms in every minute of the outage and
of the replay after it, as over the whole. Afterwards every call has exactly one CDR, and
`fairline reconcile` finds no difference.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import LiveStack, poll
from tests.e2e.sipp import SCENARIOS, sipp_ports
from tests.e2e.test_faults import ROUTED, events
from tests.e2e.test_reconcile import assert_reconciled, reconcile

pytestmark = [pytest.mark.e2e, pytest.mark.long]

RATE = 35  # calls a second: 21,000 CDRs in ten minutes (issue 17 asks for 20,000 or more)
OUTAGE_S = 600.0
LAG_P99_BOUND_S = 0.02  # issue 17; a bound of fairline's lag histogram (plumbing/loop_watch.py LAG_BOUNDS_S)
SAMPLE_S = 5.0
LAG = "fairline_event_loop_lag_seconds"


def lag_buckets(live: LiveStack) -> dict[float, float]:
    """The lag histogram's cumulative counts by upper bound (inf for +Inf)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{live.stack.ports.status}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{LAG}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def p99_bound(before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    """The smallest bucket bound holding 99 % of the lag samples taken between two readings, and their number."""
    total = after[float("inf")] - before.get(float("inf"), 0.0)
    for bound in sorted(after):
        if after[bound] - before.get(bound, 0.0) >= 0.99 * total:
            return bound, int(total)
    return float("inf"), int(total)


class LagWatch(threading.Thread):
    """Reads the lag histogram every SAMPLE_S seconds until stopped: (monotonic time, buckets)."""

    def __init__(self, live: LiveStack) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.readings: list[tuple[float, dict[float, float]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.readings.append((time.monotonic(), lag_buckets(self.live)))
            self.done.wait(SAMPLE_S)
        self.readings.append((time.monotonic(), lag_buckets(self.live)))

    def minutes(self, start: float, end: float) -> list[tuple[float, float, int]]:
        """(minute's start since `start`, p99 bound, samples) for each minute between the readings at start and end."""
        inside = [(t, b) for t, b in self.readings if start - SAMPLE_S <= t <= end + SAMPLE_S]
        out = []
        first_t, first = inside[0]
        for t, b in inside[1:]:
            if t - first_t >= 60 or t == inside[-1][0]:
                bound, samples = p99_bound(first, b)
                out.append((first_t - start, bound, samples))
                first_t, first = t, b
        return out


def test_ten_minutes_without_postgresql_under_35_calls_a_second_keep_the_loop_on_time_and_lose_no_cdr(
        live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    warm_s, after_s = 15.0, 15.0
    calls = int(RATE * (warm_s + OUTAGE_S + after_s))
    port, media = sipp_ports()
    # -l: enough calls at once for 35/s of a few seconds each; -timeout: sipp always ends.
    sipp = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uac_answered.xml"), "-s", ROUTED, "-key", "caller", "+31612345678",
         "-i", "127.0.0.1", "-p", str(port), "-mp", str(media), "-m", str(calls), "-r", str(RATE),
         "-l", str(RATE * 20), "-nostdin", "-timeout", f"{calls / RATE + 120:.0f}s", "-timeout_error",
         "-trace_stat", "-fd", "60", f"127.0.0.1:{s.ports.sip}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=s.state_dir)
    watch = LagWatch(live)
    watch.start()
    try:
        assert poll(lambda: events(live.logs(), "cdr.written"), timeout=30), "no CDR stored before the outage"
        time.sleep(max(0.0, warm_s - 10))
        s.stop_postgres()
        stopped = time.monotonic()
        try:
            while time.monotonic() - stopped < OUTAGE_S:
                assert sipp.poll() is None, "sipp ended during the outage"
                time.sleep(5)
        finally:
            s.start_postgres()
            started = time.monotonic()
        out, err = sipp.communicate(timeout=calls / RATE + 180)
        assert sipp.returncode == 0, out[-3000:] + err[-3000:]  # every call succeeded
        rows_ok = poll(lambda: int(s.psql("fairline", "SELECT count(*) FROM cdrs").strip()) >= calls, timeout=300)
        replayed_at = time.monotonic()
    finally:
        watch.done.set()
        watch.join()
        if sipp.poll() is None:
            sipp.kill()

    logs = live.logs()
    spooled = sum(int(e["count"]) for e in events(logs, "cdr.spooled"))
    replayed = events(logs, "cdr.replayed")
    counts = s.psql("fairline", "SELECT count(*), count(DISTINCT call_id), count(*) FILTER (WHERE source = 'live') "
                                "FROM cdrs").strip()
    total, distinct, live_rows = (int(x) for x in counts.split("|"))
    outage = watch.minutes(stopped, started)
    recovery = watch.minutes(started, replayed_at)
    whole_bound, whole_samples = p99_bound(next(b for t, b in watch.readings if t >= stopped - SAMPLE_S),
                                           watch.readings[-1][1])
    print(f"\n{calls} calls at {RATE}/s, PostgreSQL down {started - stopped:.0f} s; {spooled} CDRs spooled, "
          f"replayed {[(e['count'], e['new'], e['already_there']) for e in replayed]} in "
          f"{replayed_at - started:.1f} s; {total} CDRs ({distinct} call ids, {live_rows} live)")
    print(f"loop lag p99 (bucket bound) over outage and replay: <= {whole_bound * 1000:g} ms of {whole_samples} "
          f"samples; per minute of the outage: {[f'{b * 1000:g}' for _, b, _ in outage]} ms; "
          f"of the replay: {[f'{b * 1000:g}' for _, b, _ in recovery]} ms")
    assert rows_ok, f"only {total} of {calls} CDRs stored"
    assert spooled >= 20_000
    assert total == distinct == calls == live_rows  # none lost, none doubled
    assert sum(int(e["count"]) for e in replayed) == spooled
    assert not events(logs, "cdr.rejected", "cdr.dead_lettered", "cdr.unsaved", "spool.write_failed",
                      "cdr_writer.error")
    assert all(bound <= LAG_P99_BOUND_S for _, bound, _ in outage + recovery), (outage, recovery)
    assert whole_bound <= LAG_P99_BOUND_S
    # Calls fairline shed under load took the dialplan fallback and have no fairline CDR: none expected.
    assert not events(logs, "call.shed")
    assert_reconciled(live, since, calls=calls)
    assert reconcile(live, since).stdout.endswith("no differences\n")
