"""Session tokens and expiry: a session ends after `idle` without a request, and `absolute` after
sign-in whatever happens; the cookie holds a random token, the database only its SHA-256."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta


class Ended(enum.StrEnum):
    IDLE = "idle"
    ABSOLUTE = "absolute"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    # A half-done sign-in (password given, TOTP code due) waits this long for the code.
    second_factor: timedelta = timedelta(minutes=5)


def new_token() -> str:
    """256 random bits, URL-safe: the cookie's value."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """What the sessions table keeps of a token: a leaked table opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def ended(*, created_at: datetime, last_seen_at: datetime, signed_in: bool, now: datetime,
          policy: SessionPolicy) -> Ended | None:
    """Why a session is over at `now`, or None while it lasts."""
    if now - created_at >= (policy.absolute if signed_in else policy.second_factor):
        return Ended.ABSOLUTE
    if now - last_seen_at >= policy.idle:
        return Ended.IDLE
    return None
