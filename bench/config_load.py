"""How long `fairline` takes to load a large configuration (start-up and every reload), and to check a
version that changes one number against the version before (issue 16).

5,000 routed numbers, each ringing a mobile and a landline, one in ten with opening
hours; each run on numbers not seen before (phonenumbers caches parsed numbers).
Target: under a second, so a reload never pauses call handling noticeably.

One-number versions: each changes another number's first target; checked whole and against the
version before (yaml_loader.check with `previous`, as fairline's checker child does), alternating.
Run: .venv/bin/python bench/config_load.py [--numbers N] [--runs R] [--versions V]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ari_app.config.yaml_loader import check, load  # noqa: E402

TARGET_S = 1.0


def config_text(block: int, numbers: int) -> str:
    lines = ["customers:\n  - id: acme\n    name: Acme BV\nnumbers:\n"]
    for i in range(numbers):
        lines.append(f'  - number: "+3120{block}{i:06d}"\n    customer: acme\n    type: local\n'
                     f'    route:\n      targets: ["+3161{block}{i:06d}", "+3130{block}{i:06d}"]\n')
        if i % 10 == 0:
            lines.append('    hours: {mon-fri: "08:00-18:00", sat: ["10:00-12:00", "13:00-16:00"]}\n'
                         f'    outside_hours: {{targets: ["+3165{block}{i:06d}"]}}\n')
    return "".join(lines)


def one_number_versions(numbers: int, versions: int) -> tuple[list[float], list[float]]:
    """Seconds to check each one-number version whole, and against the version before."""
    base = config_text(9, numbers)
    previous = check(base, "base")
    whole, against = [], []
    for k in range(versions):
        old = f'["+31619{k * 37:06d}"'
        text = base.replace(old, f'["+31658{k * 37:06d}"', 1)
        assert text != base
        for way in (("whole", "against") if k % 2 == 0 else ("against", "whole")):
            started = time.perf_counter()
            checked = check(text, f"v{k}") if way == "whole" else check(text, f"v{k}", previous)
            (whole if way == "whole" else against).append(time.perf_counter() - started)
            assert len(checked.config.numbers) == numbers
    return whole, against


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--versions", type=int, default=10)
    args = parser.parse_args()
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        for block in range(1, args.runs + 1):
            path = Path(tmp) / f"fairline-{block}.yaml"
            path.write_text(config_text(block % 10, args.numbers), encoding="utf-8")
            started = time.perf_counter()
            cfg = load(path)
            timings.append(time.perf_counter() - started)
            assert len(cfg.numbers) == args.numbers
    best, median = min(timings), statistics.median(timings)
    print(f"config load, {args.numbers} routed numbers: best {best:.2f} s, median {median:.2f} s over {args.runs} runs;"
          f" target < {TARGET_S:.1f} s: best is x{best / TARGET_S:.2f} of it")
    whole, against = one_number_versions(args.numbers, args.versions)
    ratio = statistics.median(whole) / statistics.median(against)
    print(f"one-number versions, {args.versions} of them, alternating: checked whole median "
          f"{statistics.median(whole):.3f} s, against the version before median {statistics.median(against):.3f} s "
          f"(max {max(against):.3f} s): x{ratio:.0f} faster")
    results = ROOT / "results"
    results.mkdir(exist_ok=True)
    (results / "config_load.json").write_text(json.dumps(
        {"numbers": args.numbers, "runs_s": timings, "best_s": best, "median_s": median, "target_s": TARGET_S,
         "one_number_whole_s": whole, "one_number_against_previous_s": against}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
