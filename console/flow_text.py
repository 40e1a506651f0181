"""A configuration's text with one number's item replaced (decision 0035): the rest stays byte for byte.

The item is cut out with the loader's own cutting (ari_app/config/number_items.py) and written anew
as YAML; comment lines that follow it (they introduce the next item) are kept. A text the cutting
does not take (anchors, flow style) gives None: such a file is changed by `fairline config apply`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ari_app.config import number_items
from rating.core.numbering import to_e164

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where there is one: many times faster


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def number_index(root: Any, e164: str) -> int | None:
    """The position of `e164` in the `numbers:` list of a configuration read by `load`; None when absent."""
    items = root.get("numbers") if isinstance(root, Mapping) else None
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, Mapping) and item.get("number") is not None and to_e164(str(item["number"])) == e164:
            return i
    return None


def dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def item_text(item: Mapping[str, Any], indent: str) -> str:
    """`item` as one entry of a block list indented by `indent`."""
    lines = dump(dict(item)).splitlines()
    return "".join(f"{indent}{'- ' if i == 0 else '  '}{line}\n" for i, line in enumerate(lines))


def with_item(text: str, index: int, item: Mapping[str, Any], key: str = "numbers") -> str | None:
    """`text` with the index-th item of `numbers:` (or of `key:`, e.g. `queues:`) replaced by `item`; None when
    the text cannot be cut."""
    layout = number_items.split(text, key)
    if layout is None or index >= len(layout.items):
        return None
    old = layout.items[index]
    lines = old.splitlines(keepends=True)
    body = len(lines)
    while body > 1 and (not lines[body - 1].strip() or lines[body - 1].lstrip().startswith("#")):
        body -= 1  # the comments and blank lines after the item introduce the next one: kept
    indent = old[:len(old) - len(old.lstrip(" "))]
    new = item_text(item, indent) + "".join(lines[body:])
    return layout.before + "".join(layout.items[:index]) + new + "".join(layout.items[index + 1:]) + layout.after


def parse_advanced(text: str) -> tuple[Any, str | None]:
    """The advanced area: its value (None when empty), or a problem saying where the YAML is wrong."""
    if not text.strip():
        return None, None
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        return None, f"{where}not valid YAML: {getattr(exc, 'problem', None) or exc}"
