"""Applying configuration versions on a running fairline (issue 16): how long until a stored version is
in force, and whether applying it stalls the event loop while calls are routed.

One stack (Asterisk 22, PostgreSQL, fairline) runs bench/fairline.yaml plus N routed numbers (default
5,000). sipp places calls at --rate calls/s (default 50) to a forwarded number for the whole run, while
the bench stores versions in PostgreSQL the way `fairline config apply` does (store_version: one
transaction, the notification at commit; the per-number change rows, which the command computes before
it stores, are left out: they cost the command, not the node):

  one number   --applies versions (default 100), each changing one number's first target
  whole file   --whole versions (default 5), each a different set of all N numbers' targets

"In force" is the time from the commit until fairline's /healthz shows the new version (polled every
5 ms): checked, switched, new calls routed by it. The loop's lag is fairline's own: its ticker runs
every millisecond here (FAIRLINE_LOOP_TICK_MS=1; production samples every 50 ms), the longest lag is
`fairline_event_loop_lag_max_seconds` (exact; it covers the last 10-20 s, read every second), the
p99 the histogram's bucket bound; `loop.stalled` lines (held over 100 ms) are counted.

A phase runs from the first version's commit until the fallback dialplan of its last version is
loaded in Asterisk (published at most every 10 s: live_config.py), so a phase's lag includes the
reload. Before each phase, 20 s of calls only (twice the gauge's window): the phase's max then
holds nothing of the phase before, and the gap's own max is the loop's lag under calls alone.

--arms compares ways of running fairline's process, alternated in the same run (one number: each
arm gets --applies / (rounds x arms) versions per phase; whole file: --whole / (rounds x arms)):
  as-started  fairline as the stack starts it (as root: every thread SCHED_RR 1, docs/operations.md)
  nice0       every thread of fairline at nice 0, SCHED_OTHER
  nice-10     every thread at nice -10 (a higher CPU weight than Asterisk's and PostgreSQL's)
  rr          the event loop's thread SCHED_RR priority 1 (reset on fork: threads and children started
              later run as usual), the other threads SCHED_OTHER at nice 0
  rr-all      every thread there is SCHED_RR priority 1 (the GIL's other holders too; reset on fork)
  chrt-rr     every thread SCHED_RR priority 1, threads started later too: as `chrt --rr 1` runs it

    .venv/bin/python bench/config_apply.py [--numbers 5000] [--applies 100] [--whole 5] [--rate 50]
        [--arms as-started] [--rounds 1] [--instance cfgbench]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "asterisk-docker"))
sys.path.insert(0, str(ROOT / "bench"))

import asyncpg  # noqa: E402

import call_path  # noqa: E402
import stack as stackmod  # noqa: E402
from rating.storage.config_store import newest_version, store_version  # noqa: E402

INSTANCE = "cfgbench"
LOOP_TICK_MS = 1
QUIET_S = 20.0  # calls only before each phase: twice the window of fairline_event_loop_lag_max_seconds
READ_EVERY_S = 1.0  # the gauge is read this often (its window: 10 s)
TARGET_STALL_MS = 10.0
TARGET_ONE_S, TARGET_WHOLE_S = 1.0, 5.0


class BigConfig:
    """The call-path bench's configuration plus `numbers` routed numbers, each ringing a mobile and a landline."""

    def __init__(self, numbers: int) -> None:
        base = yaml.safe_load((ROOT / "bench" / "fairline.yaml").read_text())
        self.customer = base["numbers"][0]["customer"]
        listed = base.pop("numbers")
        base["numbers"] = listed  # last: the extra numbers are appended as text
        self.head = yaml.safe_dump(base, sort_keys=False)
        self.numbers = numbers

    def text(self, first_target: dict[int, str] | None = None, landline_block: int = 0) -> str:
        """All numbers; number i's first target is first_target[i] where given; landlines from block `landline_block`."""
        changed = first_target or {}
        items = [f"- number: '+3120{3000000 + i}'\n  customer: {self.customer}\n  type: local\n  route:\n"
                 f"    targets: ['{changed.get(i, f'+316{20000000 + i}')}', '+3130{landline_block}{300000 + i}']\n"
                 for i in range(self.numbers)]
        return self.head + "".join(items)


