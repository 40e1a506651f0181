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
5 ms): checked, switched, new calls routed by it. The loop's lag is fairline's own histogram in
/metrics (a ticker every 50 ms, buckets 1-20 ms; upper bounds), read before and after each phase,
and `loop.stalled` lines (held over 100 ms) are counted.

    .venv/bin/python bench/config_apply.py [--numbers 5000] [--applies 100] [--whole 5] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
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


@dataclasses.dataclass
class Phase:
    name: str
    in_force_s: list[float]
    lag_p99_ms: float
    lag_max_ms: float

    def summary(self) -> dict[str, Any]:
        xs = sorted(self.in_force_s)
        return {"phase": self.name, "applies": len(xs), "in_force_median_s": round(statistics.median(xs), 3),
                "in_force_p99_s": round(call_path.percentile(xs, 99), 3), "in_force_max_s": round(xs[-1], 3),
                "loop_lag_p99_ms": self.lag_p99_ms, "loop_lag_max_ms": self.lag_max_ms}


async def apply_all(stack: stackmod.Stack, texts: list[str], name: str, pause_s: float) -> Phase:
    """Store each text as the newest version in turn; time each until fairline runs it."""
    conn = await asyncpg.connect(stack.database_url)
    before = lag_buckets(stack)
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
    finally:
        await conn.close()
    p99, top = call_path.bucket_quantiles(before, lag_buckets(stack))
    return Phase(name, in_force, p99, top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=5000)
    parser.add_argument("--applies", type=int, default=100)
    parser.add_argument("--whole", type=int, default=5)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--out", type=Path, default=call_path.RESULTS / "config_apply.json")
    args = parser.parse_args()

    stackmod.install_prerequisites()
    tcpdump = call_path.ensure_tcpdump()
    stack = stackmod.Stack.create(INSTANCE, stackmod.Ports.free())
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
        seconds = args.applies * 0.35 + args.whole * 8 + 10

        def place_calls() -> None:
            work = stack.state_dir / f"bench-config-apply-{time.monotonic_ns()}"
            work.mkdir()
            run, _ = call_path.run_sipp(stack, tcpdump, "fairline", args.rate, seconds, call_path.CALL_SECONDS,
                                        stack.fairline.pid if stack.fairline else None, work)
            calls["run"] = run

        caller = threading.Thread(target=place_calls)
        caller.start()
        time.sleep(3)  # calls flowing before the first version
        phases = [asyncio.run(apply_all(stack, one_number, "one number", 0.2)),
                  asyncio.run(apply_all(stack, whole, "whole file", 1.0))]
        caller.join()
        stalls = stack.log("fairline").read_bytes()[log_from:].decode(errors="replace").count('"loop.stalled"')
    finally:
        stack.stop()
    run = calls["run"]
    print(f"\n{args.numbers} routed numbers (+ the call-path bench's), calls at {args.rate}/s meanwhile:")
    for phase in phases:
        s = phase.summary()
        print(f"  {s['phase']:10}  {s['applies']:3d} versions  in force median {s['in_force_median_s']:.3f} s, "
              f"p99 {s['in_force_p99_s']:.3f} s, max {s['in_force_max_s']:.3f} s   "
              f"loop lag p99 <= {s['loop_lag_p99_ms']:g} ms, max <= {s['loop_lag_max_ms']:g} ms")
    print(f"  calls: {run.completed} of {run.offered} completed, {run.failed} failed, {run.shed} shed, "
          f"set-up median {run.median_ms} ms, p99 {run.p99_ms} ms; loop.stalled lines: {stalls}")
    one, all_ = phases[0].summary(), phases[1].summary()
    targets_ = {
        "one_number_in_force_p99_s": {"value": one["in_force_p99_s"], "target": f"< {TARGET_ONE_S}"},
        "whole_file_in_force_max_s": {"value": all_["in_force_max_s"], "target": f"< {TARGET_WHOLE_S}"},
        "loop_lag_max_ms": {"value": max(one["loop_lag_max_ms"], all_["loop_lag_max_ms"]),
                            "target": f"< {TARGET_STALL_MS} (bucket upper bound)"},
        "calls_failed_or_shed": {"value": run.failed + run.shed, "target": "0"},
    }
    print("against issue 16's targets:")
    for name, t in targets_.items():
        print(f"  {name:28} {t['value']}  (target {t['target']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"numbers": args.numbers, "rate": args.rate, "phases": [p.summary() for p in phases],
                                    "calls": dataclasses.asdict(run), "loop_stalled_lines": stalls,
                                    "targets": targets_, "bench_seconds": round(time.monotonic() - started)},
                                   indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
