"""Call lines of `fairline rate` and `fairline cdr import` within their bounds (issue 17).

Every bad line gets one error naming its line and what is wrong, and the lines after it are
still read; a line that passes is one the cdrs table can hold. Both commands read lines with
rating/core/call_lines.py, so each case runs through both.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plumbing.bounded_lines import bounded_lines
from rating.commands import billing_cli
from rating.commands.rate_cli import run_rate
from rating.core.call_lines import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_CALL_DURATION,
    MAX_LINE_BYTES,
    MAX_NESTING,
    nesting_depth,
)
from rating.core.tariff import RateTable, TrafficRates

RATES = RateTable((TrafficRates(date(2020, 1, 1)),))
GOOD: dict[str, Any] = {
    "call_id": "good", "customer_id": "acme", "number": "+31201234567", "number_type": "local",
    "start": "2026-11-23T18:59:30+01:00", "answer": "2026-11-23T18:59:40+01:00", "end": "2026-11-23T19:01:10+01:00",
}
INT4_MAX = 2**31 - 1  # cdrs' seconds columns are integer
NUMERIC_12_4_MAX = Decimal("99999999.9999")  # and its money columns numeric(12,4)


def call(**changes: Any) -> bytes:
    return json.dumps(GOOD | {"call_id": "bad"} | changes).encode()


def stream(lines: list[bytes]) -> io.BytesIO:
    return io.BytesIO(b"".join(line + b"\n" for line in lines))


def rated(lines: list[bytes]) -> tuple[int, list[dict[str, Any]]]:
    """`fairline rate` on these lines: its exit status and output objects."""
    out = io.StringIO()
    status = run_rate(stream(lines), out, RATES)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


def imported(lines: list[bytes]) -> billing_cli.ParsedImport:
    """`fairline cdr import` on these lines, up to the database: what it would store and what it rejects."""
    return billing_cli.parse_import(bounded_lines(stream(lines), MAX_LINE_BYTES), RATES)


def outcome_of_both(bad: bytes) -> tuple[str, str]:
    """bad between two good lines, through `rate` and `cdr import`: the error of each (the good ones must pass)."""
    lines = [call(call_id="first"), bad, call(call_id="last")]
    status, out = rated(lines)
    assert status == 1
    assert [o["call_id"] for o in out if "error" not in o] == ["first", "last"]
    [rate_error] = [o["error"] for o in out if "error" in o]
    parsed = imported(lines)
    assert [n for n, _ in parsed.cdrs] == [1, 3]
    [rejected] = parsed.rejected
    assert rejected.line_number == 2
    return rate_error, rejected.reason


class TestTheIssuesInputs:
    """Each crashed a command (a traceback, the rest of the input lost) or got past parsing to fail later."""

    @pytest.mark.parametrize("nested", ["[" * 50_000, '{"a":' * 10_000, "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1)],
                             ids=["arrays", "objects", "just-past-the-bound"])
    def test_deeply_nested_json(self, nested: str) -> None:
        """It overflowed Python's stack (RecursionError)."""
        rate_error, reason = outcome_of_both(nested.encode())
        assert rate_error == f"line 2: expected a JSON object, got JSON nested more than {MAX_NESTING} levels deep"
        assert reason == rate_error.removeprefix("line 2: ")

    @pytest.mark.parametrize(("field", "value"), [
        ("start", "9999-12-31T23:59:00-05:00"),  # OverflowError in rating: past datetime's range in UTC
        ("start", "0001-01-01T00:00:00+05:00"),
        ("end", "2100-01-01T00:00:00Z"),
        ("start", "1969-12-31T23:59:59Z"),
    ])
    def test_a_timestamp_out_of_range(self, field: str, value: str) -> None:
        times = {"start": value, "answer": None, "end": value} if field == "start" else {"end": value}
        rate_error, reason = outcome_of_both(call(**times))
        assert rate_error == (f"line 2: {field}: expected from 1970-01-01 up to (not including) 2100-01-01 UTC; "
                              f"got {value!r}")
        assert reason == rate_error.removeprefix("line 2: ")

    def test_a_hundred_year_call(self) -> None:
        """It was priced (3,155,673,690 seconds), then PostgreSQL refused it, aborting the whole import."""
        rate_error, reason = outcome_of_both(call(answer="2000-01-03T10:00:10Z", start="2000-01-03T10:00:00Z",
                                                  end="2099-12-31T10:00:00Z"))
        assert rate_error == ("line 2: end: expected at most 7 days after start 2000-01-03T10:00:00+00:00, "
                              "got 2099-12-31T10:00:00+00:00, 36522 days 00:00:00 later")
        assert reason == rate_error.removeprefix("line 2: ")

    def test_a_fifty_megabyte_line(self) -> None:
        rate_error, reason = outcome_of_both(b'{"call_id": "' + b"x" * (50 << 20) + b'"}')
        assert rate_error == f"line 2: the line is {(50 << 20) + 15} bytes long; expected at most {MAX_LINE_BYTES} " \
                             "(a call takes some 250)"
        assert reason == rate_error.removeprefix("line 2: ")

    def test_a_line_of_invalid_utf8(self) -> None:
        rate_error, _ = outcome_of_both(b'{"call_id": "\xff"}')
        assert rate_error == "line 2: expected UTF-8 text; byte 14 is not"


