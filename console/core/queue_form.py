"""One of the customer's queues as a web form, and back (decision 0035); pure: values in, values out.

A queue is an item of the top-level `queues:` list (docs/configuration.md): its agents one a line,
strategy, ring, wrap-up, wait and position times, answer confirmation and overflow each have a field;
`name` and `customer` are never changed here. The loader judges the whole new configuration, as for a
number's form, and `place` puts each of its problems next to the field its key names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from console.core.flow_form import TOP, FormInvalid, Problems, flag_field, flag_text, seconds_field

STRATEGIES = ("", "ringall", "roundrobin", "longestidle")  # "": the default (ringall)
OVERFLOWS = ("", "announcement", "number", "target", "voicemail")  # "": the default (announcement vm-nobodyavail)
FIXED = ("name", "customer")
SECONDS = ("ring_seconds", "wrapup_seconds", "max_wait_seconds", "position_every_seconds")
KNOWN = (*FIXED, "agents", "strategy", *SECONDS, "confirm", "overflow")


@dataclass(frozen=True, slots=True)
class QueueForm:
    """The form's fields as the browser sends them back: text, exactly as typed ("": the default)."""

    agents: str = ""  # one phone a line
    strategy: str = ""
    ring_seconds: str = ""
    wrapup_seconds: str = ""
    max_wait_seconds: str = ""
    position_every_seconds: str = ""
    confirm: str = ""  # "", "yes", "no"
    overflow: str = ""  # one of OVERFLOWS
    overflow_value: str = ""  # its sound, number or phone

    @classmethod
    def from_fields(cls, get: Any) -> QueueForm:
        """The form from a mapping of the posted fields (`get(name)` gives a string, or "" when absent)."""
        return cls(**{f.name: str(get(f.name)).replace("\r\n", "\n") for f in fields(cls)})


def queue_index(root: Any, name: str) -> int | None:
    """The position of the queue `name` in `queues:` of a configuration as YAML reads it; None when absent."""
    items = root.get("queues") if isinstance(root, Mapping) else None
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, Mapping) and str(item.get("name")) == name:
            return i
    return None


def queues_of(root: Any, customer_id: str) -> list[Mapping[str, Any]]:
    """The customer's queues, in the order of the file."""
    items = root.get("queues") if isinstance(root, Mapping) else None
    return [q for q in items if isinstance(q, Mapping) and str(q.get("customer")) == customer_id] \
        if isinstance(items, list) else []


def shown(item: Mapping[str, Any]) -> QueueForm:
    """The form of a stored queue's item (as yaml.safe_load reads it)."""
    overflow, value = "", ""
    given = item.get("overflow")
    if isinstance(given, Mapping) and len(given) == 1:
        [(overflow, raw)] = given.items()
        value = "" if overflow == "voicemail" else str(raw)
    return QueueForm(agents="".join(f"{a}\n" for a in item.get("agents") or ()),
                     strategy=str(item.get("strategy", "")), confirm=flag_text(item.get("confirm")),
                     overflow=str(overflow), overflow_value=value,
                     **{k: str(item.get(k, "")) for k in SECONDS})


def item_of(form: QueueForm, old: Mapping[str, Any]) -> dict[str, Any]:
    """The queue's new item from the form, keeping `name`, `customer` and any key the form does not show.
    Raises FormInvalid for what only the form can say; the rest is the loader's."""
    problems = Problems()
    item: dict[str, Any] = {k: old[k] for k in FIXED if k in old}
    item["agents"] = [line.strip() for line in form.agents.split("\n") if line.strip()]
    if form.strategy in STRATEGIES[1:]:
        item["strategy"] = form.strategy
    elif form.strategy:
        problems.add("strategy", f"expected one of {', '.join(STRATEGIES[1:])}")
    for key in SECONDS:
        text = getattr(form, key)
        if text.strip():
            item[key] = seconds_field(text)
    if flag_field(form.confirm) is not None:
        item["confirm"] = flag_field(form.confirm)
    if form.overflow == "voicemail":
        item["overflow"] = {"voicemail": True}
    elif form.overflow in OVERFLOWS[1:]:
        item["overflow"] = {form.overflow: form.overflow_value.strip()}
    elif form.overflow:
        problems.add("overflow", f"expected one of {', '.join(OVERFLOWS[1:])}")
    item.update({k: v for k, v in old.items() if k not in KNOWN})
    if problems:
        raise FormInvalid(problems)
    return item


# "SOURCE[:LINE]: KEY: what was expected" (ari_app/config/yaml_loader.py), as flow_form reads it
_PROBLEM = re.compile(r"^(?P<source>[^:]*)(?::(?P<line>[0-9]+))?: (?P<key>[^:]+?): (?P<expected>.*)$", re.S)


def place(messages: Sequence[str], index: int, *, staff: bool) -> Problems:
    """The loader's problems with the edited queue's new text, each by the field its key names
    (`queues[index].agents[j]`: the agents, naming the (j+1)th); a problem elsewhere goes to the top, for a
    customer without its details (they may name another customer's numbers; staff see all)."""
    problems = Problems()
    head = f"queues[{index}]"
    for message in messages:
        found = _PROBLEM.match(message)
        key = found.group("key") if found else ""
        if found is None or not (key == head or key.startswith((head + ".", head + "["))):
            problems.add(TOP, message.split(": ", 1)[-1] if staff else
                         "this change does not fit the rest of the configuration; nothing was saved. Our staff can "
                         "tell you more.")
            continue
        rest = key[len(head):].lstrip(".")
        first = re.split(r"[.\[]", rest, maxsplit=1)[0]
        name = first if first in KNOWN and first not in FIXED else TOP
        agent = re.fullmatch(r"agents\[([0-9]+)\]", rest)
        expected = found.group("expected")
        problems.add(name, f"agent {int(agent.group(1)) + 1}: {expected}" if agent else
                     f"{rest}: {expected}" if rest and rest != first else expected)
    return problems
