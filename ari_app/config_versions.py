"""Configuration versions: what a new version changes per number (pure), and who makes one by default.

The store itself is rating/storage/config_store.py; `fairline config apply` stores versions and
every fairline applies the newest (ari_app/runtime/config_watch.py). Decisions 0008 and 0021.

Changes are keyed by number: each item of `numbers:` by its `number` in E.164 (so
"+31 20 123 4567" and "+31201234567" are the same number), or as written when it
does not parse. Everything outside `numbers:` (customers, tariff) is compared as
one pseudo-number, "*", except the items of `queues:`, each keyed "queue:NAME". Each number's (and queue's) change also names its customer before and after
(decision 0035): the console shows a customer only the changes made while the number was theirs.
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
QUEUE = "queue:"  # each item of `queues:` by its name, e.g. "queue:support" (its customer's: decision 0035)


def number_changes(old_text: str | None, new_text: str) -> list[NumberChange]:
    """What new_text adds, changes and removes against old_text (None: nothing before), by number.

    Only meaning counts: comments, layout, key order and how a number is spelled are
    no change. Raises yaml.YAMLError when a text is not YAML.
    """
    old, new = _sections(old_text), _sections(new_text)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        (before, owner_before), (after, owner_after) = old.get(key, _NONE), new.get(key, _NONE)
        if before == after:
            continue
        kind: ChangeKind = "added" if before is None else "removed" if after is None else "changed"
        diff = difflib.unified_diff((before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
                                    fromfile=f"{key} before", tofile=f"{key} after")
        changes.append(NumberChange(key, kind, "".join(diff), owner_before, owner_after))
    return changes


_NONE: tuple[None, None] = (None, None)


def _sections(text: str | None) -> dict[str, tuple[str, str | None]]:
    """The file cut into what is compared: each number's YAML and customer by its key, and "*" for the rest."""
    root = yaml.safe_load(text) if text is not None else None
    if not isinstance(root, dict):
        return {}
    rest = {key: value for key, value in root.items() if key not in ("numbers", "queues")}
    queues = root.get("queues")
    if not isinstance(queues, list):
        if queues is not None:
            rest["queues"] = queues
        queues = []
    items = root.get("numbers")
    if not isinstance(items, list):
        if items is not None:
            rest["numbers"] = items
        items = []
    sections: dict[str, tuple[str, str | None]] = {OUTSIDE_NUMBERS: (_dump(rest), None)} if rest else {}
    for i, queue in enumerate(queues):
        name = queue.get("name") if isinstance(queue, dict) else None
        key = f"{QUEUE}{name}" if name is not None and str(name) else f"queues[{i}]"
        while key in sections:  # a name given twice (never in a file that was applied)
            key += "#"
        sections[key] = (_dump(queue), _owner(queue))
    for i, item in enumerate(items):
        key = f"numbers[{i}]"  # an item without a number: known by its place
        owner = _owner(item)
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
        sections[unique] = (_dump(item), owner)
    return sections


def _owner(item: Any) -> str | None:
    """The customer a number's item names; None when it names none (the loader refuses such a file)."""
    customer = item.get("customer") if isinstance(item, dict) else None
    return str(customer) if customer is not None and str(customer) else None


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=True, allow_unicode=True, default_flow_style=False)


def default_author() -> str:
    """Who applies a configuration when --author is not given: the OS user."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"