class TestTheBoundsThemselves:
    def test_a_call_of_exactly_the_longest_length_is_priced_one_second_more_is_not(self) -> None:
        start = datetime(2026, 11, 23, 9, tzinfo=UTC)
        longest = call(call_id="longest", start=start.isoformat(), answer=start.isoformat(),
                       end=(start + MAX_CALL_DURATION).isoformat())
        longer = call(call_id="longer", start=start.isoformat(), answer=start.isoformat(),
                      end=(start + MAX_CALL_DURATION + timedelta(seconds=1)).isoformat())
        status, [ok, refused] = rated([longest, longer])
        assert (status, ok["billable_seconds"], refused["call_id"]) == (1, 7 * 86400, "longer")
        assert refused["error"].startswith("line 2: end: expected at most 7 days after start ")

    def test_the_first_and_last_instants_are_in_range(self) -> None:
        first, last = EARLIEST_TIMESTAMP.isoformat(), (LATEST_TIMESTAMP - timedelta(seconds=1)).isoformat()
        status, out = rated([call(start=first, answer=None, end=first), call(start=last, answer=last, end=last)])
        assert status == 0 and len(out) == 2

    def test_a_line_of_exactly_the_longest_length_is_read_one_byte_more_is_not(self) -> None:
        room = MAX_LINE_BYTES - len(call(note=""))
        longest, longer = call(note="n" * room), call(note="n" * (room + 1))
        assert len(longest) == MAX_LINE_BYTES
        status, [ok, refused] = rated([longest, longer])
        assert (status, "error" in ok) == (1, False)
        assert refused["error"] == (f"line 2: the line is {MAX_LINE_BYTES + 1} bytes long; expected at most "
                                    f"{MAX_LINE_BYTES} (a call takes some 250)")

    @pytest.mark.parametrize(("text", "depth"), [
        ('{"a": [1, {"b": []}]}', 3), ('"[[[["', 0), ('["\\"[[["]', 1), ("[" * 40, 40), ('{"a": "' + "{" * 40 + '"}', 1),
    ])
    def test_nesting_is_counted_outside_strings(self, text: str, depth: int) -> None:
        assert nesting_depth(text) == (depth if text.count("[") + text.count("{") > MAX_NESTING else 0)

    def test_passed_through_fields_may_nest_up_to_the_bound(self) -> None:
        deep: Any = "bottom"
        for _ in range(MAX_NESTING - 1):  # inside the line's own object
            deep = [deep]
        status, [out] = rated([call(note=deep)])
        assert status == 0 and out["note"] == deep


