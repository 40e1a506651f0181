"""Concurrent-call limits (decision 0026): what a limit may be, and which limits a number's calls get."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.config.yaml_loader import load
from ari_app.core.limits import (
    DEFAULT_CALLS_PER_CALLER,
    DEFAULT_CALLS_PER_CUSTOMER,
    DEFAULT_CALLS_PER_NUMBER,
    MAX_LIMIT,
    CallLimits,
    NumberLimits,
    check_limit,
    number_limits,
)
from ari_app.errors import ConfigError

EXPECTED = "expected a whole number of calls at once, from 1 to 10000"


class TestCheckLimit:
    @pytest.mark.parametrize(("raw", "limit"), [("1", 1), ("20", 20), ("0020", 20), (str(MAX_LIMIT), MAX_LIMIT)])
    def test_a_whole_number_from_one_to_the_maximum_is_a_limit(self, raw: str, limit: int) -> None:
        assert check_limit(raw) == limit

    @pytest.mark.parametrize("raw", ["0", "-1", "10001", "2.5", "1e3", "", " 5", "twenty", "true", "５", "٣"])
    def test_anything_else_says_what_was_expected(self, raw: str) -> None:
        with pytest.raises(ValueError, match=f"{EXPECTED}$"):
            check_limit(raw)


class TestCallLimits:
    def test_defaults_are_the_documented_ones(self) -> None:
        assert CallLimits() == CallLimits(DEFAULT_CALLS_PER_NUMBER, DEFAULT_CALLS_PER_CUSTOMER,
                                          DEFAULT_CALLS_PER_CALLER) == CallLimits(20, 50, 10)

    @pytest.mark.parametrize("field", ["per_number", "per_customer", "per_caller"])
    @pytest.mark.parametrize("bad", [0, MAX_LIMIT + 1])
    def test_a_limit_out_of_range_is_refused_even_in_code(self, field: str, bad: int) -> None:
        with pytest.raises(ValueError, match=f"CallLimits.{field}: {EXPECTED}, got {bad}"):
            CallLimits(**{field: bad})


class TestNumberLimits:
    """A number's own max_calls, else the default; its customer's max_calls, else the default; the caller's default."""

    @pytest.mark.parametrize(("number_max", "customer_max", "expected"), [
        (None, None, NumberLimits(7, "acme", 30, 3)),
        (40, None, NumberLimits(40, "acme", 30, 3)),
        (None, 100, NumberLimits(7, "acme", 100, 3)),
        (40, 100, NumberLimits(40, "acme", 100, 3)),
        (1, 1, NumberLimits(1, "acme", 1, 3)),
    ])
    def test_own_limits_override_the_defaults(self, number_max: int | None, customer_max: int | None,
                                              expected: NumberLimits) -> None:
        assert number_limits(CallLimits(7, 30, 3), number_max=number_max, customer_id="acme",
                             customer_max=customer_max) == expected

    def test_a_number_of_no_customer_gets_the_defaults(self) -> None:
        assert number_limits(CallLimits(), number_max=None, customer_id=None,
                             customer_max=None) == NumberLimits(20, None, 50, 10)


BASE = """\
customers:
  - id: acme
    name: Acme BV
numbers:
  - number: "+31201234567"
    customer: acme
    type: local
    route: {targets: ["+31612345678"]}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problems of `text`, each without the file name (line: key: what was expected)."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    return [p.removeprefix(f"{path}:") for p in caught.value.problems]


class TestConfigKeys:
    def test_without_any_key_the_defaults_hold(self, tmp_path: Path) -> None:
        config = load(_write(tmp_path, BASE))
        assert config.limits == CallLimits()
        assert config.limits_of(config.numbers["+31201234567"]) == NumberLimits(20, "acme", 50, 10)

    def test_the_limits_section_sets_the_defaults_and_max_calls_the_own_limits(self, tmp_path: Path) -> None:
        text = ("limits:\n  calls_per_number: 5\n  calls_per_customer: 8\n  calls_per_caller: 2\n"
                + BASE.replace("    name: Acme BV\n", "    name: Acme BV\n    max_calls: 9\n")
                      .replace("    type: local\n", "    type: local\n    max_calls: 4\n"))
        config = load(_write(tmp_path, text))
        assert config.limits == CallLimits(5, 8, 2)
        assert config.limits_of(config.numbers["+31201234567"]) == NumberLimits(4, "acme", 9, 2)

    def test_a_key_left_out_of_the_limits_section_keeps_its_default(self, tmp_path: Path) -> None:
        config = load(_write(tmp_path, "limits:\n  calls_per_caller: 3\n" + BASE))
        assert config.limits == CallLimits(per_caller=3)

    @pytest.mark.parametrize(("text", "problem"), [
        ("limits:\n  calls_per_number: 0\n" + BASE, f"2: limits.calls_per_number: {EXPECTED}"),
        ("limits:\n  calls_per_customer: lots\n" + BASE, f"2: limits.calls_per_customer: {EXPECTED}"),
        ("limits:\n  calls_per_caller: [5]\n" + BASE, f"2: limits.calls_per_caller: {EXPECTED}"),
        ("limits:\n  calls_per_source: 5\n" + BASE,
         "2: limits.calls_per_source: unknown key; expected one of calls_per_caller, calls_per_customer, "
         "calls_per_number"),
        ("limits: 20\n" + BASE,
         "1: limits: expected a mapping with calls_per_number, calls_per_customer, calls_per_caller"),
        (BASE.replace("    name: Acme BV\n", "    name: Acme BV\n    max_calls: 10001\n"),
         f"4: customers[0].max_calls: {EXPECTED}"),
        (BASE.replace("    type: local\n", "    type: local\n    max_calls: 2.5\n"),
         f"8: numbers[0].max_calls: {EXPECTED}"),
    ])
    def test_a_bad_limit_names_its_line_key_and_what_was_expected(self, tmp_path: Path, text: str,
                                                                  problem: str) -> None:
        assert problems(tmp_path, text) == [problem]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fairline.yaml"
    path.write_text(text, encoding="utf-8")
    return path
