"""The console's settings, made once by `fairline console` (or a test) and read by every request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ari_app.settings import DEFAULT_GREETINGS_DIR
from console.core.sessions import SessionPolicy
from console.core.throttle import ThrottlePolicy

DEFAULT_PASSWORD_MAX_AGE_DAYS = 180


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    database_url: str
    # False only for plain HTTP on loopback (`fairline console --plain-http`, the browser test):
    # a browser keeps a Secure cookie from an http:// page only on localhost.
    secure_cookies: bool = True
    sessions: SessionPolicy = SessionPolicy()
    throttle: ThrottlePolicy = ThrottlePolicy()
    password_max_age_days: int = DEFAULT_PASSWORD_MAX_AGE_DAYS
    clock: Callable[[], datetime] = field(default=utc_now)
    greetings_dir: Path = DEFAULT_GREETINGS_DIR  # where uploaded greetings go: the nodes' path (decision 0036)

    @property
    def session_cookie(self) -> str:
        # __Host-: the browser takes it only with Secure, Path=/ and no Domain, so no sibling host can set it.
        return "__Host-fairline_session" if self.secure_cookies else "fairline_session"

    @property
    def csrf_cookie(self) -> str:
        return "__Host-fairline_csrf" if self.secure_cookies else "fairline_csrf"
