"""`fairline rate`: price calls given as JSON Lines, one output line per call, in order.

Each input line is an object like
  {"call_id": "c1", "number": "+31201234567", "number_type": "local",
   "start": "2026-11-23T18:59:30+01:00", "answer": "2026-11-23T18:59:40+01:00",
   "end": "2026-11-23T19:01:10+01:00"}
with "answer": null for an unanswered call. The output line is that object plus
the price; a line that cannot be priced becomes {"call_id": ..., "error": ...}
and the lines after it are still priced. Blank lines are skipped, as JSON Lines
readers commonly do, so a trailing empty line is no error; error messages carry
the input line number so a bad line can be found all the same. The bounds of a
line (its length, the call's length, the dates) are in rating/core/call_lines.py.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, TextIO

from plumbing.bounded_lines import LineTooLong, bounded_lines
from rating.core.call_lines import CALL_FIELDS, MAX_LINE_BYTES, decode_line, parse_call_object, parse_call_times, too_long
from rating.core.tariff import RatedPrice, RateTable, rate_call
from rating.errors import InvalidCall


def run_rate(stdin: BinaryIO, stdout: TextIO, rates: RateTable) -> int:
    """Price each call read from stdin onto stdout; exit status 1 if any line was bad, else 0."""
    status = 0
    for line_number, line in enumerate(bounded_lines(stdin, MAX_LINE_BYTES), start=1):
        try:
            if isinstance(line, LineTooLong):
                raise too_long(line.length)
            if not line.strip():
                continue
            out = _rate_line(decode_line(line), rates)
        except InvalidCall as bad:
            out = {"call_id": bad.call_id, "error": f"line {line_number}: {bad.reason}"}
            status = 1
        stdout.write(json.dumps(out) + "\n")
    return status


def _rate_line(line: str, rates: RateTable) -> dict[str, Any]:
    given, call_id = parse_call_object(line, CALL_FIELDS, empty_id=True)
    return given | _price_fields(rate_call(parse_call_times(call_id, given), rates))


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
