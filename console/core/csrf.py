"""CSRF tokens. Signed in, the token is the session's own (kept in its row); before sign-in (the
login form) it is the value of a cookie of its own (double submit). Either way a form's hidden
field must carry it; a POST without it or with another is refused with 403."""

from __future__ import annotations

import hmac
import secrets

FIELD = "csrf_token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def valid(expected: str | None, given: str | None) -> bool:
    """Whether a form's token is the one expected; nothing expected or nothing given is never valid."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