def status(stack: stackmod.Stack, what: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ports.status}/{what}", timeout=5) as r:
        return str(r.read().decode())


def version_in_force(stack: stackmod.Stack) -> str | None:
    return json.loads(status(stack, "healthz"))["config"]["version"]  # type: ignore[no-any-return]


def lag_buckets(stack: stackmod.Stack) -> dict[float, float]:
    return call_path.histograms(stack)["loop_lag"]


def lag_max_ms(stack: stackmod.Stack) -> float:
    """fairline's longest loop lag of the last 10-20 s, in ms."""
    found = re.search(r"^fairline_event_loop_lag_max_seconds ([0-9.e+-]+)$", call_path.metrics_text(stack), re.M)
    if found is None:
        raise SystemExit("fairline exposes no fairline_event_loop_lag_max_seconds: is it this tree's fairline?")
    return round(float(found.group(1)) * 1000, 2)


def set_arm(pid: int, arm: str) -> None:
    """Run fairline's process (its threads; not its checker child) as `arm` says (the module docstring)."""
    if arm == "as-started":
        return
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        try:
            if arm == "chrt-rr":
                os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(1))
                continue
            if arm == "rr-all" or arm == "rr" and tid == pid:
                # As systemd's CPUSchedulingResetOnFork=yes: threads and children started later run as usual.
                os.sched_setscheduler(tid, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(1))
                continue
            if os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK != os.SCHED_OTHER:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            if arm in ("nice0", "nice-10", "rr"):
                os.setpriority(os.PRIO_PROCESS, tid, -10 if arm == "nice-10" else 0)
        except ProcessLookupError:  # a worker thread that ended meanwhile
            pass


def wait_for_publish(stack: stackmod.Stack, version: str, timeout_s: float) -> bool:
    """Until fairline's log says whether `version`'s fallback reached Asterisk; True when it did."""
    deadline = time.monotonic() + timeout_s
    outcome = re.compile(rf'"version": "{re.escape(version)}".*"event": "fallback\.(published|not_published)"')
    while (found := outcome.search(stack.log("fairline").read_text(errors="replace")[-200_000:])) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no fallback.published for {version} after {timeout_s:.0f} s: see {stack.log('fairline')}")
        time.sleep(0.2)
    return found.group(1) == "published"


@dataclasses.dataclass
class Phase:
    name: str
    arm: str
    in_force_s: list[float]
    lag_p99_ms: float
    lag_max_ms: float  # exact: the gauge's largest reading during the phase
    quiet_lag_max_ms: float  # the calls-only gap before it
    published: bool  # the last version's fallback reached Asterisk (else fallback.not_published was logged)
    ended: float  # time.monotonic() at its end

    def summary(self) -> dict[str, Any]:
        xs = sorted(self.in_force_s)
        return {"phase": self.name, "arm": self.arm, "applies": len(xs),
                "in_force_median_s": round(statistics.median(xs), 3),
                "in_force_p99_s": round(call_path.percentile(xs, 99), 3), "in_force_max_s": round(xs[-1], 3),
                "loop_lag_p99_ms": self.lag_p99_ms, "loop_lag_max_ms": self.lag_max_ms,
                "quiet_loop_lag_max_ms": self.quiet_lag_max_ms, "published": self.published}


