"""`fairline rate`: calls in as JSON Lines, priced calls or errors out, one line each, in order."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from rating.commands.rate_cli import run_rate
from rating.core.tariff import RateTable, TrafficRates

RATES = RateTable((TrafficRates(date(2020, 1, 1)),))
WORKED_EXAMPLE: dict[str, Any] = {
    "call_id": "c1",
    "number": "+31201234567",
    "number_type": "local",
    "start": "2026-11-23T18:59:30+01:00",
    "answer": "2026-11-23T18:59:40+01:00",
    "end": "2026-11-23T19:01:10+01:00",
}


def rate_lines(*lines: str) -> tuple[int, list[dict[str, Any]]]:
    """Run the command on these input lines; its exit status and output objects."""
    stdout = io.StringIO()
    status = run_rate(io.BytesIO("".join(f"{line}\n" for line in lines).encode()), stdout, RATES)
    return status, [json.loads(line) for line in stdout.getvalue().splitlines()]


def call(**changes: Any) -> str:
    """The worked example as an input line with some fields changed; a field set to ... is left out."""
    return json.dumps({k: v for k, v in (WORKED_EXAMPLE | changes).items() if v is not ...})


class TestPricedLines:
    def test_the_worked_example_comes_out_with_its_price(self) -> None:
        """The input object, then seconds as integers and euros as strings with four decimals."""
        status, out = rate_lines(json.dumps(WORKED_EXAMPLE))
        assert status == 0
        assert out == [
            WORKED_EXAMPLE
            | {
                "billable_seconds": 90,
                "peak_seconds": 20,
                "offpeak_seconds": 70,
                "setup_eur": "0.0400",
                "usage_eur": "0.0817",
                "list_price_eur": "0.1217",
                "fair_use_eligible": True,
            }
        ]
        assert list(out[0])[: len(WORKED_EXAMPLE)] == list(WORKED_EXAMPLE)

    def test_unanswered_call_costs_nothing(self) -> None:
        """answer null: zero seconds and 0.0000 everywhere; UTC written with Z is fine."""
        unanswered = call(number_type="tollfree", number="+318001234567", answer=None, end="2026-11-23T17:59:50Z")
        status, [out] = rate_lines(unanswered)
        assert status == 0
        price_fields = ("billable_seconds", "setup_eur", "usage_eur", "list_price_eur", "fair_use_eligible")
        assert [out[k] for k in price_fields] == [0, "0.0000", "0.0000", "0.0000", False]

    def test_fields_the_command_does_not_know_are_passed_through(self) -> None:
        """Whatever the caller added to a call to find it again comes back unchanged."""
        _, [out] = rate_lines(json.dumps(WORKED_EXAMPLE | {"customer": "acme", "note": None}))
        assert (out["customer"], out["note"]) == ("acme", None)

    def test_one_output_line_per_call_in_input_order(self) -> None:
        """Output line n is the price of call n."""
        status, out = rate_lines(call(call_id="a"), call(call_id="b"), call(call_id="c"))
        assert (status, [o["call_id"] for o in out]) == (0, ["a", "b", "c"])

    @pytest.mark.parametrize("blank", ["", "   ", "\t"])
    def test_blank_lines_are_skipped(self, blank: str) -> None:
        """A blank line is no call: nothing is written for it and it is no error."""
        status, out = rate_lines(blank, call(call_id="a"), blank)
        assert (status, [o["call_id"] for o in out]) == (0, ["a"])

    def test_no_input_no_output(self) -> None:
        assert rate_lines() == (0, [])


class TestBadLines:
    """A line that cannot be priced becomes an error line in its place; the rest are still priced."""

    @pytest.mark.parametrize(
        ("line", "call_id", "error"),
        [
            pytest.param("this is not json", None, "line 1: expected a JSON object, got invalid JSON", id="not-json"),
            pytest.param("[1, 2]", None, "line 1: expected a JSON object, got an array", id="array"),
            pytest.param("null", None, "line 1: expected a JSON object, got null", id="null"),
            pytest.param(call(call_id=5), None, "line 1: call_id: expected a string, got 5", id="call-id-not-a-string"),
            pytest.param(call(call_id=...), None, "line 1: call_id: missing", id="no-call-id"),
            pytest.param(call(call_id=None), None, "line 1: call_id: expected a string, got null", id="null-call-id"),
            pytest.param(call(start=...), "c1", "line 1: start: missing", id="no-start"),
            pytest.param(call(number=[2]), "c1", "line 1: number: expected an E.164 string", id="number-not-a-string"),
            pytest.param(call(answer=...), "c1", "line 1: answer: missing (answer is null for an unanswered call)", id="no-answer"),
            pytest.param(call(start="2026-11-23T18:59:30"), "c1", "line 1: start: expected an ISO 8601 timestamp with an offset or Z", id="naive-start"),
            pytest.param(call(end="tomorrow"), "c1", "line 1: end: expected an ISO 8601 timestamp", id="not-a-timestamp"),
            pytest.param(call(answer=1700000000), "c1", "line 1: answer: expected an ISO 8601 timestamp", id="epoch-seconds"),
            pytest.param(call(end="2026-11-23T18:59:00+01:00"), "c1", "line 1: end: expected at or after answer", id="end-before-answer"),
            pytest.param(call(number="+3120123456"), "c1", "line 1: number: +3120123456 is not a valid number", id="bad-number"),
            pytest.param(call(number="020 123 4567"), "c1", "line 1: number: expected an E.164 number", id="not-e164"),
            pytest.param(call(number_type="mobile"), "c1", 'line 1: number_type: expected one of local, national, international, tollfree, premium, got "mobile"', id="unknown-number-type"),
            pytest.param(call(answer="2019-01-01T10:00:00Z", start="2019-01-01T10:00:00Z", end="2019-01-01T10:01:00Z"), "c1", "line 1: answer: expected on or after 2020-01-01", id="before-the-tariff"),
        ],
    )
    def test_error_line_names_the_call_and_the_field(self, line: str, call_id: str | None, error: str) -> None:
        """The error says which line, which field and what was expected; exit status 1."""
        status, [out] = rate_lines(line)
        assert status == 1
        assert list(out) == ["call_id", "error"]
        assert out["call_id"] == call_id
        assert out["error"].startswith(error)

    def test_missing_fields_are_listed_without_the_hint_about_answer(self) -> None:
        """The hint that answer may be null only shows when answer is the missing one."""
        _, [out] = rate_lines(call(start=..., end=...))
        assert out["error"] == "line 1: start, end: missing"

    def test_a_bad_line_does_not_stop_the_others(self) -> None:
        """Good, bad, good: two prices with an error between them, and exit status 1."""
        status, out = rate_lines(call(call_id="a"), call(call_id="b", number="nope"), call(call_id="c"))
        assert status == 1
        assert [(o["call_id"], "error" in o) for o in out] == [("a", False), ("b", True), ("c", False)]
        assert out[1]["error"].startswith("line 2: number:")

    def test_error_names_the_input_line_counting_blank_ones(self) -> None:
        """Blank lines write nothing, so the line number is how to find the bad input."""
        _, [out] = rate_lines("", "", "{")
        assert out["error"].startswith("line 3: ")


class TestConfigFromTheEnvironment:
    CONFIG = """\
