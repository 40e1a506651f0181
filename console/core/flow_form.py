"""A number's call flow as a web form, and back (decision 0035); pure: values in, values out.

The form holds the common parts as fields of their own (what answers, the targets one a line,
strategy, ring time, answer confirmation, no answer, recording, blocked callers) and the rest of the
number's item (opening hours, closed days, ...) as YAML in an "advanced" text area, which the edge
parses. `item_of` builds the number's new item of `numbers:`; the loader (the same check as `fairline
config apply`) then judges the whole new configuration, and `place` puts each of its problems next to
the field it names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

ANSWERS = ("targets", "queue", "voicemail", "announcement")
NO_ANSWER = ("", "announcement", "number", "queue", "voicemail")  # "": the default (announcement vm-nobodyavail)
FLAGS = ("", "yes", "no")  # "": the default (as the target's kind, as the customer says)
FIXED = ("number", "customer", "type")  # never changed in the form
STAFF_ONLY = ("max_calls", "international_forwarding")  # limits and cost: shown to customers, set by staff
STRUCTURED = ("announcement", "route", "recording", "blocked_callers")
TOP = "top"  # the problems that name no field of the form


@dataclass(frozen=True, slots=True)
class FlowForm:
    """The form's fields as the browser sends them back: text, exactly as typed."""

    answer: str = "targets"  # one of ANSWERS: what a call gets
    queue: str = ""  # answer "queue": the queue's name
    announcement: str = ""  # answer "announcement": the sound
    strategy: str = "simultaneous"
    ring_seconds: str = ""  # "": the default (20 s)
    confirm: str = ""  # one of FLAGS
    targets: str = ""  # one a line: "+31612345678[, 15 s][, confirm | no confirm]"
    no_answer: str = ""  # one of NO_ANSWER
    no_answer_value: str = ""  # its sound, number or queue
    recording: str = ""  # one of FLAGS
    blocked_callers: str = ""  # one a line
    advanced: str = ""  # YAML: the number's other keys

    @classmethod
    def from_fields(cls, get: Any) -> FlowForm:
        """The form from a mapping of the posted fields (`get(name)` gives a string, or "" when absent)."""
        return cls(**{f.name: str(get(f.name)).replace("\r\n", "\n") for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class Shown:
    """What the form shows of a number: its fields, and what it may not change there."""

    form: FlowForm
    fixed: dict[str, Any]  # number, customer, type (and for customers the staff-only keys), kept as they are
    advanced: dict[str, Any]  # the keys the advanced area holds, to be dumped as YAML by the edge


@dataclass(frozen=True, slots=True)
class Built:
    """The number's new item, and which form line each target of its route came from (for messages)."""

    item: dict[str, Any]
    target_lines: tuple[int, ...] = ()  # 1-based line of the targets field for route.targets[j]


@dataclass(frozen=True, slots=True)
class Problems:
    """Messages by form field (TOP for those of no field); empty: none."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def merge(self, other: Problems) -> None:
        for name, messages in other.by_field.items():
            self.by_field.setdefault(name, []).extend(messages)

    def __bool__(self) -> bool:
        return bool(self.by_field)


class FormInvalid(ValueError):
    """The form cannot be made into a number's item; `problems` says why, by field."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {m}" for k, ms in problems.by_field.items() for m in ms))


# ---- item -> form


def shown(item: Mapping[str, Any], *, staff: bool) -> Shown:
    """The form of a stored number's item (as yaml.safe_load reads it)."""
    keep = FIXED if staff else FIXED + STAFF_ONLY
    fixed = {k: item[k] for k in keep if k in item}
    advanced = {k: v for k, v in item.items() if k not in keep and k not in STRUCTURED}
    form = FlowForm(recording=flag_text(item.get("recording")),
                    blocked_callers="".join(f"{c}\n" for c in item.get("blocked_callers") or ()))
    if "announcement" in item:
        form = replace(form, answer="announcement", announcement=str(item["announcement"]))
    route = item.get("route")
    if isinstance(route, Mapping):
        form = _route_fields(form, route)
    return Shown(form, fixed, advanced)


def _route_fields(form: FlowForm, route: Mapping[str, Any]) -> FlowForm:
    if "queue" in route:
        return replace(form, answer="queue", queue=str(route["queue"]))
    if "voicemail" in route:
        return replace(form, answer="voicemail")
    no_answer, value = "", ""
    given = route.get("no_answer")
    if isinstance(given, Mapping) and len(given) == 1:
        [(no_answer, raw)] = given.items()
        value = "" if no_answer == "voicemail" else str(raw)
    return replace(form, answer="targets", strategy=str(route.get("strategy", "simultaneous")),
                   ring_seconds=str(route.get("ring_seconds", "")), confirm=flag_text(route.get("confirm")),
                   targets="".join(f"{target_line(t)}\n" for t in route.get("targets") or ()),
                   no_answer=str(no_answer), no_answer_value=value)


def target_line(target: Any) -> str:
    """A target as one line of the targets field."""
    if not isinstance(target, Mapping):
        return str(target)
    parts = [str(target.get("number", ""))]
    if "ring_seconds" in target:
        parts.append(f"{target['ring_seconds']} s")
    if "confirm" in target:
        parts.append("confirm" if target["confirm"] is True else "no confirm")
    return ", ".join(parts)


def flag_text(value: Any) -> str:
    return "" if value is None else "yes" if value is True else "no"


# ---- form -> item

_SECONDS = re.compile(r"([0-9]{1,4})\s*s?")
TARGET_LINE = "expected a number, then optionally its ring time and confirm or no confirm, e.g. +31612345678, 15 s, confirm"


def parse_targets(text: str) -> tuple[list[Any], tuple[int, ...], list[str]]:
    """The targets field: one target a line (blank lines skipped); the targets, their line numbers, problems."""
    targets: list[Any] = []
    lines: list[int] = []
    problems: list[str] = []
    for n, line in enumerate(text.split("\n"), start=1):
        parts = [p.strip() for p in line.split(",")]
        if not parts[0] and len(parts) == 1:
            continue
        target: dict[str, Any] = {"number": parts[0]}
        for part in parts[1:]:
            seconds = _SECONDS.fullmatch(part)
            if seconds and "ring_seconds" not in target:
                target["ring_seconds"] = int(seconds.group(1))
            elif part.lower() in ("confirm", "no confirm") and "confirm" not in target:
                target["confirm"] = part.lower() == "confirm"
            else:
                problems.append(f"line {n}: {part!r}: {TARGET_LINE}")
                break
        else:
            targets.append(target if len(target) > 1 else parts[0])
            lines.append(n)
    return targets, tuple(lines), problems


def seconds_field(text: str) -> int | str:
    """Whole seconds as a number, anything else as typed: the loader says what it expected."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]{1,4}", text) else text


def flag_field(text: str) -> bool | None:
    return {"yes": True, "no": False}.get(text)


def item_of(form: FlowForm, fixed: Mapping[str, Any], advanced: Any, *, staff: bool) -> Built:
    """The number's new item from the form, the keys it does not change (`fixed`) and the advanced area
    as the edge parsed it (a mapping, or None when empty). Raises FormInvalid for what only the form
    can say (a target line not understood, an advanced key that belongs elsewhere); the rest is the loader's."""
    problems = Problems()
    item: dict[str, Any] = dict(fixed)
    target_lines: tuple[int, ...] = ()
    if form.answer == "announcement":
        item["announcement"] = form.announcement.strip()
    elif form.answer == "queue":
        item["route"] = {"queue": form.queue.strip()}
    elif form.answer == "voicemail":
        item["route"] = {"voicemail": True}
    elif form.answer == "targets":
        route: dict[str, Any] = {}
        if form.strategy != "simultaneous":
            route["strategy"] = form.strategy
        if form.ring_seconds.strip():
            route["ring_seconds"] = seconds_field(form.ring_seconds)
        if flag_field(form.confirm) is not None:
            route["confirm"] = flag_field(form.confirm)
        targets, target_lines, bad = parse_targets(form.targets)
        for message in bad:
            problems.add("targets", message)
        route["targets"] = targets
        if form.no_answer == "voicemail":
            route["no_answer"] = {"voicemail": True}
        elif form.no_answer in NO_ANSWER[1:]:
            route["no_answer"] = {form.no_answer: form.no_answer_value.strip()}
        elif form.no_answer:
            problems.add("no_answer", f"expected one of {', '.join(NO_ANSWER[1:])}")
        item["route"] = route
    else:
        problems.add("answer", f"expected one of {', '.join(ANSWERS)}")
    if flag_field(form.recording) is not None:
        item["recording"] = flag_field(form.recording)
    blocked = [line.strip() for line in form.blocked_callers.split("\n") if line.strip()]
    if blocked:
        item["blocked_callers"] = blocked
    if advanced is not None and not isinstance(advanced, Mapping):
        problems.add("advanced", "expected keys and their values (a YAML mapping), e.g. hours: {mon-fri: 08:00-17:00}")
    for key, value in (advanced or {}).items() if isinstance(advanced, Mapping) else ():
        if key in FIXED:
            problems.add("advanced", f"{key}: not changed here; expected the number's other keys")
        elif key in STRUCTURED:
            problems.add("advanced", f"{key}: set in the fields above; expected the number's other keys")
        elif key in STAFF_ONLY and not staff:
            problems.add("advanced", f"{key}: set by our staff; ask them to change it")
        else:
            item[key] = value
    if problems:
        raise FormInvalid(problems)
    return Built(item, target_lines)


# ---- the loader's problems -> the form's fields

# "SOURCE[:LINE]: KEY: what was expected" (ari_app/config/yaml_loader.py)
_PROBLEM = re.compile(r"^(?P<source>[^:]*)(?::(?P<line>[0-9]+))?: (?P<key>[^:]+?): (?P<expected>.*)$", re.S)
_ROUTE_FIELDS = {"strategy": "strategy", "ring_seconds": "ring_seconds", "confirm": "confirm",
                 "no_answer": "no_answer", "queue": "queue", "voicemail": "answer", "targets": "targets"}


def field_of(key: str, index: int, answer: str) -> tuple[str, str] | None:
    """Which field a loader key names when the edited number is numbers[index], and the key as the form
    reads it (the part after numbers[index]); None when it names something else."""
    head = f"numbers[{index}]"
    if key != head and not key.startswith((head + ".", head + "[")):
        return None
    rest = key[len(head):].lstrip(".")
    first = re.split(r"[.\[]", rest, maxsplit=1)[0]
    if first == "route" and answer != "announcement":
        sub = re.split(r"[.\[]", rest[len("route."):], maxsplit=1)[0] if rest.startswith("route.") else ""
        return _ROUTE_FIELDS.get(sub, "answer"), rest
    if first == "announcement":
        return "announcement", rest
    if first in ("recording", "blocked_callers"):
        return first, rest
    if first in ("", *FIXED):
        return TOP, rest
    return "advanced", rest


def place(messages: Sequence[str], index: int, built: Built, answer: str, *, staff: bool) -> Problems:
    """The loader's problems with the edited number's new text, each by the field it names. A problem
    elsewhere in the configuration goes to the top; a customer sees it without its details, which may
    name another customer's numbers (staff see all)."""
    problems = Problems()
    for message in messages:
        found = _PROBLEM.match(message)
        where = field_of(found.group("key"), index, answer) if found else None
        if found is None or where is None:
            problems.add(TOP, message.split(": ", 1)[-1] if staff else
                         "this change does not fit the rest of the configuration; nothing was saved. Our staff can "
                         "tell you more.")
            continue
        name, rest = where
        expected = found.group("expected")
        target = re.match(r"route\.targets\[([0-9]+)\]", rest)
        if target and int(target.group(1)) < len(built.target_lines):
            problems.add(name, f"line {built.target_lines[int(target.group(1))]}: {expected}")
        else:
            problems.add(name, f"{rest}: {expected}" if rest else expected)
    return problems


# ---- a stale edit: what of the number's customer an edit depends on


def customer_settings(root: Any, customer_id: str) -> dict[str, Any]:
    """The parts of a configuration (as yaml.safe_load reads it) outside `numbers:` that a customer's
    numbers use: the customer's own entry and its queues."""
    if not isinstance(root, Mapping):
        return {}
    mine = [c for c in root.get("customers") or () if isinstance(c, Mapping) and c.get("id") == customer_id]
    queues = [q for q in root.get("queues") or () if isinstance(q, Mapping) and q.get("customer") == customer_id]
    return {"customer": mine, "queues": queues}
