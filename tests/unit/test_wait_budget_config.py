"""`fairline config check` refuses a configuration whose worst case keeps a caller in queues past the minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ari_app.config.yaml_loader import load
from tests.unit.test_routes import problems, write

# Two queues, a minute each, one overflowing to the other's number (line numbers in the comments).
TWO_MINUTES = """\
customers:
  - id: acme
    name: Acme BV
numbers:
  - number: "+31201230601"
    customer: acme
    type: local
    route:
      targets: ["+31612340601"]
      no_answer: {queue: first}
  - number: "+31201230602"
    customer: acme
    type: local
    route: {queue: second}
queues:
  - name: first
    customer: acme
    agents: ["+31612340611"]
    max_wait_seconds: 40
    overflow: {number: "+31201230602"}
  - name: second
    customer: acme
    agents: ["+31612340621"]
    max_wait_seconds: 30
"""
# line 19: first's max_wait_seconds   line 21: second's name   line 24: second's max_wait_seconds



class TestConfigCheck:
    def test_two_queues_passing_the_minute_are_refused_naming_file_line_number_queue_and_path(
            self, tmp_path: Path) -> None:
        path = write(tmp_path, TWO_MINUTES)
        [problem] = problems(path)
        assert problem == (
            f"{path}:24: queues[1].max_wait_seconds: a caller of +31201230601 can wait in queues for 73 s on "
            "+31201230601 -> queue first (up to 40 s) -> please hold (3 s) -> +31201230602 -> queue second "
            "(up to 30 s): 40 + 3 + 0 + 30 = 73 s; expected at most 60 s in total from the first queue on (one minute "
            "per caller, ringing before the first queue not counted): lower this queue's max_wait_seconds to 17, or "
            "shorten the way to it")

    def test_the_same_flow_within_the_minute_is_accepted(self, tmp_path: Path) -> None:
        config = load(write(tmp_path, TWO_MINUTES.replace("max_wait_seconds: 30", "max_wait_seconds: 17")))
        assert config.queues["second"].spec.max_wait_seconds == 17

    def test_a_queue_without_the_key_is_reported_at_its_item(self, tmp_path: Path) -> None:
        path = write(tmp_path, TWO_MINUTES.replace("    max_wait_seconds: 30\n", "").replace("max_wait_seconds: 40",
                                                                                          "max_wait_seconds: 60"))
        [problem] = problems(path)
        assert problem.startswith(f"{path}:21: queues[1].max_wait_seconds: a caller of +31201230601 can wait in "
                                  "queues for 123 s")
        assert "shorten the way to this queue" in problem

    def test_fairline_config_check_exits_2_with_the_problem(self, tmp_path: Path) -> None:
        path = write(tmp_path, TWO_MINUTES)
        done = subprocess.run([sys.executable, "-m", "ari_app.cli", "config", "check", str(path)],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 2, done.stderr
        assert f"{path}:24: queues[1].max_wait_seconds: a caller of +31201230601 can wait in queues for 73 s" in (
            done.stderr)


class TestPositionInterval:
    @pytest.mark.parametrize("seconds", ["9", "61", "0"])
    def test_an_interval_out_of_bounds_names_the_key_and_the_bounds(self, tmp_path: Path, seconds: str) -> None:
        path = write(tmp_path, TWO_MINUTES.replace("max_wait_seconds: 30", "max_wait_seconds: 17\n"
                                                   f"    position_every_seconds: {seconds}"))
        assert problems(path) == [f"{path}:25: queues[1].position_every_seconds: expected whole seconds from 10 to 60"]

    @pytest.mark.parametrize("seconds", [10, 60])
    def test_the_bounds_themselves_are_accepted(self, tmp_path: Path, seconds: int) -> None:
        config = load(write(tmp_path, TWO_MINUTES.replace("max_wait_seconds: 30", "max_wait_seconds: 17\n"
                                                          f"    position_every_seconds: {seconds}")))
        assert config.queues["second"].spec.position_every_seconds == seconds
