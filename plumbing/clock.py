"""The one spelling of "now": an aware datetime in UTC (local time only to decide peak and to show)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
