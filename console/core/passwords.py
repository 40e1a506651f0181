"""Password rules, hashing and age: the same for `fairline users` and the web form.

The rules are a list of small validators, each with the message a user sees (after Django's
password_validation). Hashing is argon2id with argon2-cffi's defaults (RFC 9106's second
recommended profile); a hash made with older parameters is re-made at the next login.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import argon2
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MIN_SCORE = 3  # zxcvbn: 3 "safely unguessable: moderate protection from offline slow-hash scenario"
# A name part shorter than this is too common a substring to forbid ("al" in "totally").
MIN_NAME_PART = 3

_HASHER = argon2.PasswordHasher()  # argon2id by default


@dataclass(frozen=True, slots=True)
class Holder:
    """Whose password it is: the rules refuse passwords made of these."""

    name: str
    email: str


class Rule(Protocol):
    @property
    def help_text(self) -> str: ...

    def problem(self, password: str, holder: Holder) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MinimumLength:
    length: int = MIN_LENGTH

    @property
    def help_text(self) -> str:
        return f"at least {self.length} characters"

    def problem(self, password: str, holder: Holder) -> str | None:
        if len(password) < self.length:
            return f"too short: {len(password)} characters, at least {self.length} are needed"
        return None


@dataclass(frozen=True, slots=True)
class NotYourName:
    help_text: str = "not containing your name or e-mail address"

    def problem(self, password: str, holder: Holder) -> str | None:
        lowered = password.casefold()
        if any(part in lowered for part in _own_words(holder)):
            return "contains your name or e-mail address"
        return None


@dataclass(frozen=True, slots=True)
class HardToGuess:
    score: int = MIN_SCORE

    help_text: str = "hard to guess: no common password, word, date, keyboard pattern or repetition"

    def problem(self, password: str, holder: Holder) -> str | None:
        # zxcvbn's time grows with the length; beyond 100 characters its answer no longer changes.
        result = zxcvbn(password[:100], user_inputs=sorted(_own_words(holder)))
        if int(result["score"]) >= self.score:
            return None
        warning = str(result["feedback"].get("warning") or "").rstrip(".")
        return "too easy to guess" + (f": {warning[0].lower() + warning[1:]}" if warning else "")


RULES: tuple[Rule, ...] = (MinimumLength(), NotYourName(), HardToGuess())


def _own_words(holder: Holder) -> set[str]:
    email = holder.email.casefold()
    local = email.split("@", 1)[0]
    name = holder.name.casefold()
    words = {email, local, re.sub(r"\s+", "", name), *re.split(r"[^\w]+", name), *re.split(r"[^\w]+", local)}
    return {w for w in words if len(w) >= MIN_NAME_PART}


def problems(password: str, holder: Holder) -> list[str]:
    """Why `password` is refused for `holder`, one message per broken rule; empty: accepted."""
    return [p for rule in RULES if (p := rule.problem(password, holder)) is not None]


def explained() -> str:
    """The rules in one sentence, for the form and the command's help."""
    return "A password needs " + ", ".join(rule.help_text for rule in RULES) + "."


_ALPHABET = string.ascii_letters + string.digits


def generate() -> str:
    """A strong random password: 20 letters and digits (119 bits), in groups of five to read it out."""
    while True:
        chars = "".join(secrets.choice(_ALPHABET) for _ in range(20))
        candidate = "-".join(chars[i:i + 5] for i in range(0, 20, 5))
        # A random string passes the rules but for a freak (a name inside it); draw again then.
        if not problems(candidate, Holder(name="", email="")):
            return candidate


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


# Verified against when the e-mail is unknown or disabled, so such a login takes as long as a real one.
DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def verify(stored_hash: str, password: str) -> bool:
    """Whether `password` matches; a hash that is not argon2 (damaged) matches nothing."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


def change_due(changed_at: datetime, now: datetime, max_age_days: int) -> int | None:
    """The password's age in days when it is time to change it (the policy asks so regularly); else None.

    `max_age_days` 0 never reminds.
    """
    age = now - changed_at
    if max_age_days > 0 and age >= timedelta(days=max_age_days):
        return age.days
    return None
