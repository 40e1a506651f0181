"""Concurrent-call limits: how many calls a number, a customer and a caller may have at once (decision 0026).

The limits are configuration; Asterisk's dialplan applies them (`GROUP()`/`GROUP_COUNT()` in
`[fairline-limit]`) before a call reaches the app, the shedding or the fallback, so they hold on
every path, with fairline connected or not. What is decided here, purely: which limits a number's
calls get (its own or the defaults), and what a limit may be.
"""

from __future__ import annotations

import dataclasses

# Sane defaults: a flood at one number forwarded to mobiles costs at most this many calls at once.
# A number or customer that takes more real traffic says so (`max_calls`).
DEFAULT_CALLS_PER_NUMBER = 20
DEFAULT_CALLS_PER_CUSTOMER = 50
# One caller id with more calls than this in progress is a flood or a dialler, even for a PBX's
# switchboard number; withheld callers are counted by number and customer only.
DEFAULT_CALLS_PER_CALLER = 10
MAX_LIMIT = 10_000  # past Asterisk's sizing on any machine fairline runs on; a typo, not a limit

EXPECTED = f"a whole number of calls at once, from 1 to {MAX_LIMIT}"


def check_limit(raw: str) -> int:
    """The limit written as `raw` ("20"); ValueError saying what was expected when it is not one."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValueError(f"{raw!r}: expected {EXPECTED}")
    return int(raw)


@dataclasses.dataclass(frozen=True, slots=True)
class CallLimits:
    """The configuration's defaults (`limits:`); a number's or customer's `max_calls` overrides its own."""

    per_number: int = DEFAULT_CALLS_PER_NUMBER
    per_customer: int = DEFAULT_CALLS_PER_CUSTOMER
    per_caller: int = DEFAULT_CALLS_PER_CALLER

    def __post_init__(self) -> None:
        for name in ("per_number", "per_customer", "per_caller"):
            if not 1 <= getattr(self, name) <= MAX_LIMIT:
                raise ValueError(f"CallLimits.{name}: expected {EXPECTED}, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True, slots=True)
class NumberLimits:
    """What the dialplan holds one number's calls to: at most `number` calls to it, `customer` calls to all
    numbers of `customer_id` (None: a number fairline does not serve, counted alone), `caller` calls from one
    caller id (to any of fairline's numbers)."""

    number: int
    customer_id: str | None
    customer: int
    caller: int


def number_limits(defaults: CallLimits, *, number_max: int | None, customer_id: str | None,
                  customer_max: int | None) -> NumberLimits:
    """The limits of a number whose own `max_calls` is `number_max` and whose customer's is `customer_max`
    (None: not given, the default holds)."""
    return NumberLimits(
        number=number_max if number_max is not None else defaults.per_number,
        customer_id=customer_id,
        customer=customer_max if customer_max is not None else defaults.per_customer,
        caller=defaults.per_caller,
    )
