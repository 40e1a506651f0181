"""TOTP (RFC 6238) with pyotp: 6 digits, 30-second steps, one step of clock drift either way.
A code is accepted once: its step must be later than the last one accepted (no replay)."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

ISSUER = "fairline"
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app takes (typed in, or from a QR code made elsewhere)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def grouped(secret: str) -> str:
    """The secret in groups of four, to type it into an app."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def accepted_step(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` belongs to when it is right and not used before; None when refused."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if (last_step is None or step > last_step) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


