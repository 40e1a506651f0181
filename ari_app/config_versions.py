"""Configuration versions: what a new version changes per number (pure), and who makes one by default.

The store itself is rating/storage/config_store.py; `fairline config apply` stores versions and
every fairline applies the newest (ari_app/runtime/config_watch.py). Decisions 0008 and 0021.

Changes are keyed by number: each item of `numbers:` by its `number` in E.164 (so
"+31 20 123 4567" and "+31201234567" are the same number), or as written when it
does not parse. Everything outside `numbers:` (customers, tariff) is compared as
one pseudo-number, "*".
"""

from __future__ import annotations

import difflib
import getpass
import os
from typing import Any

import yaml

from rating.core.numbering import to_e164
from rating.storage.config_store import ChangeKind, NumberChange

OUTSIDE_NUMBERS = "*"  # the pseudo-number for customers, tariff and any other top-level key


def number_changes(old_text: str | None, new_text: str) -> list[NumberChange]:
    """What new_text adds, changes and removes against old_text (None: nothing before), by number.

    Only meaning counts: comments, layout, key order and how a number is spelled are
    no change. Raises yaml.YAMLError when a text is not YAML.
    """
    old, new = _sections(old_text), _sections(new_text)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        kind: ChangeKind = "added" if before is None else "removed" if after is None else "changed"
        diff = difflib.unified_diff((before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
                                    fromfile=f"{key} before", tofile=f"{key} after")
        changes.append(NumberChange(key, kind, "".join(diff)))
    return changes


def _sections(text: str | None) -> dict[str, str]:
    """The file cut into what is compared: each number's YAML by its key, and "*" for the rest."""
    root = yaml.safe_load(text) if text is not None else None
    if not isinstance(root, dict):
        return {}
    rest = {key: value for key, value in root.items() if key != "numbers"}
    items = root.get("numbers")
    if not isinstance(items, list):
        if items is not None:
            rest["numbers"] = items
        items = []
    sections = {OUTSIDE_NUMBERS: _dump(rest)} if rest else {}
    for i, item in enumerate(items):
        key = f"numbers[{i}]"  # an item without a number: known by its place
        if isinstance(item, dict) and item.get("number") is not None:
            raw = str(item["number"]).strip()
            e164 = to_e164(raw)
            key = e164 or raw
            if e164 is not None:
                item = {**item, "number": e164}
        # A number given twice (never in a file that was applied): keep both, apart.
        unique, n = key, 1
        while unique in sections:
            n += 1
            unique = f"{key}#{n}"
        sections[unique] = _dump(item)
    return sections


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=True, allow_unicode=True, default_flow_style=False)


def default_author() -> str:
    """Who applies a configuration when --author is not given: the OS user."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"
