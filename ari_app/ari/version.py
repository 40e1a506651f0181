"""Which Asterisk fairline runs on: the one rule that reads a version string and refuses an old one.

Pure (no aiohttp), so the stack runner can check `asterisk -V` with the same rule the app
applies to ARI's /asterisk/info.
"""

from __future__ import annotations

import re

from ari_app.errors import FairlineError

MIN_ASTERISK_MAJOR = 22

# ARI's system.version ("22.10.1+dfsg+~cs6.17.60671434-1", "certified-22.8-cert4") and the output of
# `asterisk -V` ("Asterisk 22.10.1+dfsg...", "Asterisk certified/22.8-cert4"): the major version is the
# number before the first dot.
_VERSION = re.compile(r"\s*(?:Asterisk\s+)?(?:certified[/-])?(\d+)\.")


class UnsupportedAsterisk(FairlineError):
    """The Asterisk fairline talks to is older than the one it was built for."""


def asterisk_major(version: str) -> int:
    """22 for '22.10.1+dfsg+~cs6.17.60671434-1', for 'certified-22.8-cert4' and for 'Asterisk 22.10.1'."""
    m = _VERSION.match(version)
    if not m:
        raise UnsupportedAsterisk(f"cannot read Asterisk's version from {version!r}")
    return int(m.group(1))


def require_supported(version: str) -> int:
    """The major version of `version`; UnsupportedAsterisk when unreadable or older than MIN_ASTERISK_MAJOR."""
    major = asterisk_major(version)
    if major < MIN_ASTERISK_MAJOR:
        raise UnsupportedAsterisk(f"Asterisk {version} is too old: fairline needs {MIN_ASTERISK_MAJOR} or newer")
    return major
