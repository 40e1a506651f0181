"""The call-path benchmark's verdicts (bench/call_path.py): which rates count as clean, and issue 15's targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import call_path  # noqa: E402
from call_path import Run, highest_clean, issue_15_targets  # noqa: E402


def run(path: str, rate: int, p99: float, *, shed: int = 0, failed: int = 0,
        lag: tuple[float, float] = (float("nan"), float("nan")), trying: float = 1.0) -> Run:
    return Run(path=path, rate=rate, offered=rate * 5, completed=rate * 5 - failed, failed=failed,
               median_ms=p99 / 2, p99_ms=p99, ring_p99_ms=p99, ring_max_ms=p99, shed=shed,
               app_cpu_ms_per_call=1.0, asterisk_cpu_ms_per_call=5.0, app_peak_rss_mb=60.0, capture_drops=0,
               left_channels=0, loop_lag_p99_ms=lag[0], loop_lag_max_ms=lag[1], trying_p99_ms=trying)


def sweep(fairline: dict[int, float], dialplan: dict[int, float], **overrides: dict[int, float]) -> list[Run]:
    runs = [run("dialplan", rate, p99) for rate, p99 in dialplan.items()]
    runs += [run("fairline", rate, p99, shed=int(overrides.get("shed", {}).get(rate, 0)),
                 trying=overrides.get("trying", {}).get(rate, 1.0),
                 lag=(2.0, 5.0) if rate == 100 else (float("nan"), float("nan")))
             for rate, p99 in fairline.items()]
    return runs


def test_a_slow_moment_of_the_machine_is_clean_by_ratio_but_not_by_the_strict_rule() -> None:
    runs = sweep(fairline={50: 20, 100: 90, 150: 25}, dialplan={50: 12, 100: 60, 150: 14})
    assert highest_clean(runs, "fairline") == 50  # 90 ms at 100/s is over the 50 ms bound
    assert highest_clean(runs, "fairline", by_ratio=True) == 150  # 90 ms is within 2 x the dialplan's 60 ms


def test_by_ratio_a_p99_over_twice_the_dialplans_ends_the_clean_range() -> None:
    runs = sweep(fairline={50: 20, 100: 31, 150: 20}, dialplan={50: 12, 100: 15, 150: 14})
    assert highest_clean(runs, "fairline", by_ratio=True) == 50
    assert highest_clean(runs, "fairline") == 150


def test_a_shed_or_failed_call_is_never_clean_by_ratio() -> None:
    dialplan = run("dialplan", 100, 15)
    assert not run("fairline", 100, 16, shed=1).clean_against(dialplan)
    assert not run("fairline", 100, 16, failed=1).clean_against(dialplan)
    assert not run("dialplan", 100, 15, failed=1).clean_against(None)
    assert not run("fairline", 100, 16).clean_against(None)  # no dialplan run to compare with


def test_targets_are_met_when_fairline_keeps_pace() -> None:
    runs = sweep(fairline={50: 20, 100: 25, 150: 28}, dialplan={50: 12, 100: 14, 150: 15})
    clean = {p: highest_clean(runs, p) for p in call_path.PATHS}
    by_ratio = {p: highest_clean(runs, p, by_ratio=True) for p in call_path.PATHS}
    targets = issue_15_targets(runs, clean, by_ratio)
    assert {name: t["met"] for name, t in targets.items()} == {
        "p99_x_up_to_150": True, "clean_rate_share_strict": True, "clean_rate_share_by_ratio": True,
        "loop_lag_at_100": True, "shed_only_when_asterisk_is_behind": True,
    }
    assert targets["p99_x_up_to_150"]["value"] == 1.87  # the worst ratio: 28 / 15 at 150/s


def test_targets_name_what_was_missed() -> None:
    runs = sweep(fairline={50: 20, 100: 45, 150: 200}, dialplan={50: 12, 100: 14, 150: 15, 200: 80},
                 shed={150: 240}, trying={150: 12.0})
    clean = {p: highest_clean(runs, p) for p in call_path.PATHS}
    by_ratio = {p: highest_clean(runs, p, by_ratio=True) for p in call_path.PATHS}
    targets = issue_15_targets(runs, clean, by_ratio)
    assert targets["p99_x_up_to_100"] == {"value": 3.21, "target": "<= 2.0", "met": False}
    assert targets["clean_rate_share_strict"]["value"] == 0.67  # 100 of 150
    # by ratio, the dialplan counts up to 200/s, where it still completed every call
    assert targets["clean_rate_share_by_ratio"]["value"] == 0.25  # 50 of 200
    # 240 calls shed at 150/s while Asterisk still sent its 100 Trying within 12 ms: it was not behind.
    shed = targets["shed_only_when_asterisk_is_behind"]
    assert shed["value"] == "240 at 150/s (100 Trying p99 12 ms)" and shed["met"] is False
    assert "the dialplan alone was clean below 200/s" in shed["target"]


def test_calls_shed_while_asterisks_own_sip_stack_was_behind_are_in_order() -> None:
    runs = sweep(fairline={50: 20, 100: 25, 150: 300}, dialplan={50: 12, 100: 14, 150: 15},
                 shed={150: 611}, trying={150: 75.8})
    clean = {p: highest_clean(runs, p) for p in call_path.PATHS}
    shed = issue_15_targets(runs, clean, clean)["shed_only_when_asterisk_is_behind"]
    assert shed["met"] is True and "clean at every rate offered" in shed["target"]


@pytest.mark.parametrize(("p99", "top", "met"), [(4.0, 15.0, True), (5.0, 15.0, False), (4.0, 20.0, False)])
def test_the_loop_lag_target_needs_both_bounds_under_the_limits(p99: float, top: float, met: bool) -> None:
    runs = [run("dialplan", 100, 14), run("fairline", 100, 20, lag=(p99, top))]
    clean = {p: highest_clean(runs, p) for p in call_path.PATHS}
    assert issue_15_targets(runs, clean, clean)["loop_lag_at_100"]["met"] is met


def test_without_a_run_at_100_calls_per_second_the_loop_lag_is_not_measured() -> None:
    runs = [run("dialplan", 50, 14), run("fairline", 50, 20)]
    clean = {p: highest_clean(runs, p) for p in call_path.PATHS}
    assert issue_15_targets(runs, clean, clean)["loop_lag_at_100"]["met"] is None