# ----------------------------------------------------------------- properties

# Fixed offsets up to a day either way, the widest datetime allows; instants from year 1 to 9999.
OFFSETS = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                            max_value=timedelta(hours=23, minutes=59)).map(
    lambda d: timedelta(minutes=d // timedelta(minutes=1))))
INSTANTS = st.one_of(
    st.datetimes(timezones=OFFSETS),  # anywhere datetime can go, the edges included
    st.datetimes(min_value=datetime(1969, 12, 25), max_value=datetime(2100, 1, 7), timezones=OFFSETS),
)
LENGTHS = st.one_of(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=8)),
                    st.timedeltas(min_value=-timedelta(days=1), max_value=timedelta(days=365_000)),
                    st.just(MAX_CALL_DURATION))
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=10)
NUMBERS = st.sampled_from(["+31201234567", "+318001234567", "+3215123456", "+12125550123", "+3120123456", "0201234567"])


@st.composite
def call_lines(draw: st.DrawFn) -> bytes:
    """A line as a file of calls may hold one: mostly calls with some field odd, sometimes anything at all."""
    kind = draw(st.sampled_from(["call", "call", "call", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)).replace(b"\n", b" ")
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    start = draw(INSTANTS)
    fields: dict[str, Any] = {"call_id": draw(st.text(min_size=0, max_size=8)), "customer_id": "acme",
                              "number": draw(NUMBERS), "number_type": draw(st.sampled_from(
                                  ["local", "national", "international", "tollfree", "premium", "mobile"]))}
    try:
        answer = start + draw(LENGTHS)
        end = answer + draw(LENGTHS)
        fields |= {"start": start.isoformat(), "answer": draw(st.sampled_from([answer.isoformat(), None])),
                   "end": end.isoformat()}
    except OverflowError:  # past year 9999: then a value of another kind
        fields |= {"start": start.isoformat(), "answer": draw(JSON_VALUES), "end": draw(JSON_VALUES)}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        fields[name] = draw(JSON_VALUES)  # a field of the wrong kind now and then
    return json.dumps(fields).encode()


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestEveryLineGetsAnAnswer:
    @PROPERTY
    @given(st.lists(call_lines(), max_size=6))
    def test_rate_writes_one_priced_or_error_line_per_input_line(self, lines: list[bytes]) -> None:
        """Never a traceback: output line k answers the k-th non-blank input line; errors name their line."""
        status, out = rated(lines)
        answered = [n for n, line in enumerate(lines, start=1) if line.strip()]
        assert len(out) == len(answered)
        for n, o in zip(answered, out, strict=True):
            if "error" in o:
                assert o["error"].startswith(f"line {n}: ") and list(o) == ["call_id", "error"]
            else:
                assert 0 <= o["billable_seconds"] <= MAX_CALL_DURATION.total_seconds()
        assert status == (1 if any("error" in o for o in out) else 0)

    @PROPERTY
    @given(st.lists(call_lines(), max_size=6))
    def test_import_stores_or_rejects_each_line_once_and_what_it_stores_fits_the_cdrs_table(
            self, lines: list[bytes]) -> None:
        """A line that passes parsing is one PostgreSQL can hold: it can no longer abort the import later."""
        parsed = imported(lines)
        numbers = sorted([n for n, _ in parsed.cdrs] + [r.line_number for r in parsed.rejected])
        assert numbers == [n for n, line in enumerate(lines, start=1) if line.strip()]
        for _, cdr in parsed.cdrs:
            p, c = cdr.price, cdr.call
            assert max(p.billable_seconds, p.peak_seconds, p.offpeak_seconds) <= INT4_MAX
            assert max(p.setup_eur, p.usage_eur, p.list_price_eur) <= NUMERIC_12_4_MAX
            assert EARLIEST_TIMESTAMP <= c.started_at <= c.ended_at < LATEST_TIMESTAMP
            assert c.ended_at - c.started_at <= MAX_CALL_DURATION and c.call_id