customers:
  - id: acme
    name: Acme BV
numbers:
  - number: "+31201234567"
    customer: acme
    type: local
    announcement: hello-world
tariff:
  - valid_from: 2020-01-01
    setup_eur: 1.00
    peak_eur_per_min: 0.07
    offpeak_eur_per_min: 0.05
"""

    def test_fairline_rate_takes_the_tariff_of_fairline_config(self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
        """Like every option, --config falls back to its variable: $FAIRLINE_CONFIG's tariff prices the calls."""
        from ari_app import cli

        config = tmp_path / "fairline.yaml"
        config.write_text(self.CONFIG)
        monkeypatch.setenv("FAIRLINE_CONFIG", str(config))
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(call().encode() + b"\n")))
        monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # structlog's setup is global: leave it to other tests

        assert cli.main(["rate"]) == 0
        assert json.loads(capsys.readouterr().out)["setup_eur"] == "1.0000"


# The command as its console script runs it (pyproject.toml: fairline = "ari_app.cli:main"), from this checkout.
FAIRLINE = [sys.executable, "-c", "import sys; from ari_app.cli import main; sys.exit(main())"]
ROOT = Path(__file__).resolve().parents[2]


class TestStoppedEarly:
    """A reader that goes away and Ctrl-C end the command quietly, with the status a shell expects (real processes)."""

    def test_a_reader_that_has_read_enough_ends_it_with_141_and_no_traceback(self, tmp_path: Path) -> None:
        """`fairline rate < calls | head -1`: the output is far bigger than a pipe holds, so writing must fail."""
        calls = tmp_path / "calls.jsonl"
        calls.write_text("".join(call(call_id=f"c{i}") + "\n" for i in range(20_000)))
        with calls.open("rb") as stdin:
            proc = subprocess.Popen([*FAIRLINE, "rate"], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=ROOT)
        assert proc.stdout is not None and proc.stderr is not None
        first = json.loads(proc.stdout.readline())
        proc.stdout.close()  # what head does after its line
        err = proc.stderr.read()
        assert (proc.wait(timeout=60), err, first["call_id"]) == (141, b"", "c0")

    def test_ctrl_c_ends_it_with_130_and_no_traceback(self) -> None:
        """Ctrl-C while it waits for the next call: the calls before are priced, then it stops."""
        proc = subprocess.Popen([*FAIRLINE, "rate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=os.environ | {"PYTHONUNBUFFERED": "1"}, cwd=ROOT)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(call().encode() + b"\n")
        proc.stdin.flush()
        # Unbuffered, its answer comes at once: then it is reading the next line, well past start-up.
        assert json.loads(proc.stdout.readline())["list_price_eur"] == "0.1217"
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.stdin.close()
        assert (proc.wait(timeout=60), err, proc.stdout.read()) == (130, b"", b"")
