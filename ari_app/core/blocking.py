"""Blocked callers: a number's and its customer's lists of caller numbers and prefixes refused before anything rings.

Pure. The flow asks `Config.refusal` (ari_app/core/model.py) first thing on a new call (before a recording notice or a
consent prompt); the generated fallback dialplan (ari_app/dialplan_gen.py) holds the same lists
for calls fairline does not take, and `[fairline-block]` in dialplan/extensions.conf compares the
caller id exactly as `caller_key` does here (decision 0030).

A list holds E.164 prefixes ("+3161234" blocks every number that starts with it; a whole number
blocks that number) and `withheld`, for callers who present no number (anonymous, restricted,
or nothing at all).
"""

from __future__ import annotations

import dataclasses
import re

WITHHELD = "withheld"  # the list entry for callers who present no number
# Every entry is a line of the generated dialplan, which Asterisk reloads whole on each publish: a list is
# for nuisance callers and a few ranges, not a national do-not-call register.
MAX_BLOCKED = 200
_PREFIX = re.compile(r"\+[1-9][0-9]{0,14}")  # a country code's first digit is never 0; E.164 has 15 digits at most
EXPECTED = ("expected a caller's number or a prefix of one in E.164: '+' and up to 15 digits, like "
            "\"+31612345678\" or \"+3190\", or withheld (callers who present no number)")
_DIALLED = frozenset("+0123456789")


def check_entry(raw: str) -> str:
    """The list entry written as `raw`; ValueError saying what was expected when it is not one."""
    if raw == WITHHELD or _PREFIX.fullmatch(raw):
        return raw
    raise ValueError(f"{raw!r}: {EXPECTED}")


def caller_key(caller: str | None) -> str | None:
    """The caller id as the lists are compared with it, or None for a caller who presents no number.

    Only '+' and digits count (the dialplan's FILTER(+0123456789,...)); a leading 00 is the
    international prefix; a number without '+' is taken as international digits, as carriers
    send it (a national form such as 0612345678 matches no E.164 prefix).
    """
    kept = "".join(c for c in caller or "" if c in _DIALLED)
    if not any(c.isdigit() for c in kept):
        return None
    if kept.startswith("00"):
        return "+" + kept[2:]
    return kept if kept.startswith("+") else "+" + kept


@dataclasses.dataclass(frozen=True, slots=True)
class Blocklist:
    """The callers a number or customer refuses: prefixes ("+3161234") and, if `withheld`, callers without a number."""

    prefixes: frozenset[str] = frozenset()
    withheld: bool = False

    def __post_init__(self) -> None:
        for prefix in self.prefixes:
            if _PREFIX.fullmatch(prefix) is None:
                raise ValueError(f"{prefix!r}: {EXPECTED}")
        if len(self.prefixes) + self.withheld > MAX_BLOCKED:
            raise ValueError(f"{len(self.prefixes) + self.withheld} blocked callers; expected at most {MAX_BLOCKED}")

    @classmethod
    def of(cls, entries: list[str] | tuple[str, ...]) -> Blocklist:
        """The list of `entries` as written (prefixes and `withheld`)."""
        return cls(frozenset(e for e in entries if e != WITHHELD), WITHHELD in entries)

    @property
    def entries(self) -> tuple[str, ...]:
        """The entries, sorted (`withheld` last)."""
        return (*sorted(self.prefixes), *((WITHHELD,) if self.withheld else ()))

    def refuses(self, caller: str | None) -> bool:
        """Whether the list holds the caller id `caller` (as the carrier sent it; None: withheld)."""
        key = caller_key(caller)
        if key is None:
            return self.withheld
        return any(key[:end] in self.prefixes for end in range(2, len(key) + 1))


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """What a blocked caller gets: busy (486) at once, or `announcement` as early media and then busy.

    Never answered either way: nobody pays for the call, and fair use does not count it."""

    announcement: str | None = None


BUSY = Refusal()
