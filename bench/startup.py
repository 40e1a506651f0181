"""Start-up time and memory at rest: `fairline --help` wall time, and `fairline run`'s RSS once idle.

- `--help`: wall time of the whole process (interpreter start, imports, argparse), median of
  `--runs` runs.
- RSS at rest: `fairline run` with the demo configuration (dialplan/fairline.yaml, as `make demo`
  runs it), for real: connected to a real Asterisk 22 and PostgreSQL (a stack of its own,
  instance `bench-startup` on free ports, started once), then left idle `--idle` seconds; VmRSS
  (and the peak, VmHWM) read from /proc/PID/status. Median of `--rounds` starts.

`--baseline REV` exports REV (git archive) with its own venv (its own `make .venv/.installed`)
and alternates old and new in the same run, printing both figures and their ratio. Targets
(issue 14): RSS at rest under 60 MB, `--help` under 0.3 s; printed, never asserted.

Run: .venv/bin/python bench/startup.py [--baseline main] [--runs 10] [--rounds 3] [--idle 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402

INSTANCE = "bench-startup"
RESULTS = ROOT / "results"
TARGET_RSS_MB = 60.0
TARGET_HELP_S = 0.3


@dataclasses.dataclass
class Tree:
    """A checkout of fairline with its own venv: this work tree, or the baseline's export."""

    name: str  # "new" (this tree) or "old" (the baseline)
    root: Path
    rev: str
    help_s: list[float] = dataclasses.field(default_factory=list)
    help_cpu_s: list[float] = dataclasses.field(default_factory=list)
    rss_kb: list[int] = dataclasses.field(default_factory=list)
    hwm_kb: list[int] = dataclasses.field(default_factory=list)

    @property
    def fairline(self) -> Path:
        return self.root / ".venv" / "bin" / "fairline"

    @property
    def config(self) -> Path:
        return self.root / "dialplan" / "fairline.yaml"  # the demo's configuration, as that revision has it


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def baseline_tree(rev: str) -> Tree:
    """The files of `rev` (kept between runs, keyed by commit) with a venv installed by its own Makefile.

    An export (`git archive`) rather than `git worktree add`: the same files, and no worktree
    left registered in the repository when the cache is cleaned.
    """
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    where = stackmod.CACHE / "bench-baselines" / commit[:12]
    if not (where / "pyproject.toml").exists():
        where.mkdir(parents=True, exist_ok=True)
        stackmod.say(f"baseline: the files of {rev} ({commit[:12]}) in {where}")
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    if not (where / ".venv" / ".installed").exists():
        stackmod.say("baseline: installing its venv (its own `make .venv/.installed`, about a minute)")
        stackmod.run_quiet(["make", "-C", str(where), ".venv/.installed"], what=f"make .venv/.installed in {where}")
    return Tree("old", where, f"{rev} ({commit[:12]})")


