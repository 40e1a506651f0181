"""Call-path benchmark: what fairline's routing costs against a plain dialplan Dial(), same run, same machine.

Both paths ring the same sipp phone, which answers at once, through the same
Asterisk 22:
  dialplan  fairline stopped: Stasis() fails at once and the generated fallback
            context does Dial(PJSIP/<target>@carrier-out) (the plain dialplan path)
  fairline  fairline decides the route, subscribes, and hands the call to
            Dial() in context fairline-dial (decision 0009)
For each offered rate the paths alternate. Per path and rate: calls completed and
failed, INVITE -> 200 OK median and p99 (sipp's own response times, which it
rounds to a few ms; see docs/performance.md), and fairline's CPU per call.

    python bench/call_path.py [--rates 10,25,50] [--seconds 6] [--out results/call_path.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402

DID = "+31201239001"
CALL_SECONDS = 1  # talk time after answer; keeps concurrency at about rate x (1 + set-up)


def caller_scenario(state_dir: Path) -> Path:
    """uac_talk.xml with a shorter talk time."""
    path = state_dir / "bench_uac.xml"
    text = (stackmod.SCENARIOS / "uac_talk.xml").read_text()
    path.write_text(text.replace('<pause milliseconds="2000"/>', f'<pause milliseconds="{CALL_SECONDS * 1000}"/>'))
    return path


def fairline_cpu_seconds(stack: stackmod.Stack) -> float:
    if stack.fairline is None:
        return 0.0
    fields = Path(f"/proc/{stack.fairline.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_sipp(stack: stackmod.Stack, scenario: Path, rate: int, seconds: int) -> dict[str, float]:
    calls = rate * seconds
    work = stack.state_dir / f"bench-{time.monotonic_ns()}"
    work.mkdir()
    proc = subprocess.run(
        ["sipp", "-sf", str(scenario), "-s", DID, "-key", "caller", "+31612345670",
         "-i", "127.0.0.1", "-p", str(stackmod.free_udp_port()), "-mp", str(stackmod.free_udp_port()),
         "-m", str(calls), "-r", str(rate), "-l", str(rate * 10), "-nostdin", "-timeout", f"{seconds + 30}s",
         "-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-fd", "1",
         f"127.0.0.1:{stack.ports.sip}"],
        capture_output=True, text=True, cwd=work, timeout=seconds + 60,
    )
    rtts = []
    for rtt_file in work.glob("*_rtt.csv"):
        with open(rtt_file) as f:
            for row in csv.reader(f, delimiter=";"):
                if len(row) >= 2 and row[1].replace(".", "", 1).isdigit():
                    rtts.append(float(row[1]))
    failed = successful = 0
    for stat_file in work.glob("*_.csv"):
        rows = list(csv.DictReader(open(stat_file), delimiter=";"))
        if rows:
            successful = int(rows[-1].get("SuccessfulCall(C)", 0) or 0)
            failed = int(rows[-1].get("FailedCall(C)", 0) or 0)
    if not rows_found(work):
        successful, failed = (calls, 0) if proc.returncode == 0 else (0, calls)
    rtts.sort()
    return {
        "offered": calls,
        "completed": successful,
        "failed": failed,
        "median_ms": statistics.median(rtts) if rtts else float("nan"),
        "p99_ms": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] if rtts else float("nan"),
    }


def rows_found(work: Path) -> bool:
    return any(work.glob("*_.csv"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,25,50,100", help="offered call rates (calls/s), comma-separated")
    parser.add_argument("--seconds", type=int, default=6, help="seconds of calls per rate and path")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "call_path.json")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    stackmod.install_prerequisites()
    stack = stackmod.Stack.create("bench", stackmod.Ports.free())
    stack.external_database_url = None
    stack.app_config = ROOT / "bench" / "fairline.yaml"
    stack.fairline_log_level = "info"  # as in production
    stack.start(with_fairline=False)
    results: list[dict[str, object]] = []
    try:
        scenario = caller_scenario(stack.state_dir)
        for rate in rates:
            for path in ("dialplan", "fairline"):
                if path == "fairline" and stack.fairline is None:
                    stack.start_fairline()
                if path == "dialplan" and stack.fairline is not None:
                    stackmod.stop_process(stack.fairline, "fairline")
                    stack.fairline = None
                time.sleep(1)  # let the previous run's calls drain
                cpu_before = fairline_cpu_seconds(stack)
                figures = run_sipp(stack, scenario, rate, args.seconds)
                cpu = fairline_cpu_seconds(stack) - cpu_before
                figures["fairline_cpu_ms_per_call"] = (
                    round(cpu * 1000 / max(1, int(figures["completed"])), 2) if path == "fairline" else 0.0)
                results.append({"path": path, "rate": rate, **figures})
                print(f"{path:9} {rate:4d}/s  ok {int(figures['completed']):5d}  failed {int(figures['failed']):4d}  "
                      f"median {figures['median_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  "
                      f"fairline cpu {figures['fairline_cpu_ms_per_call']:5.2f} ms/call", flush=True)
    finally:
        stack.stop()

    print("\nratios fairline / dialplan (set-up latency, same run):")
    for rate in rates:
        a = next(r for r in results if r["path"] == "dialplan" and r["rate"] == rate)
        b = next(r for r in results if r["path"] == "fairline" and r["rate"] == rate)
        med = float(b["median_ms"]) / float(a["median_ms"]) if float(a["median_ms"]) else float("nan")
        p99 = float(b["p99_ms"]) / float(a["p99_ms"]) if float(a["p99_ms"]) else float("nan")
        print(f"  {rate:4d}/s  median x{med:4.2f}  p99 x{p99:4.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"method": __doc__.strip().splitlines()[0], "results": results}, indent=2))
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