async def apply_all(stack: stackmod.Stack, texts: list[str], name: str, arm: str, pause_s: float) -> Phase:
    """Calls only for QUIET_S, then each text stored as the newest version in turn, each timed until fairline
    runs it, until the last one's fallback is in Asterisk; fairline run as `arm` throughout."""
    assert stack.fairline is not None
    set_arm(stack.fairline.pid, arm)
    await asyncio.sleep(QUIET_S)
    quiet = await asyncio.to_thread(lag_max_ms, stack)
    readings: list[float] = []
    reading = True

    async def read_lag() -> None:
        while reading:
            readings.append(await asyncio.to_thread(lag_max_ms, stack))
            await asyncio.sleep(READ_EVERY_S)

    conn = await asyncpg.connect(stack.database_url)
    before = lag_buckets(stack)
    reader = asyncio.create_task(read_lag())
    in_force = []
    try:
        for text in texts:
            newest = await newest_version(conn)
            stored = await store_version(conn, content=text, author="bench", role="admin", reason=name,
                                         based_on=newest.id if newest else None, changes=[])
            committed = time.monotonic()
            while await asyncio.to_thread(version_in_force, stack) != stored.name:
                if time.monotonic() - committed > 60:
                    raise SystemExit(f"{stored.name} not in force after 60 s: see {stack.log('fairline')}")
                await asyncio.sleep(0.005)
            in_force.append(time.monotonic() - committed)
            await asyncio.sleep(pause_s)
        published = await asyncio.to_thread(wait_for_publish, stack, stored.name, 60)
    finally:
        reading = False
        await reader
        await conn.close()
    readings.append(await asyncio.to_thread(lag_max_ms, stack))
    p99, _ = call_path.bucket_quantiles(before, lag_buckets(stack))
    return Phase(name, arm, in_force, p99, max(readings), quiet, published, time.monotonic())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=5000)
    parser.add_argument("--applies", type=int, default=100)
    parser.add_argument("--whole", type=int, default=5)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--arms", default="as-started", help="comma-separated: as-started, nice0, nice-10, rr, rr-all, chrt-rr")
    parser.add_argument("--rounds", type=int, default=1, help="each arm's phases, alternated with the others'")
    parser.add_argument("--instance", default=INSTANCE, help="the stack's instance name (its directories, ports)")
    parser.add_argument("--out", type=Path, default=call_path.RESULTS / "config_apply.json")
    args = parser.parse_args()
    arms = args.arms.split(",")
    if not set(arms) <= {"as-started", "nice0", "nice-10", "rr", "rr-all", "chrt-rr"}:
        parser.error(f"--arms {args.arms}: expected as-started, nice0, nice-10, rr, rr-all or chrt-rr, comma-separated")
    turns = [arm for _ in range(args.rounds) for arm in arms]
    os.environ["FAIRLINE_LOOP_TICK_MS"] = str(LOOP_TICK_MS)  # fairline's environment is the bench's (stack.py)

    stackmod.install_prerequisites()
    tcpdump = call_path.ensure_tcpdump()
    stack = stackmod.Stack.create(args.instance, stackmod.Ports.free())
    stack.external_database_url = None
    stack.fairline_log_level = "info"
    stack.app_config = stack.state_dir / "bench-config-apply.yaml"
    big = BigConfig(args.numbers)
    stack.app_config.write_text(big.text())
    # Version i changes number i's first target, on top of the versions before it.
    one_number = [big.text({j: f"+3165{j:07d}" for j in range(i + 1)}) for i in range(args.applies)]
    whole = [big.text(landline_block=k + 1) for k in range(args.whole)]  # every number's landline changes
    started = time.monotonic()
    log_from = stack.log("fairline").stat().st_size if stack.log("fairline").exists() else 0
    stack.start(with_fairline=True)
    try:
        call_path.drain(stack)
        calls: dict[str, Any] = {}
        # Generous: each phase waits QUIET_S first and up to 10 s for its last publish; the run checks below.
        seconds = len(turns) * 2 * (QUIET_S + 20) + args.applies * 1.0 + args.whole * 15 + 20

        def place_calls() -> None:
            work = stack.state_dir / f"bench-config-apply-{time.monotonic_ns()}"
            work.mkdir()
            run, _ = call_path.run_sipp(stack, tcpdump, "fairline", args.rate, seconds, call_path.CALL_SECONDS,
                                        stack.fairline.pid if stack.fairline else None, work)
            calls["run"], calls["ended"] = run, time.monotonic()

        caller = threading.Thread(target=place_calls)
        caller.start()
        time.sleep(3)  # calls flowing before the first version
        phases = [asyncio.run(apply_all(stack, part, "one number", arm, 0.2))
                  for arm, part in zip(turns, split(one_number, len(turns)))]
        phases += [asyncio.run(apply_all(stack, part, "whole file", arm, 1.0))
                   for arm, part in zip(turns, split(whole, len(turns))) if part]
        caller.join()
        stalls = stack.log("fairline").read_bytes()[log_from:].decode(errors="replace").count('"loop.stalled"')
    finally:
        stack.stop()
    run = calls["run"]
    print(f"\n{args.numbers} routed numbers (+ the call-path bench's), calls at {args.rate}/s meanwhile:")
    for phase in phases:
        s = phase.summary()
        print(f"  {s['phase']:10} {s['arm']:10} {s['applies']:3d} versions  in force median {s['in_force_median_s']:.3f} s, "
              f"p99 {s['in_force_p99_s']:.3f} s, max {s['in_force_max_s']:.3f} s   loop lag p99 <= "
              f"{s['loop_lag_p99_ms']:g} ms, max {s['loop_lag_max_ms']:g} ms (calls only before: "
              f"{s['quiet_loop_lag_max_ms']:g} ms)" + ("" if s["published"] else "; its fallback NOT published")
              + ("; WITHOUT CALLS at its end (sipp had finished)" if phase.ended > calls["ended"] else ""))
    print(f"  calls: {run.completed} of {run.offered} completed, {run.failed} failed, {run.shed} shed, "
          f"set-up median {run.median_ms} ms, p99 {run.p99_ms} ms; loop.stalled lines: {stalls}")
    targets_: dict[str, dict[str, Any]] = {}
    for arm in arms:
        one = [x for p in phases if p.arm == arm and p.name == "one number" for x in p.in_force_s]
        all_ = [x for p in phases if p.arm == arm and p.name == "whole file" for x in p.in_force_s]
        stall = max(p.lag_max_ms for p in phases if p.arm == arm)
        targets_[f"one_number_in_force_p99_s ({arm})"] = {
            "value": round(call_path.percentile(sorted(one), 99), 3), "target": f"< {TARGET_ONE_S}"}
        if all_:
            targets_[f"whole_file_in_force_max_s ({arm})"] = {"value": round(max(all_), 3),
                                                              "target": f"< {TARGET_WHOLE_S}"}
        targets_[f"loop_lag_max_ms ({arm})"] = {"value": stall, "target": f"< {TARGET_STALL_MS}"}
    targets_["calls_failed_or_shed"] = {"value": run.failed + run.shed, "target": "0"}
    print("against issue 16's targets:")
    for name, t in targets_.items():
        print(f"  {name:40} {t['value']}  (target {t['target']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"numbers": args.numbers, "rate": args.rate, "arms": arms, "phases": [p.summary() for p in phases],
                                    "calls": dataclasses.asdict(run), "loop_stalled_lines": stalls,
                                    "targets": targets_, "bench_seconds": round(time.monotonic() - started)},
                                   indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
    print(f"written {args.out}")
    return 0


def split(texts: list[str], parts: int) -> list[list[str]]:
    """`texts` in `parts` consecutive runs, as even as they go (the later ones may be empty)."""
    size = math.ceil(len(texts) / parts)
    return [texts[i * size:(i + 1) * size] for i in range(parts)]


if __name__ == "__main__":
    sys.exit(main())
