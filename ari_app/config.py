"""The PBX admin's configuration file: which numbers fairline serves, and how.

Loaded once into frozen objects. Every problem names the file, the line, the key
and what was expected, and all problems are reported together.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import phonenumbers
import yaml

from ari_app.errors import ConfigError
from rating.errors import InvalidTariff
from rating.tariff import DEFAULT_RATES, NumberType, RateTable, TrafficRates, number_zone

# Asterisk sound names, relative to the sounds directory: letters, digits, '-', '_',
# and '/' between sub-directory names (no absolute paths, no '..').
_SOUND = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


# A customer's id is used in billing tables and on invoices: keep it plain.
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Number types that phonenumbers can confirm from the number itself.
_TYPE_CHECKS = {
    NumberType.TOLLFREE: phonenumbers.PhoneNumberType.TOLL_FREE,
    NumberType.PREMIUM: phonenumbers.PhoneNumberType.PREMIUM_RATE,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Number:
    """One number fairline serves."""

    e164: str
    customer_id: str
    number_type: NumberType
    announcement: str  # the prompt a caller hears (an Asterisk sound name)


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    customers: Mapping[str, Customer]  # by id
    numbers: Mapping[str, Number]  # by E.164
    rates: RateTable = DEFAULT_RATES

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
        problems.add(root, "(top level)", "expected a mapping with 'customers' and 'numbers' lists")
        raise ConfigError(problems.items)
    top = _mapping(root, problems, "(top level)", allowed={"customers", "numbers", "tariff"})
    customers = _customers(top.get("customers"), root, problems)
    rates = _tariff(top["tariff"], problems) if "tariff" in top else DEFAULT_RATES
    numbers_node = top.get("numbers")
    if numbers_node is None:
        problems.add(root, "numbers", "missing; expected a list of numbers")
    elif not isinstance(numbers_node, yaml.SequenceNode):
        problems.add(numbers_node, "numbers", "expected a list of numbers")
    else:
        for i, item in enumerate(numbers_node.value):
            number = _number(item, problems, f"numbers[{i}]", customers)
            if number is None:
                continue
            if number.e164 in numbers:
                problems.add(item, f"numbers[{i}].number", f"{number.e164} is configured twice")
                continue
            numbers[number.e164] = number
    if problems.items:
        raise ConfigError(problems.items)
    return Config(customers=MappingProxyType(customers), numbers=MappingProxyType(numbers), rates=rates)


_RATE_FIELDS = ("setup_eur", "peak_eur_per_min", "offpeak_eur_per_min")


def _tariff(node: yaml.Node, problems: _Problems) -> RateTable:
    """Versions of the traffic rates, each in force from its valid_from date; amounts as exact decimals."""
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(node, "tariff", "expected a list of versions with valid_from, setup_eur, "
                                     "peak_eur_per_min and offpeak_eur_per_min")
        return DEFAULT_RATES
    versions = []
    for i, item in enumerate(node.value):
        where = f"tariff[{i}]"
        if not isinstance(item, yaml.MappingNode):
            problems.add(item, where, "expected a mapping with valid_from and the three rates")
            continue
        fields = _mapping(item, problems, where, allowed={"valid_from", *_RATE_FIELDS})
        values: dict[str, object] = {}
        raw_from = _scalar(fields.get("valid_from"))
        try:
            values["valid_from"] = date.fromisoformat(raw_from or "")
        except ValueError:
            problems.add(fields.get("valid_from", item), f"{where}.valid_from", "expected a date like 2026-01-01")
        for name in _RATE_FIELDS:
            raw = _scalar(fields.get(name))
            try:
                amount = Decimal(raw or "")
            except ArithmeticError:
                amount = None
            if amount is None or not amount.is_finite() or amount < 0:
                problems.add(fields.get(name, item), f"{where}.{name}", "expected an amount in EUR like 0.07")
            else:
                values[name] = amount
        if len(values) == 1 + len(_RATE_FIELDS):
            versions.append(TrafficRates(**values))  # type: ignore[arg-type]
    try:
        return RateTable(tuple(versions)) if versions else DEFAULT_RATES
    except InvalidTariff as exc:
        problems.add(node, "tariff", exc.reason)
        return DEFAULT_RATES


def _customers(node: yaml.Node | None, root: yaml.Node, problems: _Problems) -> dict[str, Customer]:
    customers: dict[str, Customer] = {}
    if node is None:
        problems.add(root, "customers", "missing; expected a list of customers with 'id' and 'name'")
        return customers
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, "customers", "expected a list of customers with 'id' and 'name'")
        return customers
    for i, item in enumerate(node.value):
        where = f"customers[{i}]"
        if not isinstance(item, yaml.MappingNode):
            problems.add(item, where, "expected a mapping with 'id' and 'name'")
            continue
        fields = _mapping(item, problems, where, allowed={"id", "name"})
        cid, name = _scalar(fields.get("id")), _scalar(fields.get("name"))
        if cid is None or not _CUSTOMER_ID.fullmatch(cid):
            problems.add(fields.get("id", item), f"{where}.id",
                         "expected an id of letters, digits, '.', '_' or '-' (at most 64), like acme-bv")
            continue
        if name is None or not name.strip():
            problems.add(fields.get("name", item), f"{where}.name", "expected the customer's name")
            continue
        if cid in customers:
            problems.add(item, f"{where}.id", f"customer {cid} is configured twice")
            continue
        customers[cid] = Customer(cid, name.strip())
    return customers


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _mapping(node: yaml.Node, problems: _Problems, where: str, allowed: set[str]) -> dict[str, yaml.Node]:
    out: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            problems.add(key_node, where, "expected plain keys, not a list or mapping as a key")
            continue
        key = key_node.value
        if key in out:
            problems.add(key_node, f"{where}.{key}", "given twice; expected each key once")
            continue
        if key not in allowed:
            problems.add(key_node, f"{where}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")
            continue
        out[key] = value_node
    return out


def _number(node: yaml.Node, problems: _Problems, where: str, customers: Mapping[str, Customer]) -> Number | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, "expected a mapping with 'number', 'customer' and 'type'")
        return None
    fields = _mapping(node, problems, where, allowed={"number", "customer", "type", "announcement"})
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
        else:
            try:
                number_zone(e164)
            except ValueError as exc:
                # Calls to it could never be priced (no local clock for peak hours).
                problems.add(raw_number, f"{where}.number", f"fairline cannot price calls to {e164}: {exc}")
                e164 = None
    announcement = "hello-world"
    raw_announcement = fields.get("announcement")
    if raw_announcement is not None:
        if not isinstance(raw_announcement, yaml.ScalarNode) or not _SOUND.fullmatch(str(raw_announcement.value)):
            problems.add(raw_announcement, f"{where}.announcement", "expected an Asterisk sound name like hello-world")
        else:
            announcement = raw_announcement.value
    customer = _scalar(fields.get("customer"))
    if customer is None:
        problems.add(fields.get("customer", node), f"{where}.customer", "missing; expected the id of a customer above")
    elif customer not in customers:
        problems.add(fields["customer"], f"{where}.customer", f"{customer!r} is not a customer in 'customers'")
        customer = None
    number_type = _number_type(fields.get("type"), node, problems, where, e164)
    if e164 is None or customer is None or number_type is None:
        return None
    return Number(e164=e164, customer_id=customer, number_type=number_type, announcement=announcement)


def _number_type(node: yaml.Node | None, parent: yaml.Node, problems: _Problems, where: str,
                 e164: str | None) -> NumberType | None:
    expected = ", ".join(t.value for t in NumberType)
    raw = _scalar(node)
    if raw is None:
        problems.add(node or parent, f"{where}.type", f"missing; expected one of {expected}")
        return None
    try:
        number_type = NumberType(raw)
    except ValueError:
        problems.add(node, f"{where}.type", f"{raw!r}: expected one of {expected}")
        return None
    if e164 is not None:
        actual = phonenumbers.number_type(phonenumbers.parse(e164))
        # Toll-free and premium numbers are priced differently: the type must match the number.
        for declared, kind in _TYPE_CHECKS.items():
            if (number_type is declared) != (actual == kind):
                problems.add(node, f"{where}.type", f"{raw!r} does not fit {e164}, which is "
                             f"{'a' if actual == kind else 'not a'} {declared.value} number")
                return None
    return number_type
