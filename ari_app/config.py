"""The PBX admin's configuration file: which numbers fairline serves, and how.

Loaded once into frozen objects. Every problem names the file, the line, the key
and what was expected, and all problems are reported together.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import phonenumbers
import yaml

from ari_app.errors import ConfigError

# Asterisk sound names: letters, digits, '-', '_' and '/' for sub-directories.
_SOUND = re.compile(r"^[A-Za-z0-9_\-/]+$")


@dataclasses.dataclass(frozen=True, slots=True)
class Number:
    """One number fairline serves."""

    e164: str
    announcement: str  # the prompt a caller hears (an Asterisk sound name)


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    numbers: Mapping[str, Number]  # by E.164

    def number(self, did: str) -> Number | None:
        """The configured number for a dialled DID, or None when it is not in service."""
        e164 = to_e164(did)
        return self.numbers.get(e164) if e164 is not None else None


def to_e164(raw: str) -> str | None:
    """E.164 form of a dialled number ("+31201234567", "31201234567"), or None when it is not one."""
    digits = raw.strip()
    if not digits.startswith("+"):
        digits = "+" + digits
    try:
        parsed = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, node: yaml.Node | None, key: str, expected: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.items.append(f"{self.path}{line}: {key}: {expected}")


def load(path: Path) -> Config:
    """Read and check a configuration file; raise ConfigError listing every problem."""
    problems = _Problems(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc

    numbers: dict[str, Number] = {}
    if not isinstance(root, yaml.MappingNode):
        problems.add(root, "(top level)", "expected a mapping with a 'numbers' list")
        raise ConfigError(problems.items)
    top = _mapping(root, problems, "(top level)", allowed={"numbers"})
    numbers_node = top.get("numbers")
    if numbers_node is None:
        problems.add(root, "numbers", "missing; expected a list of numbers")
    elif not isinstance(numbers_node, yaml.SequenceNode):
        problems.add(numbers_node, "numbers", "expected a list of numbers")
    else:
        for i, item in enumerate(numbers_node.value):
            number = _number(item, problems, f"numbers[{i}]")
            if number is None:
                continue
            if number.e164 in numbers:
                problems.add(item, f"numbers[{i}].number", f"{number.e164} is configured twice")
                continue
            numbers[number.e164] = number
    if problems.items:
        raise ConfigError(problems.items)
    return Config(numbers=MappingProxyType(numbers))


def _mapping(node: yaml.Node, problems: _Problems, where: str, allowed: set[str]) -> dict[str, yaml.Node]:
    out: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key not in allowed:
            problems.add(key_node, f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
            continue
        out[key] = value_node
    return out


def _number(node: yaml.Node, problems: _Problems, where: str) -> Number | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, "expected a mapping with 'number' and 'announcement'")
        return None
    fields = _mapping(node, problems, where, allowed={"number", "announcement"})
    e164 = None
    raw_number = fields.get("number")
    if raw_number is None:
        problems.add(node, f"{where}.number", "missing; expected an E.164 number like \"+31201234567\"")
    elif not isinstance(raw_number, yaml.ScalarNode) or not str(raw_number.value).startswith("+"):
        problems.add(raw_number, f"{where}.number", "expected an E.164 number in quotes, like \"+31201234567\"")
    else:
        e164 = to_e164(raw_number.value)
        if e164 is None:
            problems.add(raw_number, f"{where}.number", f"{raw_number.value!r} is not a valid E.164 number")
    announcement = "hello-world"
    raw_announcement = fields.get("announcement")
    if raw_announcement is not None:
        if not isinstance(raw_announcement, yaml.ScalarNode) or not _SOUND.match(str(raw_announcement.value)):
            problems.add(raw_announcement, f"{where}.announcement", "expected an Asterisk sound name like hello-world")
        else:
            announcement = raw_announcement.value
    if e164 is None:
        return None
    return Number(e164=e164, announcement=announcement)
