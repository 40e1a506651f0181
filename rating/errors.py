"""The rating core's errors, split by whose fault they are."""

from __future__ import annotations


class RatingError(Exception):
    """Base of every error the rating package raises on purpose."""


class InvalidCall(RatingError, ValueError):
    """A call's data cannot be rated; the reason names the field and what was expected."""

    def __init__(self, call_id: str | None, reason: str) -> None:
        self.call_id = call_id
        self.reason = reason
        super().__init__(f"call {call_id}: {reason}" if call_id is not None else reason)


class InvalidTariff(RatingError, ValueError):
    """The tariff the operator configured is unusable, or does not cover the day asked for."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class InvalidMonth(RatingError, ValueError):
    """A calendar month was given in a form that is not YYYY-MM or does not exist."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"{reason}; got {text!r}")


class InvalidUsage(RatingError, ValueError):
    """Fair-use input is inconsistent, e.g. the same customer twice in one month."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
