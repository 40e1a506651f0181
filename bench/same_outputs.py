"""Do two versions of fairline print the same thing on the same input? (issue 14: a change of structure)

Runs, for a baseline revision and for this checkout, each in its own venv:
- `fairline rate` on a fixed set of calls (all number types, peak and off-peak, a DST night, bad lines);
- against an empty private PostgreSQL: `fairline cdr import` of a fixed month of calls, a heavy-user
  mark and a service charge, then `fairline fair-use report`, `invoice` and `queue report`, as text,
  JSON and CSV;
- with --demo, `make demo`'s own command (`asterisk-docker/stack.py demo`), real calls included.

Prints one line per output: `same` or `DIFFERENT` (with a diff); exit status 1 when any differs.
What differs from one run to the next of the same code is masked before comparing: the times log lines
and service charges were written at (now), and in the demo's CDR table Asterisk's channel ids, clock times
and the milliseconds a caller waited in the queue (`--demo-runs 2` also compares this checkout's demo
with its own previous run).

Run: .venv/bin/python bench/same_outputs.py --baseline REV [--demo]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asterisk-docker"))
sys.path.insert(0, str(ROOT / "bench"))

import baseline  # noqa: E402
import stack as stackmod  # noqa: E402

MONTH = "2026-11"
CET = timezone(timedelta(hours=1))


def rate_input() -> str:
    """Calls for `fairline rate`: every number type, both sides of peak, the DST night, bad lines."""
    numbers = [("+31201234567", "local"), ("+31851234567", "national"), ("+318001234567", "tollfree"),
               ("+319001234567", "premium"), ("+4930123456789", "international")]
    starts = ["2026-11-23T18:59:30+01:00", "2026-11-23T07:59:00+01:00", "2026-11-28T12:00:00+01:00",
              "2026-12-25T10:00:00+01:00", "2026-10-25T01:30:00+02:00", "2026-03-29T01:59:00+01:00"]
    lines = []
    for i, (number, kind) in enumerate(numbers):
        for j, start in enumerate(starts):
            begin = datetime.fromisoformat(start)
            answer = None if (i + j) % 5 == 0 else (begin + timedelta(seconds=7)).isoformat()
            end = (begin + timedelta(seconds=7 + 37 * (i + 1) * (j + 1))).isoformat()
            lines.append(json.dumps({"call_id": f"r{i}-{j}", "number": number, "number_type": kind,
                                     "start": start, "answer": answer, "end": end}))
    lines += ['{"call_id": "bad1", "number": "+31201234567"}', "not json", "[1, 2]",
              '{"call_id": "bad2", "number": "+3120", "number_type": "local", "start": "2026-11-23T18:59:30+01:00",'
              ' "answer": null, "end": "2026-11-23T19:00:00+01:00"}',
              '{"call_id": "bad3", "number": "+31201234567", "number_type": "mobile", '
              '"start": "2026-11-23T18:59:30+01:00", "answer": null, "end": "2026-11-23T19:00:00+01:00"}']
    return "\n".join(lines) + "\n"


def import_input(calls: int = 3000) -> str:
    """A month of calls for `fairline cdr import`: 40 customers, one heavy, queues absent (import has none)."""
    rng = random.Random(14)
    kinds = [("+3120", "local"), ("+3185", "national"), ("+31800", "tollfree"), ("+31900", "premium")]
    start = datetime(2026, 11, 1, tzinfo=CET)
    lines = []
    for k in range(calls):
        customer = 0 if rng.random() < 0.3 else rng.randrange(1, 40)
        prefix, kind = kinds[customer % len(kinds)]
        begin = start + timedelta(seconds=rng.randrange(0, 29 * 86400))
        answered = rng.random() < 0.8
        answer = (begin + timedelta(seconds=rng.randrange(2, 20))) if answered else None
        end = (answer or begin) + timedelta(seconds=rng.randrange(1, 900))
        lines.append(json.dumps({
            "call_id": f"m{k}", "customer_id": f"cust{customer:02d}", "number": f"{prefix}{1000000 + customer * 7}",
            "number_type": kind, "start": begin.isoformat(), "answer": answer.isoformat() if answer else None,
            "end": end.isoformat(), "caller": None if k % 17 == 0 else f"+316{10000000 + k}"}))
    lines.append('{"call_id": "m-bad", "customer_id": "cust01", "number": "+3120"}')
    return "\n".join(lines) + "\n"


_LOG_TIME = re.compile(r'"timestamp": "[^"]*"')


def run(tree: Path, args: list[str], *, stdin: str = "", env: dict[str, str] | None = None) -> str:
    """One command's stdout, stderr and exit status, as one text to compare."""
    done = subprocess.run([str(tree / ".venv/bin/fairline"), *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=tree, timeout=300)
    today = re.compile(re.escape(datetime.now(timezone.utc).date().isoformat()) + r"[ T][0-9:.+]+")
    stdout = today.sub("<now>", done.stdout)  # a service charge is dated when it is added
    stderr = _LOG_TIME.sub('"timestamp": "<time>"', done.stderr)  # when a log line was written
    return f"{stdout}--- stderr\n{stderr}--- exit {done.returncode}\n"


def database_outputs(tree: Path, pg: stackmod.Stack, work: Path) -> dict[str, str]:
    pg.psql("postgres", "DROP DATABASE IF EXISTS fairline WITH (FORCE)")
    pg.psql("postgres", "CREATE DATABASE fairline")
    env = dict(os.environ, DATABASE_URL=pg.database_url)
    env.pop("FAIRLINE_CONFIG", None)
    # The first command applies the migrations; then the customers and numbers the calls belong to.
    out = {"fair-use report, empty database": run(tree, ["fair-use", "report", "--month", MONTH], env=env)}
    pg.psql("fairline", "INSERT INTO customers (customer_id, name, created_at) "
                        "SELECT format('cust%s', to_char(i, 'FM00')), format('Customer %s', i), '2026-01-01' "
                        "FROM generate_series(0, 39) AS i")
    pg.psql("fairline", "INSERT INTO numbers (e164, customer_id, number_type, active_from) "
                        "SELECT p.prefix || (1000000 + i * 7), format('cust%s', to_char(i, 'FM00')), p.kind, '2026-01-01' "
                        "FROM generate_series(0, 39) AS i, LATERAL (SELECT (ARRAY['+3120', '+3185', '+31800', '+31900'])"
                        "[i % 4 + 1] AS prefix, (ARRAY['local', 'national', 'tollfree', 'premium'])[i % 4 + 1] AS kind) p")
    calls = work / "month.jsonl"
    calls.write_text(import_input())
    out |= {"cdr import": run(tree, ["cdr", "import", str(calls)], env=env),
           "heavy-user mark": run(tree, ["heavy-user", "mark", "cust00", "--month", MONTH, "--by", "anna",
                                         "--reason", "agreed by phone"], env=env),
           "service-charge add": run(tree, ["service-charge", "add", "cust03", "--month", MONTH, "--amount", "25",
                                            "--reason", "new call flow", "--by", "anna"], env=env)}
    for name, args in {"fair-use report": ["fair-use", "report", "--month", MONTH],
                       "fair-use report --json": ["fair-use", "report", "--month", MONTH, "--json"],
                       "invoice": ["invoice", "--month", MONTH],
                       "invoice --csv": ["invoice", "--month", MONTH, "--csv"],
                       "queue report": ["queue", "report", "--month", MONTH],
                       "queue report --json": ["queue", "report", "--month", MONTH, "--json"]}.items():
        out[name] = run(tree, args, env=env)
    return out


_DEMO_CALL_ID = re.compile(r"\b\d{9,11}\.\d+\b")
_CLOCK = re.compile(r"\b\d{2}:\d{2}:\d{2}\b")


def demo_output(tree: Path, instance: str) -> str:
    env = dict(os.environ, FAIRLINE_INSTANCE=instance)
    done = subprocess.run([str(tree / ".venv/bin/python"), str(tree / "asterisk-docker/stack.py"), "demo"],
                          capture_output=True, text=True, env=env, cwd=tree, timeout=600)
    return f"{done.stdout}--- exit {done.returncode}\n"


def mask_demo(text: str) -> str:
    """The demo's table without what differs between two runs of the same code: Asterisk's channel ids,
    clock times and the milliseconds a caller waited in the queue."""
    rows = []
    for line in text.splitlines():
        line = _CLOCK.sub("hh:mm:ss", _DEMO_CALL_ID.sub("<call id>", line))
        cells = line.split("|")
        if len(cells) > 19:  # a row of the aligned table: | call_id | did | ... |
            cells[20] = " <wait> " if cells[20].strip() else cells[20]
            line = "|".join(cells)
        rows.append(line)
    return "\n".join(rows) + "\n"


def compare(name: str, old: str, new: str) -> bool:
    if old == new:
        print(f"  same       {name} ({len(new.splitlines())} lines)")
        return True
    print(f"  DIFFERENT  {name}")
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "baseline", "this"))
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, metavar="REV", help="the revision to compare with")
    parser.add_argument("--demo", action="store_true", help="also run `make demo`'s command on both (a minute each)")
    parser.add_argument("--demo-runs", type=int, default=1, help="demo runs per side (2: also each against itself)")
    args = parser.parse_args()
    old_tree = baseline.checkout(args.baseline)
    trees = {"baseline": old_tree, "this": ROOT}
    ok = True
    print(f"same_outputs: {args.baseline} ({old_tree}) against this checkout ({ROOT})")
    rated = {side: run(tree, ["rate"], stdin=rate_input(), env={k: v for k, v in os.environ.items()
                                                                 if k != "FAIRLINE_CONFIG"})
             for side, tree in trees.items()}
    ok &= compare("fairline rate", rated["baseline"], rated["this"])
    stackmod.install_prerequisites()
    pg = stackmod.Stack.create("same-outputs", stackmod.Ports.free())
    pg.external_database_url = None
    pg.start_postgres()
    try:
        outs = {side: database_outputs(tree, pg, pg.state_dir) for side, tree in trees.items()}
    finally:
        pg.stop_postgres()
    for name in outs["baseline"]:
        ok &= compare(f"fairline {name}", outs["baseline"][name], outs["this"][name])
    if args.demo:
        for k in range(args.demo_runs):
            demos = {side: demo_output(tree, f"same-{side}") for side, tree in trees.items()}
            ok &= compare(f"make demo, run {k + 1} (masked: call ids, clock times, queue wait)",
                          mask_demo(demos["baseline"]), mask_demo(demos["this"]))
            if k:
                compare("make demo, this against its previous run (masked)", mask_demo(previous), mask_demo(demos["this"]))
            previous = demos["this"]
    print("same_outputs: all the same" if ok else "same_outputs: outputs differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
