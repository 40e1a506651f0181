"""Voicemail (issue 18): a customer's box, the greeting callers hear, and when an unsent message is mailed again.

Pure: the loader checks a greeting file and passes its hash in; the runtime records, stores and mails.
The call flow (flow.py) takes callers into the box; decision 0027 says why fairline records with ARI and
mails from an outbox in PostgreSQL rather than using Asterisk's app_voicemail.
"""

from __future__ import annotations

import dataclasses
import enum
import re

DEFAULT_GREETING = "vm-intro"  # Asterisk's "Please leave your message after the tone. When done, hang up or press #."
DEFAULT_MAX_SECONDS = 120
MAX_SECONDS = 600  # a message longer than ten minutes is no message; a mail with it attached would be refused
SAVED = "vm-msgsaved"  # "Your message has been saved", then the call is released
SUFFIX = "-voicemail"  # the message of call X is recorded as X-voicemail (Asterisk's recording name, the file's)
GREETING_PREFIX = "fairline-greeting-"  # a customer's greeting as Asterisk plays it: a stored recording of this name

# One address: no blanks or angle brackets (a header must not be split or forged), one @, a dot in the domain.
_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+")

# After the n-th failed attempt, the next one waits FIRST_RETRY_S * 2**(n-1) seconds, at most MAX_RETRY_S:
# an SMTP server down for a minute is retried within seconds of its return, one down for a day hourly.
FIRST_RETRY_S = 10
MAX_RETRY_S = 3600


def is_email(text: str) -> bool:
    """Whether `text` is one plain e-mail address (user@example.com)."""
    return _EMAIL.fullmatch(text) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class GreetingFile:
    """A customer's own greeting: a WAV file (8 kHz, 16-bit, mono, as Asterisk plays it) and its SHA-256."""

    path: str  # absolute, on fairline's host
    sha256: str

    @property
    def name(self) -> str:
        """The stored recording Asterisk plays it as (the runtime copies the file into Asterisk's recordings)."""
        return f"{GREETING_PREFIX}{self.sha256[:16]}"


Greeting = str | GreetingFile  # an Asterisk sound name, or the customer's own file


@dataclasses.dataclass(frozen=True, slots=True)
class Box:
    """A customer's voicemail box: where messages are mailed, what callers hear, how long they may speak."""

    email: tuple[str, ...]
    greeting: Greeting = DEFAULT_GREETING
    max_seconds: int = DEFAULT_MAX_SECONDS

    def __post_init__(self) -> None:
        if not self.email or not all(is_email(e) for e in self.email):
            raise ValueError(f"a voicemail box mails its messages to one address or more, got {self.email!r}")
        if not 1 <= self.max_seconds <= MAX_SECONDS:
            raise ValueError(f"a message lasts 1 to {MAX_SECONDS} s, got {self.max_seconds}")


def greeting_media(greeting: Greeting) -> str:
    """What ARI plays for `greeting` (a sound, or the customer's file as a stored recording)."""
    return f"recording:{greeting.name}" if isinstance(greeting, GreetingFile) else f"sound:{greeting}"


class Delivery(enum.StrEnum):
    """Where a message's e-mail stands (voicemails.email_status)."""

    PENDING = "pending"  # not tried yet
    RETRYING = "retrying"  # the last attempt found the SMTP server down or busy (no answer, 4xx): tried again
    FAILED = "failed"  # the last attempt was refused (5xx): tried again all the same, in case the fault is fixed
    SENT = "sent"  # the SMTP server took it


def retry_after(attempts: int) -> int:
    """Seconds from the `attempts`-th failed attempt (1 or more) to the next one."""
    if attempts < 1:
        raise ValueError(f"expected one failed attempt or more, got {attempts}")
    return int(min(FIRST_RETRY_S * 2 ** min(attempts - 1, 20), MAX_RETRY_S))


def after_failure(refused: bool) -> Delivery:
    """A refusal (5xx) is FAILED, anything else (down, 4xx, timeout) RETRYING; both are tried again."""
    return Delivery.FAILED if refused else Delivery.RETRYING
