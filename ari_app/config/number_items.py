"""The items of a configuration's `numbers:` list, cut out of its text (issue 16).

A version that changes one number of 5,000 need not be checked whole: the loader (yaml_loader.check)
reuses what it read of every item whose text is unchanged, and reads only the others. That is safe
only where an item's meaning is its text: here the text is cut by lines, and anything that could
tie one item to another or change how lines are read makes `split` answer None (check the whole):
anchors and aliases, directives and document markers, line breaks other than '\\n', a `numbers:`
key that is not plainly written. The loader also checks the cut against what YAML itself composed.
"""

from __future__ import annotations

import dataclasses
import re

_KEY = re.compile(r"numbers:[ \t]*(#.*)?\n?\Z")  # `numbers:` at the top level, its list on the lines below
_ITEM = re.compile(r"( *)-( |\n|\Z)")  # a block sequence's entry: '- ' at the list's indentation
_UNSAFE = re.compile("[\r\x85\u2028\u2029]")  # line breaks YAML knows and this cutting does not


@dataclasses.dataclass(frozen=True, slots=True)
class NumberItems:
    """A configuration text as: the text around its `numbers:` list, and each item of the list."""

    before: str  # up to and including the `numbers:` line
    after: str  # from the first line after the list to the end
    first_lines: tuple[int, ...]  # each item's first line (0-based) in the text
    items: tuple[str, ...]  # each item's text: its `- ` line up to the next item (comments between included)


def split(text: str, key: str = "numbers") -> NumberItems | None:
    """The `numbers:` list of `text` (or another top-level list, e.g. `queues:`) cut into items, or None when
    the text is not plainly shaped for it."""
    if _UNSAFE.search(text):
        return None
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    pattern = _KEY if key == "numbers" else re.compile(re.escape(key) + _KEY.pattern[len("numbers"):])
    keys = [i for i, line in enumerate(lines) if pattern.match(line)]
    if len(keys) != 1 or any(line.startswith(("%", "---", "...")) for line in lines):
        return None
    start = keys[0] + 1
    indent = None
    firsts: list[int] = []
    end = len(lines)
    for i in range(start, len(lines)):
        line = lines[i]
        content = line.lstrip(" ")
        if content in ("", "\n") or content.startswith("#"):
            continue
        depth = len(line) - len(content)
        item = _ITEM.match(line)
        if indent is None:
            if item is None:
                return None  # the list is not a block sequence on the lines below (e.g. `numbers: []`)
            indent = depth
        if item is not None and depth == indent:
            firsts.append(i)
        elif depth <= indent:
            end = i
            break
    if not firsts:
        return None
    if any(c in line for line in lines[firsts[0]:end] for c in "&*"):
        return None  # an anchor or an alias would tie items to each other
    bounds = [*firsts, end]
    return NumberItems(before="".join(lines[:firsts[0]]), after="".join(lines[end:]), first_lines=tuple(firsts),
                       items=tuple("".join(lines[a:b]) for a, b in zip(bounds, bounds[1:])))
