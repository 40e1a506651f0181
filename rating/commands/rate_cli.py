"""`fairline rate`: price calls given as JSON Lines, one output line per call, in order.

Each input line is an object like
  {"call_id": "c1", "number": "+31201234567", "number_type": "local",
   "start": "2026-11-23T18:59:30+01:00", "answer": "2026-11-23T18:59:40+01:00",
   "end": "2026-11-23T19:01:10+01:00"}
with "answer": null for an unanswered call. The output line is that object plus
the price; a line that cannot be priced becomes {"call_id": ..., "error": ...}
and the lines after it are still priced. Blank lines are skipped, as JSON Lines
readers commonly do, so a trailing empty line is no error; error messages carry
the input line number so a bad line can be found all the same.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO

from rating.errors import InvalidCall
from rating.core.tariff import CallTimes, NumberType, RatedPrice, RateTable, rate_call

_FIELDS = ("call_id", "number", "number_type", "start", "answer", "end")
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def run_rate(stdin: TextIO, stdout: TextIO, rates: RateTable) -> int:
    """Price each call read from stdin onto stdout; exit status 1 if any line was bad, else 0."""
    status = 0
    for line_number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            out = _rate_line(line, rates)
        except InvalidCall as bad:
            out = {"call_id": bad.call_id, "error": f"line {line_number}: {bad.reason}"}
            status = 1
        stdout.write(json.dumps(out) + "\n")
    return status


def _rate_line(line: str, rates: RateTable) -> dict[str, Any]:
    given, call_id = parse_call_object(line, _FIELDS, empty_id=True)
    call = CallTimes(
        call_id=call_id,
        number=given["number"],
        number_type=parse_number_type(call_id, given["number_type"]),
        start=parse_timestamp(call_id, "start", given["start"]),
        answer=None if given["answer"] is None else parse_timestamp(call_id, "answer", given["answer"]),
        end=parse_timestamp(call_id, "end", given["end"]),
    )
    return given | _price_fields(rate_call(call, rates))


def parse_call_object(line: str, fields: tuple[str, ...], *, empty_id: bool) -> tuple[dict[str, Any], str]:
    """One line of JSON Lines calls: the object and its call id; InvalidCall says what is missing or wrong.

    `empty_id`: whether "" is a call id (`fairline rate` echoes it; an import stores it, so refuses it).
    """
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


def parse_number_type(call_id: str, value: object) -> NumberType:
    """A number_type field of a JSON Lines call; InvalidCall names the field and the values allowed."""
    for number_type in NumberType:
        if value == number_type.value:
            return number_type
    expected = ", ".join(t.value for t in NumberType)
    raise InvalidCall(call_id, f"number_type: expected one of {expected}, got {json.dumps(value)}")


def parse_timestamp(call_id: str, field: str, value: object) -> datetime:
    """An ISO 8601 timestamp field with an offset (or Z); InvalidCall names the field otherwise."""
    expectation = f"{field}: expected an ISO 8601 timestamp with an offset or Z, like 2026-11-23T18:59:30+01:00"
    if not isinstance(value, str):
        raise InvalidCall(call_id, f"{expectation}; got {json.dumps(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCall(call_id, f"{expectation}; got {value!r}") from None
    if parsed.utcoffset() is None:
        raise InvalidCall(call_id, f"{expectation}; got {value!r}, which has no offset")
    return parsed


def _price_fields(price: RatedPrice) -> dict[str, Any]:
    return {
        "billable_seconds": price.billable_seconds,
        "peak_seconds": price.peak_seconds,
        "offpeak_seconds": price.offpeak_seconds,
        # Strings, not JSON numbers: readers would turn those into floats.
        "setup_eur": f"{price.setup_eur:.4f}",
        "usage_eur": f"{price.usage_eur:.4f}",
        "list_price_eur": f"{price.list_price_eur:.4f}",
        "fair_use_eligible": price.fair_use_eligible,
    }
