"""One call as a line of JSON Lines, the input of `fairline rate` and `fairline cdr import`, and its bounds.

The bounds keep what a line can ask for within what rating and the cdrs table hold: a line
past one of them is refused with the field and the bound, as any other bad line is, and the
lines after it are still read (docs/billing.md, "Bounds of an input line").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rating.core.tariff import CallTimes, NumberType
from rating.errors import InvalidCall

# A call line is some 250 bytes; 64 KiB leaves room for any fields a caller passes through
# `fairline rate`, and is what a reader holds at most of a longer line (plumbing/bounded_lines.py).
MAX_LINE_BYTES = 64 * 1024
# A call's fields are flat; 32 levels leave room for what `fairline rate` passes through, far
# below where Python's JSON reader and writer run out of stack (some 1,000).
MAX_NESTING = 32
# From start to end. No person talks for a week; a longer call is a wrong date. Its seconds
# (604,800) are far inside the cdrs table's integer columns (2,147,483,647, 68 years).
MAX_CALL_DURATION = timedelta(days=7)
# Every timestamp: from the Unix epoch (nothing fairline rates is older) up to, not
# including, 2100. Year 9999 with an offset is past what Python's datetime can hold in UTC.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)

CALL_FIELDS = ("call_id", "number", "number_type", "start", "answer", "end")
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def decode_line(line: bytes) -> str:
    """The line as text; InvalidCall when it is not UTF-8."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise InvalidCall(None, f"expected UTF-8 text; byte {bad.start + 1} is not") from None


def too_long(length: int) -> InvalidCall:
    """The error for a line of `length` bytes, more than MAX_LINE_BYTES."""
    return InvalidCall(None, f"the line is {length} bytes long; expected at most {MAX_LINE_BYTES} "
                             "(a call takes some 250)")


def parse_call_object(line: str, fields: tuple[str, ...], *, empty_id: bool) -> tuple[dict[str, Any], str]:
    """One line of JSON Lines calls: the object and its call id; InvalidCall says what is missing or wrong.

    `empty_id`: whether "" is a call id (`fairline rate` echoes it; an import stores it, so refuses it).
    """
    if nesting_depth(line) > MAX_NESTING:
        raise InvalidCall(None, f"expected a JSON object, got JSON nested more than {MAX_NESTING} levels deep")
    try:
        given = json.loads(line)
    except json.JSONDecodeError as problem:
        raise InvalidCall(None, f"expected a JSON object, got invalid JSON ({problem})") from None
    if not isinstance(given, dict):
        raise InvalidCall(None, f"expected a JSON object, got {_JSON_KINDS.get(type(given), 'null')}")
    given_id = given.get("call_id")
    call_id = given_id if isinstance(given_id, str) and (empty_id or given_id) else None
    missing = [name for name in fields if name not in given]
    if missing:
        hint = " (answer is null for an unanswered call)" if "answer" in missing else ""
        raise InvalidCall(call_id, f"{', '.join(missing)}: missing{hint}")
    if call_id is None:
        kind = "a string" if empty_id else "a non-empty string"
        raise InvalidCall(None, f"call_id: expected {kind}, got {json.dumps(given_id)}")
    return given, call_id


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in the JSON text (brackets inside strings not counted)."""
    if text.count("[") + text.count("{") <= MAX_NESTING:  # every line of calls: no need to look closer
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_call_times(call_id: str, given: dict[str, Any]) -> CallTimes:
    """The number and times of a call object parse_call_object returned; InvalidCall names what is wrong."""
    number_type = parse_number_type(call_id, given["number_type"])
    start = parse_timestamp(call_id, "start", given["start"])
    answer = None if given["answer"] is None else parse_timestamp(call_id, "answer", given["answer"])
    end = parse_timestamp(call_id, "end", given["end"])
    # Checks the order of the times and the number.
    times = CallTimes(call_id, given["number"], number_type, start, answer, end)
    if end - start > MAX_CALL_DURATION:
        raise InvalidCall(call_id, f"end: expected at most {MAX_CALL_DURATION.days} days after start "
                                   f"{start.isoformat()}, got {end.isoformat()}, {_lasting(end - start)} later")
    return times


def parse_number_type(call_id: str, value: object) -> NumberType:
    """A number_type field of a JSON Lines call; InvalidCall names the field and the values allowed."""
    for number_type in NumberType:
        if value == number_type.value:
            return number_type
    expected = ", ".join(t.value for t in NumberType)
    raise InvalidCall(call_id, f"number_type: expected one of {expected}, got {json.dumps(value)}")


def parse_timestamp(call_id: str, field: str, value: object) -> datetime:
    """An ISO 8601 timestamp field with an offset (or Z), within the bounds; InvalidCall names the field otherwise."""
    expectation = f"{field}: expected an ISO 8601 timestamp with an offset or Z, like 2026-11-23T18:59:30+01:00"
    if not isinstance(value, str):
        raise InvalidCall(call_id, f"{expectation}; got {json.dumps(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCall(call_id, f"{expectation}; got {value!r}") from None
    if parsed.utcoffset() is None:
        raise InvalidCall(call_id, f"{expectation}; got {value!r}, which has no offset")
    # Compared, never converted: a time near year 1 or 9999 may not exist in UTC.
    if not EARLIEST_TIMESTAMP <= parsed < LATEST_TIMESTAMP:
        raise InvalidCall(call_id, f"{field}: expected from {EARLIEST_TIMESTAMP.date()} up to (not including) "
                                   f"{LATEST_TIMESTAMP.date()} UTC; got {value!r}")
    return parsed


def _lasting(length: timedelta) -> str:
    days, seconds = length.days, length.seconds
    return f"{days} days {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
