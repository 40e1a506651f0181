"""Login throttling: too many failed logins lock the account, and, counted apart, the address.

The failures are the audit table's `login_failed` rows within the window; for an account only
those since its last sign-in or password reset count. While locked, a login is refused without
looking at the password, and the refusal is not a failure (it does not extend the lock).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


class Locked(enum.StrEnum):
    ACCOUNT = "account"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)  # failures older than this are forgotten; also the lock's length
    per_account: int = 5
    per_address: int = 20  # one address may try several accounts (an office behind NAT), but not many


@dataclass(frozen=True, slots=True)
class Lock:
    why: Locked
    until: datetime


def lock(*, account_failures: Sequence[datetime], address_failures: Sequence[datetime], now: datetime,
         policy: ThrottlePolicy) -> Lock | None:
    """The lock in force at `now`, or None: a login may be tried."""
    for why, failures, limit in ((Locked.ACCOUNT, account_failures, policy.per_account),
                                 (Locked.ADDRESS, address_failures, policy.per_address)):
        recent = sorted(f for f in failures if now - policy.window < f <= now)
        if len(recent) >= limit:
            return Lock(why, recent[-1] + policy.window)
    return None


def locks_now(failures_with_this_one: int, policy: ThrottlePolicy) -> bool:
    """Whether the failure just recorded is the one that locks the account (audited as a lockout once)."""
    return failures_with_this_one == policy.per_account