def time_help(tree: Tree) -> None:
    """Wall time (the target) and CPU time (user + system: less moved by other work on the machine)."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(tree.fairline), "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise stackmod.StackError(f"{tree.fairline} --help exited {proc.returncode}")
    tree.help_s.append(elapsed)
    tree.help_cpu_s.append(usage.ru_utime + usage.ru_stime)


def status_kb(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def app_connected(stack: stackmod.Stack) -> bool:
    out = subprocess.run(stack.asterisk_cmd("-rx", "ari show apps"), capture_output=True, text=True, timeout=10)
    return re.search(r"^\s*fairline\s*$", out.stdout, re.M) is not None


def measure_rest(tree: Tree, stack: stackmod.Stack, database_url: str, idle_s: float) -> None:
    """Start `fairline run` as `make demo` does, wait until it is connected to ARI, let it idle, read its RSS."""
    env = dict(stack.fairline_env(), FAIRLINE_CONFIG=str(tree.config), DATABASE_URL=database_url)
    log = open(stack.log(f"fairline-{tree.name}"), "ab")
    proc = subprocess.Popen([str(tree.fairline), "run", "--log-format", "json", "--log-level", "info"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        def connected() -> bool:
            if proc.poll() is not None:
                raise stackmod.StackError(f"{tree.name} fairline exited at start ({proc.returncode}); "
                                          f"see {stack.log('fairline-' + tree.name)}")
            return app_connected(stack)

        stackmod.wait_for(f"{tree.name} fairline (connected to ARI)", connected, timeout=60,
                          log=stack.log(f"fairline-{tree.name}"))
        time.sleep(idle_s)  # at rest: what the measurement is of, not a wait for something to happen
        kb = status_kb(proc.pid)
        tree.rss_kb.append(kb["VmRSS"])
        tree.hwm_kb.append(kb["VmHWM"])
    finally:
        stackmod.stop_process(proc, f"{tree.name} fairline")
        log.close()
    # The next start must not find this one still registered with ARI.
    stackmod.wait_for("fairline gone from ARI", lambda: not app_connected(stack), timeout=20)


def database_for(stack: stackmod.Stack, tree: Tree) -> str:
    """Each revision its own database: one's migrations must not meet the other's."""
    name = "fairline" if tree.name == "new" else "fairline_baseline"
    if stack.psql("postgres", "SELECT 1 FROM pg_database WHERE datname = :'name'", params={"name": name}).strip() != "1":
        stack.psql("postgres", 'CREATE DATABASE :"name"', params={"name": name})
    return stack.database_url.rsplit("/", 1)[0] + "/" + name


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(trees: list[Tree]) -> dict[str, object]:
    print()
    print(f"{'':28}" + "".join(f"{t.name + ': ' + t.rev:>34}" for t in trees) + ("    new/old" if len(trees) == 2 else ""))

    def row(label: str, values: list[float], fmt: str) -> None:
        ratio = f"{values[0] / values[1]:>11.2f}" if len(values) == 2 and values[1] else ""
        print(f"{label:28}" + "".join(f"{format(v, fmt):>34}" for v in values) + ratio)

    row("fairline --help, median s", [median(t.help_s) for t in trees], ".3f")
    row("fairline --help, min s", [min(t.help_s) for t in trees], ".3f")
    row("fairline --help, CPU s", [median(t.help_cpu_s) for t in trees], ".3f")
    row("run at rest, VmRSS MB", [median(t.rss_kb) / 1024 for t in trees], ".1f")
    row("run at rest, VmHWM MB", [median(t.hwm_kb) / 1024 for t in trees], ".1f")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores (other work on the machine inflates both columns alike)")
    new = trees[0]
    help_s, rss_mb = median(new.help_s), median(new.rss_kb) / 1024
    print(f"\ntargets (issue 14): --help {help_s:.3f} s against {TARGET_HELP_S} s "
          f"({'met' if help_s < TARGET_HELP_S else 'not met'}); "
          f"RSS at rest {rss_mb:.1f} MB against {TARGET_RSS_MB:.0f} MB "
          f"({'met' if rss_mb < TARGET_RSS_MB else 'not met'})")
    return {t.name: {"rev": t.rev, "help_s": t.help_s, "help_cpu_s": t.help_cpu_s, "rss_kb": t.rss_kb, "hwm_kb": t.hwm_kb} for t in trees}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", metavar="REV", help="a git revision to compare with, alternated in one run")
    parser.add_argument("--runs", type=int, default=10, help="`fairline --help` runs per tree (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="`fairline run` starts per tree (default 3)")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds at rest before reading RSS (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = " + changes" if git("status", "--porcelain", "--untracked-files=no") else ""
        trees = [Tree("new", ROOT, f"this tree ({head}{dirty})")]
        if args.baseline:
            trees.append(baseline_tree(args.baseline))

        for tree in trees:  # not counted: the first run also writes the bytecode caches
            time_help(tree)
            tree.help_s.clear()
            tree.help_cpu_s.clear()
        for i in range(args.runs):  # alternated, the order flipped every run
            for tree in trees if i % 2 == 0 else trees[::-1]:
                time_help(tree)

        stackmod.install_prerequisites()
        stack = stackmod.Stack.create(os.environ.get("FAIRLINE_BENCH_INSTANCE", INSTANCE), stackmod.Ports.free())
        stack.external_database_url = None
        stack.start(with_fairline=False)
        try:
            urls = {t.name: database_for(stack, t) for t in trees}
            for i in range(args.rounds):
                for tree in trees if i % 2 == 0 else trees[::-1]:
                    measure_rest(tree, stack, urls[tree.name], args.idle)
                    stackmod.say(f"round {i + 1}: {tree.name} at rest {tree.rss_kb[-1] / 1024:.1f} MB")
        finally:
            stack.stop()
    except stackmod.StackError as exc:
        stackmod.say(f"error: {exc}")
        return 2

    results = report(trees)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "idle_s": args.idle, **results}, indent=2) + "\n")
    print(f"figures in {args.out}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the stack on the way out
    sys.exit(main())
