"""The PBX admin's configuration file: which numbers fairline serves, and how.

Loaded once into frozen objects. Every problem names the file, the line, the key
and what was expected, and all problems are reported together, in file order.
`docs/configuration.md` describes every key.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping
from zoneinfo import ZoneInfo

import yaml

from ari_app.config import number_items
from ari_app.config.jurisdictions import shipped_law
from ari_app.config.number_items import NumberItems
from ari_app.config.greeting_file import check_greeting_file
from ari_app.core import blocking, consent, voicemail
from ari_app.core.closures import MAX_CLOSED_DATES, DateRange, Holidays
from ari_app.core.limits import EXPECTED as EXPECTED_LIMIT, CallLimits, check_limit
from ari_app.core.model import (
    ANY_OWNER,
    Closures,
    DAYS,
    DEFAULT_CONSENT_PROMPT,
    DEFAULT_CONSENT_SECONDS,
    DEFAULT_NOTICE,
    DEFAULT_RING_SECONDS,
    MAX_RING_SECONDS,
    NOBODY_AVAILABLE,
    Announce,
    AnswerConfirmation,
    Config,
    Customer,
    ForwardTo,
    NoAnswer,
    Number,
    OpeningHours,
    Owner,
    Queue,
    Recording,
    Route,
    Strategy,
    Target,
    ToQueue,
    ToVoicemail,
    Window,
    check_number_type,
    check_target,
)
from ari_app.errors import ConfigError
from ari_app.core.queueing import MAX_WAIT_POLICY_SECONDS, QueueSpec, RingStrategy
from ari_app.core import wait_budget
from ari_app.core.flow import MAX_HOPS
from rating.core import numbering
from rating.errors import InvalidTariff
from rating.core.tariff import DEFAULT_RATES, NumberType, RateTable, TrafficRates, number_zone

# Asterisk sound names, relative to the sounds directory: letters, digits, '-', '_',
# and '/' between sub-directory names (no absolute paths, no '..').
_SOUND = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


# Blocked callers, on a customer or a number (decision 0030).
_BLOCK_KEYS = {"blocked_callers", "blocked_with"}

# A customer's id is used in billing tables and on invoices: keep it plain.
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# A queue's name appears in logs and in `no_answer: {queue: NAME}`.
_QUEUE_NAME = re.compile(r"^[a-z0-9_-]+$")

# ---- loading


# YAML's line breaks, NEL and LS included: how many lines a text has, as a problem's line counts them.
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


class _Problems:
    def __init__(self, path: Path | str, text: str) -> None:
        self.path = path
        self.last_line = len(_LINE_BREAK.split(text))
        self._found: list[tuple[int, str]] = []
        self.broken_boxes: set[str] = set()  # customers whose voicemail box has a problem of its own (said once)

    def add(self, node: yaml.Node | None, key: str, expected: str) -> None:
        # A mark at the very end of the stream (an empty document after a byte order mark, say) can be
        # one line past the text: the problem is on its last line.
        line = min(node.start_mark.line + 1, self.last_line) if node is not None else 0
        # Keys and values come from the file: a line break in one must not split (or forge) a problem line.
        self._found.append((line, f"{self.path}{f':{line}' if line else ''}: {_printable(key)}: {_printable(expected)}"))


    @property
    def count(self) -> int:
        return len(self._found)

    @property
    def items(self) -> list[str]:
        """Every problem, in file order (problems on one line in the order found)."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]


def _printable(text: str) -> str:
    """`text` with what would break a problem's line (line breaks, control characters) escaped."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def load(path: Path) -> Config:
    """Read and check a configuration file; raise ConfigError listing every problem."""
    try:
        # Bytes decoded as they are (no newline translation): `text` hashes like the file.
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}); expected a UTF-8 YAML file"]) from exc
    return parse(text, path)


def parse(text: str, source: Path | str) -> Config:
    """Check configuration text, e.g. a version from the store; problems name `source` (the file, or
    "config v12") and the line, as for a file."""
    return check(text, source).config


@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    """A checked configuration, and what checking its next version can reuse: the items of `numbers:`
    by their text, with what was read of each (number_items.py)."""

    config: Config
    layout: NumberItems | None  # None: the text is not plainly shaped; its next version is checked whole
    entries: Mapping[str, _Entry]  # by the item's text
    customers: Mapping[str, Customer]
    queue_entries: tuple[_QueueEntry, ...]


def check(text: str, source: Path | str, previous: Checked | None = None) -> Checked:
    """`parse`, reusing what `previous` read of the items of `numbers:` that `text` did not change.

    Only where nothing outside `numbers:` changed (customers, queues, tariff, recording); and the
    result is what checking `text` whole gives, problems included: a version with any problem is
    checked whole again, so that its messages name the lines of the whole text.
    """
    # Loading allocates a node per YAML value and keeps them all until it returns: the
    # cyclic garbage collector would walk them again and again for nothing (more than
    # half the time for thousands of numbers). It runs again as soon as loading ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if previous is not None and previous.layout is not None:
            rechecked = _recheck(text, source, previous)
            if rechecked is not None:
                return rechecked
        return _check(text, source)
    finally:
        if collecting:
            gc.enable()


def _check(text: str, path: Path | str) -> Checked:
    problems = _Problems(path, text)
    root = _compose(text, path)

    if not isinstance(root, yaml.MappingNode):
        problems.add(root, "(top level)", "expected a mapping with 'customers' and 'numbers' lists")
        raise ConfigError(problems.items)
    top = _mapping(root, problems, "(top level)", allowed={"customers", "numbers", "queues", "tariff", "recording",
                                                                     "limits", "answer_confirmation"})
    customers = _customers(top.get("customers"), root, problems)
    queue_entries = _queues(top["queues"], problems, customers) if "queues" in top else []
    rates = _tariff(top["tariff"], problems) if "tariff" in top else DEFAULT_RATES
    recording = _recording(top["recording"], problems) if "recording" in top else Recording(shipped_law())
    limits = _limits(top["limits"], problems) if "limits" in top else CallLimits()
    confirmation = (_confirmation(top["answer_confirmation"], problems) if "answer_confirmation" in top
                    else AnswerConfirmation())
    numbers_node = top.get("numbers")
    entries: list[_Entry] = []
    if numbers_node is None:
        problems.add(root, "numbers", "missing; expected a list of numbers")
    elif not isinstance(numbers_node, yaml.SequenceNode):
        problems.add(numbers_node, "numbers", "expected a list of numbers")
    else:
        entries = [_number(item, problems, i, customers) for i, item in enumerate(numbers_node.value)]
    numbers, queues = _across_numbers(entries, queue_entries, problems, confirmation)
    if problems.count:
        raise ConfigError(problems.items)
    config = Config(customers=MappingProxyType(customers), numbers=MappingProxyType(numbers),
                    queues=MappingProxyType(queues), rates=rates, text=text, recording=recording,
                    limits=limits, confirmation=confirmation)
    layout = number_items.split(text)
    if layout is None or not _cut_as_composed(layout.first_lines, numbers_node, len(text.split("\n"))):
        return Checked(config, None, {}, customers, tuple(queue_entries))
    return Checked(config, layout, dict(zip(layout.items, entries)), customers, tuple(queue_entries))


def _cut_as_composed(first_lines: tuple[int, ...], node: yaml.Node | None, lines: int) -> bool:
    """Whether the items cut by lines are the sequence's items as YAML composed them, one by one."""
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != len(first_lines):
        return False
    bounds = [*first_lines, lines]
    return all(bounds[i] <= item.start_mark.line < bounds[i + 1] for i, item in enumerate(node.value))


def _recheck(text: str, path: Path | str, previous: Checked) -> Checked | None:
    """`text` checked by reading only its new items, or None where it must be checked whole."""
    layout = number_items.split(text)
    if (layout is None or previous.layout is None
            or (layout.before, layout.after) != (previous.layout.before, previous.layout.after)):
        return None
    known = [previous.entries.get(item) for item in layout.items]
    fresh = [i for i, entry in enumerate(known) if entry is None]
    entries = [dataclasses.replace(entry, index=i) if entry is not None else None for i, entry in enumerate(known)]
    problems = _Problems(path, text)
    if fresh:
        # The new items alone, as a list of their own: they read as they do in the whole text.
        items = "".join(layout.items[i] for i in fresh)
        try:
            root = _compose("numbers:\n" + items, path)
        except ConfigError:
            return None
        sequence = root.value[0][1] if isinstance(root, yaml.MappingNode) and len(root.value) == 1 else None
        # Each new item's first line in that list: after "numbers:" and the items before it.
        firsts = tuple(itertools.accumulate((layout.items[j].count("\n") for j in fresh[:-1]), initial=1))
        if not _cut_as_composed(firsts, sequence, 2 + items.count("\n")):
            return None
        assert isinstance(sequence, yaml.SequenceNode)
        for i, node in zip(fresh, sequence.value):
            entries[i] = _number(node, problems, i, previous.customers)
    read = [entry for entry in entries if entry is not None]
    numbers, queues = _across_numbers(read, list(previous.queue_entries), problems, previous.config.confirmation)
    if problems.count:
        return None
    config = dataclasses.replace(previous.config, numbers=MappingProxyType(numbers), queues=MappingProxyType(queues),
                                 text=text)
    return Checked(config, layout, dict(zip(layout.items, read)), previous.customers, previous.queue_entries)


def _compose(text: str, path: Path | str) -> yaml.Node | None:
    # libyaml is many times faster on large files; pure PyYAML words its errors better.
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except (yaml.YAMLError, RecursionError):
            pass
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigError([f"{path}: nested too deeply; expected the shape of docs/configuration.md"]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: no mark, but a position
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError([f"{path}:{line}: not valid YAML: {exc.reason} ({ascii(character)})"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}{where}: not valid YAML: {_printable(str(getattr(exc, 'problem', exc)))}"]) from exc


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
        fields = _mapping(item, problems, where, allowed={"id", "name", "recording", "max_calls", "voicemail",
                                                          *_BLOCK_KEYS})
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
        recording = _flag(fields["recording"], f"{where}.recording", problems) if "recording" in fields else False
        max_calls = _limit(fields["max_calls"], f"{where}.max_calls", problems) if "max_calls" in fields else None
        blocked, blocked_with = _blocking(fields, where, problems)
        box = _voicemail_box(fields["voicemail"], f"{where}.voicemail", problems) if "voicemail" in fields else None
        if "voicemail" in fields and box is None:
            problems.broken_boxes.add(cid)
        customers[cid] = Customer(cid, name.strip(), recording, max_calls, blocked, blocked_with, box)
    return customers


_BOX_SHAPE = ("expected a mapping with email (an address or a list of them), and optionally greeting (an Asterisk "
              "sound) or greeting_file (a WAV file), and max_seconds")


def _voicemail_box(node: yaml.Node, where: str, problems: _Problems) -> voicemail.Box | None:
    """A customer's `voicemail:` box; the greeting file, if any, must be there and playable (it is read)."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, _BOX_SHAPE)
        return None
    before = problems.count
    fields = _mapping(node, problems, where, allowed={"email", "greeting", "greeting_file", "max_seconds"})
    email: list[str] = []
    raw_email = fields.get("email")
    items = raw_email.value if isinstance(raw_email, yaml.SequenceNode) else [raw_email] if raw_email else []
    if not items:
        problems.add(raw_email or node, f"{where}.email", "missing; expected the e-mail address(es) messages go to, "
                                                          "like office@example.com or a list of them")
    for k, item in enumerate(items):
        address = _scalar(item)
        key = f"{where}.email" if raw_email is item else f"{where}.email[{k}]"
        if address is None or not voicemail.is_email(address):
            problems.add(item, key, "expected an e-mail address like office@example.com")
        else:
            email.append(address)
    greeting: voicemail.Greeting = voicemail.DEFAULT_GREETING
    if "greeting" in fields and "greeting_file" in fields:
        problems.add(fields["greeting_file"], f"{where}.greeting_file",
                     "a box has greeting (an Asterisk sound) or greeting_file (its own recording), not both")
    elif "greeting" in fields:
        greeting = _sound(fields["greeting"], f"{where}.greeting", problems) or greeting
    elif "greeting_file" in fields:
        raw = _scalar(fields["greeting_file"])
        try:
            greeting = check_greeting_file(raw or "")
        except ValueError as exc:
            problems.add(fields["greeting_file"], f"{where}.greeting_file", str(exc))
    max_seconds = voicemail.DEFAULT_MAX_SECONDS
    if "max_seconds" in fields:
        raw = _scalar(fields["max_seconds"])
        if raw is None or not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= voicemail.MAX_SECONDS:
            problems.add(fields["max_seconds"], f"{where}.max_seconds",
                         f"expected whole seconds from 1 to {voicemail.MAX_SECONDS}")
        else:
            max_seconds = int(raw)
    if problems.count != before:
        return None
    return voicemail.Box(tuple(email), greeting, max_seconds)


def _customer(fields: Mapping[str, yaml.Node], node: yaml.Node, where: str, customers: Mapping[str, Customer],
              problems: _Problems) -> str | None:
    """The id in `customer` of a number or queue, if it names a customer in 'customers'."""
    customer = _scalar(fields.get("customer"))
    if customer is None:
        problems.add(fields.get("customer", node), f"{where}.customer", "missing; expected the id of a customer above")
    elif customer not in customers:
        problems.add(fields["customer"], f"{where}.customer", f"{customer!r} is not a customer in 'customers'")
        return None
    return customer


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


# ---- one number


_NUMBER_KEYS = {"number", "customer", "type", "announcement", "route", "hours", "outside_hours",
                "international_forwarding", "recording", "max_calls", "closed", *_BLOCK_KEYS}


@dataclasses.dataclass(frozen=True, slots=True)
class _Mention:
    """Another number named in a route, checked once every number is known."""

    node: yaml.Node
    key: str
    e164: str


@dataclasses.dataclass(slots=True)
class _Entry:
    """One item of `numbers`, as far as it could be read."""

    index: int
    node: yaml.Node
    e164: str | None
    customer: str | None
    number: Number | None  # None when the item has a problem of its own
    international: bool = False
    targets: list[_Mention] = dataclasses.field(default_factory=list)
    forwards: list[_Mention] = dataclasses.field(default_factory=list)
    queues: list[_Mention] = dataclasses.field(default_factory=list)  # `e164` holds the queue's name
    voicemails: list[_Mention] = dataclasses.field(default_factory=list)  # `{voicemail: true}`: the box must exist


def _number(node: yaml.Node, problems: _Problems, index: int, customers: Mapping[str, Customer]) -> _Entry:
    where = f"numbers[{index}]"
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, "expected a mapping with 'number', 'customer' and 'type'")
        return _Entry(index, node, None, None, None)
    before = problems.count
    fields = _mapping(node, problems, where, allowed=_NUMBER_KEYS)
    e164 = None
    raw_number = fields.get("number")
    if raw_number is None:
        problems.add(node, f"{where}.number", "missing; expected an E.164 number like \"+31201234567\"")
    elif not isinstance(raw_number, yaml.ScalarNode) or not str(raw_number.value).startswith("+"):
        problems.add(raw_number, f"{where}.number", "expected an E.164 number in quotes, like \"+31201234567\"")
    else:
        e164 = numbering.to_e164(raw_number.value)
        if e164 is None:
            problems.add(raw_number, f"{where}.number", f"{raw_number.value!r} is not a valid E.164 number")
        else:
            try:
                number_zone(e164)
            except ValueError as exc:
                # Calls to it could never be priced (no local clock for peak hours).
                problems.add(raw_number, f"{where}.number", f"fairline cannot price calls to {e164}: {exc}")
                e164 = None
    announcement = None
    if "announcement" in fields:
        announcement = _sound(fields["announcement"], f"{where}.announcement", problems)
    customer = _customer(fields, node, where, customers, problems)
    number_type = _number_type(fields.get("type"), node, problems, where, e164)
    international = False
    if "international_forwarding" in fields:
        international = _flag(fields["international_forwarding"], f"{where}.international_forwarding", problems)

    recording = _flag(fields["recording"], f"{where}.recording", problems) if "recording" in fields else None
    max_calls = _limit(fields["max_calls"], f"{where}.max_calls", problems) if "max_calls" in fields else None
    entry = _Entry(index, node, e164, customer, None, international)
    phone = numbering.phone(e164) if e164 is not None else None
    owner = Owner(e164, phone.region if phone else None, international)
    route = outside = None
    if "route" in fields:
        route = _route(fields["route"], f"{where}.route", owner, entry, problems)
    if "outside_hours" in fields:
        outside = _route(fields["outside_hours"], f"{where}.outside_hours", owner, entry, problems)
    hours = None
    if "hours" in fields:
        hours = _hours(fields["hours"], f"{where}.hours", number_zone(e164) if e164 else None, problems)
    blocked, blocked_with = _blocking(fields, where, problems)
    closed = None
    if "closed" in fields:
        closed = _closed(fields["closed"], f"{where}.closed", owner, entry, "hours" in fields, problems)
    _what_calls_get(fields, node, where, problems)
    if customer is not None:
        for mention in entry.voicemails:
            _has_box(customers[customer], mention.node, mention.key, problems)

    if problems.count == before and e164 is not None and customer is not None and number_type is not None:
        entry.number = Number(e164=e164, customer_id=customer, number_type=number_type, announcement=announcement,
                              route=route, hours=hours, outside_hours=outside, international_forwarding=international,
                              recording=recording, max_calls=max_calls, closed=closed, blocked=blocked,
                              blocked_with=blocked_with)
    return entry


def _what_calls_get(fields: Mapping[str, yaml.Node], node: yaml.Node, where: str, problems: _Problems) -> None:
    """A route or an announcement, exactly one; opening hours only with both routes they choose between."""
    if "route" in fields and "announcement" in fields:
        problems.add(fields["announcement"], f"{where}.announcement",
                     "a number has a route or an announcement, not both; remove one")
    elif "route" not in fields and "announcement" not in fields:
        problems.add(node, f"{where}.route", "missing; expected a route (whom to ring) "
                                             "or an announcement (what callers hear)")
    if "hours" in fields and "outside_hours" not in fields:
        problems.add(fields["hours"], f"{where}.outside_hours",
                     "missing; opening hours need the route outside them (same shape as route)")
    if "outside_hours" in fields and "hours" not in fields:
        problems.add(fields["outside_hours"], f"{where}.outside_hours",
                     "applies only outside opening hours; expected hours beside it")
    if "hours" in fields and "route" not in fields and "announcement" in fields:
        problems.add(fields["hours"], f"{where}.hours",
                     "opening hours choose between route and outside_hours; an announcement-only number has no route")


def _sound(node: yaml.Node, key: str, problems: _Problems) -> str | None:
    raw = _scalar(node)
    if raw is None or not _SOUND.fullmatch(raw):
        problems.add(node, key, "expected an Asterisk sound name like hello-world")
        return None
    return raw


def _flag(node: yaml.Node, key: str, problems: _Problems) -> bool:
    raw = _scalar(node)
    if raw is None or raw.lower() not in ("true", "false"):
        problems.add(node, key, "expected true or false")
        return False
    return raw.lower() == "true"


def _limit(node: yaml.Node, key: str, problems: _Problems) -> int | None:
    raw = _scalar(node)
    try:
        return check_limit(raw if raw is not None else "")
    except ValueError:
        problems.add(node, key, f"expected {EXPECTED_LIMIT}")
        return None


_LIMIT_KEYS = {"calls_per_number": "per_number", "calls_per_customer": "per_customer",
               "calls_per_caller": "per_caller"}


def _limits(node: yaml.Node, problems: _Problems) -> CallLimits:
    """`limits:`, the concurrent-call limits' defaults; a key not given keeps its default."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, "limits", f"expected a mapping with {', '.join(_LIMIT_KEYS)}")
        return CallLimits()
    fields = _mapping(node, problems, "limits", allowed=set(_LIMIT_KEYS))
    given = {_LIMIT_KEYS[key]: _limit(value, f"limits.{key}", problems) for key, value in fields.items()}
    return CallLimits(**{name: value for name, value in given.items() if value is not None})


def _confirmation(node: yaml.Node, problems: _Problems) -> AnswerConfirmation:
    """`answer_confirmation:`, which kinds of phone must press 1 unless a route, target or queue says."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, "answer_confirmation", "expected a mapping with mobiles and landlines (true or false)")
        return AnswerConfirmation()
    fields = _mapping(node, problems, "answer_confirmation", allowed={"mobiles", "landlines"})
    given = {key: _flag(value, f"answer_confirmation.{key}", problems) for key, value in fields.items()}
    return AnswerConfirmation(**given)


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
        try:
            check_number_type(number_type, e164)
        except ValueError as exc:
            problems.add(node, f"{where}.type", str(exc))
            return None
    return number_type


# ---- routes


_ROUTE_KEYS = {"strategy", "ring_seconds", "targets", "no_answer", "queue", "confirm", "voicemail"}
_ROUTE_SHAPE = ("expected a mapping with targets, and optionally strategy, ring_seconds and no_answer; "
                "or {queue: NAME} or {voicemail: true} alone")
_E164_TARGET = "expected an E.164 number in quotes, like \"+31612345678\""


def _route(node: yaml.Node, where: str, owner: Owner, entry: _Entry, problems: _Problems) -> Route | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, _ROUTE_SHAPE)
        return None
    before = problems.count
    fields = _mapping(node, problems, where, allowed=_ROUTE_KEYS)
    # Straight into a queue, or straight to voicemail: nothing rings before it.
    for alone, read, does in (("queue", _queue_name, "sends every caller straight to the queue, which rings its agents"),
                              ("voicemail", _voicemail, "takes every caller's message at once")):
        if alone in fields:
            for key in sorted(fields.keys() - {alone}):
                problems.add(fields[key], f"{where}.{key}", f"a route with {alone} {does}; expected no {key} beside it")
            choice = read(fields[alone], f"{where}.{alone}", entry, problems)
            if problems.count != before or choice is None:
                return None
            return Route(Strategy.SIMULTANEOUS, (), choice)
    strategy = Strategy.SIMULTANEOUS
    if "strategy" in fields:
        raw = _scalar(fields["strategy"])
        try:
            strategy = Strategy(raw or "")
        except ValueError:
            problems.add(fields["strategy"], f"{where}.strategy",
                         f"expected one of {', '.join(s.value for s in Strategy)}")
    ring = DEFAULT_RING_SECONDS
    if "ring_seconds" in fields:
        ring = _ring_seconds(fields["ring_seconds"], f"{where}.ring_seconds", problems) or ring
    confirm = _flag(fields["confirm"], f"{where}.confirm", problems) if "confirm" in fields else None
    targets = _targets(fields.get("targets"), node, f"{where}.targets", strategy, ring, owner, entry, problems,
                       confirm)
    no_answer = _no_answer(fields.get("no_answer"), f"{where}.no_answer", entry, problems)
    if problems.count != before or not targets or no_answer is None:
        return None
    return Route(strategy, targets, no_answer)


def _ring_seconds(node: yaml.Node, key: str, problems: _Problems) -> int | None:
    raw = _scalar(node)
    if raw is None or not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= MAX_RING_SECONDS:
        problems.add(node, key, f"expected whole seconds from 1 to {MAX_RING_SECONDS}")
        return None
    return int(raw)


def _targets(node: yaml.Node | None, parent: yaml.Node, where: str, strategy: Strategy, ring: int, owner: Owner,
             entry: _Entry, problems: _Problems, confirm: bool | None) -> tuple[Target, ...]:
    if node is None:
        problems.add(parent, where, "missing; expected a list of E.164 numbers to ring")
        return ()
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(node, where, "expected a list of at least one E.164 number to ring")
        return ()
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for j, item in enumerate(node.value):
        key, own_ring, own_confirm = f"{where}[{j}]", ring, confirm
        number_node: yaml.Node | None = item
        if isinstance(item, yaml.MappingNode):
            before = problems.count
            fields = _mapping(item, problems, key, allowed={"number", "ring_seconds", "confirm"})
            if "confirm" in fields:
                own_confirm = _flag(fields["confirm"], f"{key}.confirm", problems)
            number_node = fields.get("number")
            if number_node is None and problems.count == before:  # a misspelt key says so already
                problems.add(item, f"{key}.number", f"missing; {_E164_TARGET}")
            key = f"{key}.number"
            if "ring_seconds" in fields:
                if strategy is Strategy.SIMULTANEOUS:
                    problems.add(fields["ring_seconds"], f"{where}[{j}].ring_seconds",
                                 "a simultaneous route rings every target for the route's ring_seconds; "
                                 "a target's own ring_seconds applies only to strategy: sequential")
                else:
                    own_ring = _ring_seconds(fields["ring_seconds"], f"{where}[{j}].ring_seconds", problems) or ring
        elif not isinstance(item, yaml.ScalarNode):
            problems.add(item, key, f"{_E164_TARGET}, or a mapping with number, ring_seconds and confirm")
            continue
        if number_node is None:
            continue
        target = _target(number_node, key, own_ring, owner, problems)
        if target is None:
            continue
        if target.e164 in seen:
            problems.add(number_node, key, f"{target.e164} is already {where}[{seen[target.e164]}]; "
                                           "expected each target once")
            continue
        seen[target.e164] = j
        entry.targets.append(_Mention(number_node, key, target.e164))
        targets.append(dataclasses.replace(target, confirm=own_confirm))
    return tuple(targets)


def _target(node: yaml.Node, key: str, ring: int, owner: Owner, problems: _Problems) -> Target | None:
    raw = _scalar(node)
    if raw is None or not raw.startswith("+"):
        problems.add(node, key, _E164_TARGET)
        return None
    try:
        return check_target(raw, ring, owner)
    except ValueError as exc:
        problems.add(node, key, str(exc))
        return None


def _queue_name(node: yaml.Node, key: str, entry: _Entry, problems: _Problems) -> ToQueue | None:
    name = _scalar(node)
    if name is None or not _QUEUE_NAME.fullmatch(name):
        problems.add(node, key, "expected the name of one of the customer's queues in 'queues'")
        return None
    entry.queues.append(_Mention(node, key, name))
    return ToQueue(name)


_NO_ANSWER_SHAPE = ("expected exactly one of {announcement: SOUND}, {number: \"+31...\"} (another of the "
                    "customer's numbers), {queue: NAME} or {voicemail: true}")


def _no_answer(node: yaml.Node | None, where: str, entry: _Entry, problems: _Problems) -> NoAnswer | None:
    if node is None:
        return Announce(NOBODY_AVAILABLE)
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, _NO_ANSWER_SHAPE)
        return None
    before = problems.count
    fields = _mapping(node, problems, where, allowed={"announcement", "number", "queue", "voicemail"})
    if len(fields) != 1:
        if problems.count == before or fields:  # an unknown key alone is reported already
            problems.add(node, where, _NO_ANSWER_SHAPE)
        return None
    [(key, value)] = fields.items()
    if key == "announcement":
        sound = _sound(value, f"{where}.announcement", problems)
        return Announce(sound) if sound is not None else None
    if key == "voicemail":
        return _voicemail(value, f"{where}.voicemail", entry, problems)
    if key == "queue":
        return _queue_name(value, f"{where}.queue", entry, problems)
    e164 = _forward_number(value, f"{where}.number", problems)
    if e164 is None:
        return None
    entry.forwards.append(_Mention(value, f"{where}.number", e164))
    return ForwardTo(e164)


def _voicemail(node: yaml.Node, key: str, entry: _Entry | None, problems: _Problems) -> ToVoicemail | None:
    """`voicemail: true`; whether the customer has a box is checked once the item's customer is known."""
    if (_scalar(node) or "").lower() != "true":
        problems.add(node, key, "expected true (the caller leaves a message in the customer's voicemail box)")
        return None
    if entry is not None:
        entry.voicemails.append(_Mention(node, key, ""))
    return ToVoicemail()


def _has_box(customer: Customer, node: yaml.Node, key: str, problems: _Problems) -> None:
    if customer.voicemail is None and customer.customer_id not in problems.broken_boxes:
        problems.add(node, key, f"customer {customer.customer_id} has no voicemail box; expected "
                                "customers[].voicemail with the e-mail address(es) messages go to")


def _forward_number(node: yaml.Node, key: str, problems: _Problems) -> str | None:
    raw = _scalar(node)
    e164 = numbering.to_e164(raw) if raw is not None and raw.startswith("+") else None
    if e164 is None:
        problems.add(node, key, "expected another of the customer's numbers in E.164, in quotes, like \"+31201234568\"")
    return e164


# ---- opening hours


_DAY_SPEC = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(mon|tue|wed|thu|fri|sat|sun))?$")
_WINDOW = re.compile(r"^\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*$")
_HOURS_SHAPE = ("expected days (mon, tue, wed, thu, fri, sat, sun, or a range like mon-fri), "
                "each with opening times like \"08:00-18:00\" or a list of them")


def _hours(node: yaml.Node, where: str, zone: ZoneInfo | None, problems: _Problems) -> OpeningHours | None:
    if not isinstance(node, yaml.MappingNode) or not node.value:
        problems.add(node, where, _HOURS_SHAPE)
        return None
    before = problems.count
    week: list[list[tuple[Window, yaml.Node, str]]] = [[] for _ in DAYS]
    seen: set[str] = set()
    for key_node, value_node in node.value:
        spec = _scalar(key_node)
        match = _DAY_SPEC.fullmatch(spec) if spec is not None else None
        if spec is None or match is None:
            problems.add(key_node, f"{where}.{spec}" if spec is not None else where,
                         "expected a day (mon, tue, wed, thu, fri, sat, sun) or a range like mon-fri")
            continue
        key = f"{where}.{spec}"
        if spec in seen:
            problems.add(key_node, key, "given twice; expected each key once")
            continue
        seen.add(spec)
        first, last = DAYS.index(match[1]), DAYS.index(match[2] or match[1])
        if last < first:
            problems.add(key_node, key, "expected a range in week order (the week starts on mon), like mon-fri")
            continue
        if isinstance(value_node, yaml.SequenceNode) and value_node.value:
            items = [(item, f"{key}[{k}]") for k, item in enumerate(value_node.value)]
        else:
            items = [(value_node, key)]
        for item, item_key in items:
            window = _window(item, item_key, problems)
            if window is not None:
                for day in range(first, last + 1):
                    week[day].append((window, item, item_key))
    _overlaps(week, problems)
    if zone is None or problems.count != before:
        return None
    return OpeningHours(zone, tuple(tuple(sorted((w for w, _, _ in day), key=lambda w: w.opens)) for day in week))


def _window(node: yaml.Node, key: str, problems: _Problems) -> Window | None:
    raw = _scalar(node)
    match = _WINDOW.fullmatch(raw) if raw is not None else None
    if raw is None or match is None:
        problems.add(node, key, "expected opening times like \"08:00-18:00\" (24-hour clock), or a list of them")
        return None
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        problems.add(node, key, f"{raw!r}: expected times from 00:00 to 23:59 (24:00 only as an end)")
        return None
    window = Window(h1 * 60 + m1, h2 * 60 + m2)
    if window.closes <= window.opens:
        problems.add(node, key, f"{raw!r} ends before it starts; expected the end after the start "
                                "(a window past midnight is two: \"22:00-24:00\" and \"00:00-02:00\" the next day)")
        return None
    return window


def _overlaps(week: list[list[tuple[Window, yaml.Node, str]]], problems: _Problems) -> None:
    """Report windows that overlap on some day, once per pair of windows, naming the days."""
    clashes: dict[tuple[int, int], tuple[Window, tuple[Window, yaml.Node, str], list[str]]] = {}
    for day, windows in enumerate(week):
        latest: tuple[Window, yaml.Node, str] | None = None  # the window that closes last so far
        for current in sorted(windows, key=lambda w: (w[0].opens, w[0].closes)):
            if latest is not None and current[0].opens < latest[0].closes:
                # Reported at the later of the two in the file: the one most likely just added.
                earlier, later = sorted([latest, current], key=lambda w: w[1].start_mark.index)
                found = clashes.setdefault((id(earlier[1]), id(later[1])), (earlier[0], later, []))
                found[2].append(DAYS[day])
            if latest is None or current[0].closes > latest[0].closes:
                latest = current
    for other, (window, node, key), days in clashes.values():
        problems.add(node, key, f"{window} overlaps {other} on {', '.join(days)}; expected windows that do not overlap")


# ---- recording


def _recording(node: yaml.Node, problems: _Problems) -> Recording:
    where = "recording"
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, "expected a mapping with notice, consent_prompt, consent_seconds and law")
        return Recording(shipped_law())
    fields = _mapping(node, problems, where, allowed={"notice", "consent_prompt", "consent_seconds", "law"})
    notice = _sounds(fields["notice"], f"{where}.notice", problems) if "notice" in fields else DEFAULT_NOTICE
    prompt = (_sounds(fields["consent_prompt"], f"{where}.consent_prompt", problems) if "consent_prompt" in fields
              else DEFAULT_CONSENT_PROMPT)
    seconds = DEFAULT_CONSENT_SECONDS
    if "consent_seconds" in fields:
        raw = _scalar(fields["consent_seconds"])
        if raw is None or not raw.isdigit() or not 1 <= int(raw) <= 30:
            problems.add(fields["consent_seconds"], f"{where}.consent_seconds", "expected whole seconds from 1 to 30")
        else:
            seconds = int(raw)
    law = shipped_law()
    if "law" in fields:
        law = _law(fields["law"], f"{where}.law", law, problems)
    return Recording(law, notice, prompt, seconds)


def _sounds(node: yaml.Node, where: str, problems: _Problems) -> tuple[str, ...]:
    """One sound or a list of them, played one after the other."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    sounds = [_sound(item, where, problems) for item in items]
    if not items:
        problems.add(node, where, "expected a sound name or a list of them")
    return tuple(s for s in sounds if s is not None)


def _law(node: yaml.Node, where: str, law: consent.Jurisdictions, problems: _Problems) -> consent.Jurisdictions:
    """The shipped jurisdiction table with the configuration's overrides: {DE: notify, US-CA: consent}."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, "expected a mapping of country (NL) or US state (US-CA) to a mode: "
                                  f"{', '.join(consent.Mode)}")
        return law
    overrides: dict[str, consent.Mode] = {}
    for key_node, value_node in node.value:
        key, value = str(_scalar(key_node)), str(_scalar(value_node))
        try:
            consent.with_overrides(law, {key: consent.Mode(value)})  # checks the key
            overrides[key] = consent.Mode(value)
        except (ValueError, consent.JurisdictionsError):
            problems.add(key_node, f"{where}.{key}", "expected a country (ISO 3166 code such as DE) or US state "
                                                     f"(such as US-CA) mapped to one of {', '.join(consent.Mode)}")
    return consent.with_overrides(law, overrides)


# ---- queues


_QUEUE_KEYS = {"name", "customer", "agents", "strategy", "ring_seconds", "wrapup_seconds", "max_wait_seconds",
               "position_every_seconds", "overflow", "confirm"}
_OVERFLOW_SHAPE = ("expected exactly one of {announcement: SOUND}, {number: \"+31...\"} (one of the queue's "
                   "customer's numbers), {target: \"+316...\"} (a landline or mobile phone to ring) "
                   "or {voicemail: true}")
# (key, default, lowest, highest); max_wait_seconds has no highest here: the queue core holds the policy.
_QUEUE_SECONDS = (("ring_seconds", 15, 1, 60), ("wrapup_seconds", 5, 0, 600),
                  # A position with the expected wait takes about 10 s to say; 60: never (no caller waits that long).
                  ("max_wait_seconds", 60, 1, None), ("position_every_seconds", 20, 10, 60))


@dataclasses.dataclass(slots=True)
class _QueueEntry:
    """One item of `queues`, as far as it could be read."""

    where: str
    node: yaml.Node
    name_node: yaml.Node | None
    name: str | None
    customer: str | None
    agents: list[_Mention]
    overflow: _Mention | None  # an overflow to a number, checked once every number is known
    queue: Queue | None  # None when the item has a problem of its own
    overflow_target: _Mention | None = None  # an overflow to a phone, checked like the agents

    def phones(self) -> list[_Mention]:
        """The phones the queue rings: its agents, and the overflow's phone."""
        return [*self.agents, *([self.overflow_target] if self.overflow_target else [])]


def _queues(node: yaml.Node, problems: _Problems, customers: Mapping[str, Customer]) -> list[_QueueEntry]:
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, "queues", "expected a list of queues with name, customer and agents")
        return []
    entries: list[_QueueEntry] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(node.value):
        entry = _queue(item, f"queues[{i}]", problems, customers)
        if entry.name is not None:
            if entry.name in seen:
                problems.add(entry.name_node, f"{entry.where}.name",
                             f"queue {entry.name} is already {seen[entry.name]}; expected each name once")
                continue
            seen[entry.name] = entry.where
        entries.append(entry)
    return entries


def _queue(node: yaml.Node, where: str, problems: _Problems, customers: Mapping[str, Customer]) -> _QueueEntry:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, "expected a mapping with name, customer and agents")
        return _QueueEntry(where, node, None, None, None, [], None, None)
    before = problems.count
    fields = _mapping(node, problems, where, allowed=_QUEUE_KEYS)
    name = _scalar(fields.get("name"))
    if name is None or not _QUEUE_NAME.fullmatch(name):
        problems.add(fields.get("name", node), f"{where}.name",
                     f"{'missing; ' if 'name' not in fields else ''}expected a name of a-z, 0-9, '_' and '-', "
                     "like support")
        name = None
    customer = _customer(fields, node, where, customers, problems)
    agents = _agents(fields.get("agents"), node, f"{where}.agents", problems)
    strategy = RingStrategy.RINGALL
    if "strategy" in fields:
        try:
            strategy = RingStrategy(_scalar(fields["strategy"]) or "")
        except ValueError:
            problems.add(fields["strategy"], f"{where}.strategy",
                         f"expected one of {', '.join(s.value for s in RingStrategy)}")
    seconds: dict[str, int] = {}
    for key, default, lowest, highest in _QUEUE_SECONDS:
        seconds[key] = default
        if key in fields:
            raw = _scalar(fields[key])
            if raw is None or not re.fullmatch(r"[0-9]{1,18}", raw) or int(raw) < lowest or (
                    highest is not None and int(raw) > highest):
                problems.add(fields[key], f"{where}.{key}", f"expected whole seconds from {lowest}"
                                                            f"{f' to {highest}' if highest is not None else ''}")
            else:
                seconds[key] = int(raw)
    overflow: Announce | ForwardTo | Target | ToVoicemail | None = Announce(NOBODY_AVAILABLE)
    mention = target_mention = None
    if "overflow" in fields:
        overflow, mention, target_mention = _overflow(fields["overflow"], f"{where}.overflow", problems)
        if isinstance(overflow, ToVoicemail) and customer is not None:
            _has_box(customers[customer], fields["overflow"], f"{where}.overflow.voicemail", problems)

    entry = _QueueEntry(where, node, fields.get("name"), name, customer, agents, mention, None, target_mention)
    try:
        # Built even when other keys have problems: the core's refusal of a wait above the policy is reported too.
        spec = QueueSpec(name or "?", tuple(a.e164 for a in agents), strategy, **seconds)
    except ValueError as exc:
        # The core checks the wait cap first; any other refusal repeats a problem reported above.
        if seconds["max_wait_seconds"] > MAX_WAIT_POLICY_SECONDS:
            problems.add(fields["max_wait_seconds"], f"{where}.max_wait_seconds", str(exc))
        elif problems.count == before:
            problems.add(node, where, str(exc))
        return entry
    confirm = _flag(fields["confirm"], f"{where}.confirm", problems) if "confirm" in fields else None
    if problems.count == before and name is not None and customer is not None and overflow is not None:
        entry.queue = Queue(customer, spec, overflow, confirm)
    return entry


def _agents(node: yaml.Node | None, parent: yaml.Node, where: str, problems: _Problems) -> list[_Mention]:
    if node is None:
        problems.add(parent, where, "missing; expected a list of E.164 numbers to ring")
        return []
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(node, where, "expected a list of at least one E.164 number to ring")
        return []
    agents: list[_Mention] = []
    seen: dict[str, int] = {}
    for j, item in enumerate(node.value):
        key = f"{where}[{j}]"
        target = _target(item, key, 1, ANY_OWNER, problems)
        if target is None:
            continue
        if target.e164 in seen:
            problems.add(item, key, f"{target.e164} is already {where}[{seen[target.e164]}]; expected each agent once")
            continue
        seen[target.e164] = j
        agents.append(_Mention(item, key, target.e164))
    return agents


def _overflow(node: yaml.Node, where: str, problems: _Problems) -> tuple[
        Announce | ForwardTo | Target | ToVoicemail | None, _Mention | None, _Mention | None]:
    """The overflow, and where it names a number (checked across numbers) or a phone (checked like agents)."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, _OVERFLOW_SHAPE)
        return None, None, None
    before = problems.count
    fields = _mapping(node, problems, where, allowed={"announcement", "number", "target", "voicemail"})
    if len(fields) != 1:
        if problems.count == before or fields:  # an unknown key alone is reported already
            problems.add(node, where, _OVERFLOW_SHAPE)
        return None, None, None
    [(key, value)] = fields.items()
    if key == "voicemail":
        return _voicemail(value, f"{where}.voicemail", None, problems), None, None
    if key == "announcement":
        sound = _sound(value, f"{where}.announcement", problems)
        return (Announce(sound) if sound is not None else None), None, None
    if key == "target":
        target = _target(value, f"{where}.target", DEFAULT_RING_SECONDS, ANY_OWNER, problems)
        if target is None:
            return None, None, None
        return target, None, _Mention(value, f"{where}.target", target.e164)
    e164 = _forward_number(value, f"{where}.number", problems)
    if e164 is None:
        return None, None, None
    return ForwardTo(e164), _Mention(value, f"{where}.number", e164), None


# ---- across numbers


def _across_numbers(entries: list[_Entry], queue_entries: list[_QueueEntry], problems: _Problems,
                    confirmation: AnswerConfirmation) -> tuple[dict[str, Number], dict[str, Queue]]:
    """Numbers by E.164 and queues by name, after the checks that need all of them: duplicates, forwards,
    targets, queues and their agents and overflows, loops."""
    first: dict[str, _Entry] = {}
    for entry in entries:
        if entry.e164 is None:
            continue
        if entry.e164 in first:
            problems.add(entry.node, f"numbers[{entry.index}].number",
                         f"{entry.e164} is configured twice")
            entry.number = None
            continue
        first[entry.e164] = entry
    queues = {q.name: q for q in queue_entries if q.name is not None}
    # The forwarding graph: a number's no_answer leads to a number or a queue, a queue's overflow to a number.
    forwards: dict[str, list[_Mention]] = {}
    for entry in entries:
        for target in entry.targets:
            if target.e164 in first:
                problems.add(target.node, target.key,
                             f"{target.e164} is a number fairline serves: ringing it would take the call out to "
                             "the carrier and back in, out of reach of the hop limit; to pass calls on to it use "
                             f"no_answer: {{number: \"{target.e164}\"}}")
        counted = entry.e164 is not None and first[entry.e164] is entry
        for forward in entry.forwards:
            owner = first.get(forward.e164)
            if owner is None:
                problems.add(forward.node, forward.key,
                             f"{forward.e164} is not a number in 'numbers'; expected another of the customer's numbers")
            elif entry.customer is not None and owner.customer is not None and owner.customer != entry.customer:
                problems.add(forward.node, forward.key,
                             f"{forward.e164} belongs to customer {owner.customer}; calls to {entry.customer}'s "
                             f"numbers can only be forwarded to another of {entry.customer}'s numbers")
            elif counted:
                forwards.setdefault(str(entry.e164), []).append(forward)
        for mention in entry.queues:
            queue = queues.get(mention.e164)
            if queue is None:
                problems.add(mention.node, mention.key, f"{mention.e164} is not a queue in 'queues'; expected "
                                                        "the name of one of the customer's queues")
            elif entry.customer is not None and queue.customer is not None and queue.customer != entry.customer:
                problems.add(mention.node, mention.key,
                             f"queue {mention.e164} belongs to customer {queue.customer}; calls to "
                             f"{entry.customer}'s numbers can only wait in {entry.customer}'s queues")
            elif counted:
                _agents_abroad(entry, queue, problems)
                forwards.setdefault(str(entry.e164), []).append(_Mention(mention.node, mention.key,
                                                                         _queue_node(mention.e164)))
    for queue in queue_entries:
        for agent in queue.phones():
            if agent.e164 in first:
                problems.add(agent.node, agent.key,
                             f"{agent.e164} is a number fairline serves: ringing it would take the call out to "
                             "the carrier and back in; expected an agent's landline or mobile phone"
                             f"{' (or overflow: {number: ...} to go on with its route)' if agent is queue.overflow_target else ''}")
        if queue.overflow is None:
            continue
        owner = first.get(queue.overflow.e164)
        if owner is None:
            problems.add(queue.overflow.node, queue.overflow.key, f"{queue.overflow.e164} is not a number in "
                                                                  "'numbers'; expected one of the customer's numbers")
        elif queue.customer is not None and owner.customer is not None and owner.customer != queue.customer:
            problems.add(queue.overflow.node, queue.overflow.key,
                         f"{queue.overflow.e164} belongs to customer {owner.customer}; queue {queue.name} of "
                         f"{queue.customer} can only overflow to one of {queue.customer}'s numbers")
        elif queue.name is not None:
            forwards.setdefault(_queue_node(queue.name), []).append(queue.overflow)
    # A loop is spelled out from the number first in the file; every loop passes through a number.
    order = {e164: entry.index for e164, entry in first.items()}
    _loops(forwards, lambda node: order.get(node, len(order)), problems)
    numbers = {e164: entry.number for e164, entry in first.items() if entry.number is not None}
    built = {name: q.queue for name, q in queues.items() if q.queue is not None}
    if not problems.count:  # a loop, or a number or queue left out for its own problem, would only add noise
        _minute_per_caller(numbers, built, queues, problems, confirmation)
    return numbers, built


def _minute_per_caller(numbers: Mapping[str, Number], built: Mapping[str, Queue],
                       entries: Mapping[str, _QueueEntry], problems: _Problems,
                       confirmation: AnswerConfirmation) -> None:
    """Refuse every path on which a caller could wait in queues for more than the minute (decision 0029),
    at the max_wait_seconds of the queue where it passes."""
    for overrun in wait_budget.overruns(numbers, built, max_hops=MAX_HOPS, confirmation=confirmation):
        entry = entries[overrun.queue]
        node = next((v for k, v in entry.node.value if _scalar(k) == "max_wait_seconds"), entry.node)
        cap = built[overrun.queue].spec.max_wait_seconds
        fix = (f"lower this queue's max_wait_seconds to {cap - overrun.over}, or shorten the way to it"
               if cap > overrun.over else "shorten the way to this queue (caps of the queues before it, the ringing "
                                          "between them, or an overflow that does not lead here)")
        problems.add(node, f"{entry.where}.max_wait_seconds",
                     f"a caller of {overrun.path[0].what} can wait in queues for {overrun.seconds} s on "
                     f"{overrun}; expected at most {wait_budget.TOTAL_WAIT_SECONDS} s in total from the first "
                     f"queue on (one minute per caller, ringing before the first queue not counted): {fix}")


def _queue_node(name: str) -> str:
    """A queue in the forwarding graph and in loop messages (numbers there start with '+')."""
    return f"queue {name}"


def _agents_abroad(entry: _Entry, queue: _QueueEntry, problems: _Problems) -> None:
    """A queue's agents are rung for the numbers that send calls to it: in their country, like their targets."""
    phone = numbering.phone(entry.e164) if entry.e164 is not None else None
    if phone is None or entry.international:
        return
    for agent in queue.phones():
        agent_phone = numbering.phone(agent.e164)
        region = agent_phone.region if agent_phone is not None else None
        if region != phone.region:
            problems.add(agent.node, agent.key,
                         f"{agent.e164} is in {region or 'no country'}, {phone.e164} (which sends calls to queue "
                         f"{queue.name}) in {phone.region}; expected agents and overflow phones in the country of "
                         "every number that uses the queue, or international_forwarding: true on that number")


def _loops(forwards: dict[str, list[_Mention]], order: Callable[[str], int], problems: _Problems) -> None:
    """Refuse every cycle of forwards (A -> B -> A, A -> queue q -> A), spelled out from the node first in `order`."""
    on_path: dict[str, int] = {}  # number -> its place on the current path
    done: set[str] = set()
    reported: set[tuple[str, ...]] = set()
    for start in forwards:
        if start in done:
            continue
        path = [start]
        on_path[start] = 0
        stack = [iter(forwards.get(start, ()))]
        while stack:
            mention = next(stack[-1], None)
            if mention is None:
                done.add(path[-1])
                del on_path[path.pop()]
                stack.pop()
                continue
            if mention.e164 in on_path:
                cycle = path[on_path[mention.e164]:]
                at = min(range(len(cycle)), key=lambda k: order(cycle[k]))
                cycle = cycle[at:] + cycle[:at]
                if tuple(cycle) not in reported:
                    reported.add(tuple(cycle))
                    closing = cycle[1] if len(cycle) > 1 else cycle[0]
                    edge = next(m for m in forwards[cycle[0]] if m.e164 == closing)
                    problems.add(edge.node, edge.key,
                                 f"forwarding loop {' -> '.join([*cycle, cycle[0]])}: a call nobody answers would go "
                                 "round until the hop limit; expected a route that ends in an announcement")
            elif mention.e164 not in done:
                on_path[mention.e164] = len(path)
                path.append(mention.e164)
                stack.append(iter(forwards.get(mention.e164, ())))


# ---- closed days (decision 0030)


_CLOSED_KEYS = {"public_holidays", "dates", "route", "announcement"}
_CLOSED_SHAPE = ("expected a mapping with public_holidays (true, or a subdivision such as BY) and/or dates, "
                 "and optionally route or announcement for those days")
_DATE_RANGE = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:/([0-9]{4}-[0-9]{2}-[0-9]{2}))?$")
_DATE_EXPECTED = "expected a date like 2026-12-24, or a range like 2026-12-24/2026-12-31 (both days closed)"


def _closed(node: yaml.Node, where: str, owner: Owner, entry: _Entry, has_hours: bool,
            problems: _Problems) -> Closures | None:
    """`closed:` of a number: the whole days it is closed, on its own clock, and what callers get then."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, where, _CLOSED_SHAPE)
        return None
    before = problems.count
    fields = _mapping(node, problems, where, allowed=_CLOSED_KEYS)
    if not has_hours:
        problems.add(node, where, "closed days are part of opening hours; expected hours and outside_hours beside it")
    calendar = None
    if "public_holidays" in fields:
        calendar = _public_holidays(fields["public_holidays"], f"{where}.public_holidays", owner.region, problems)
    dates = _closed_dates(fields["dates"], f"{where}.dates", problems) if "dates" in fields else ()
    if "public_holidays" not in fields and "dates" not in fields:
        problems.add(node, where, f"missing public_holidays or dates; {_CLOSED_SHAPE}")
    route = announcement = None
    if "route" in fields and "announcement" in fields:
        problems.add(fields["announcement"], f"{where}.announcement",
                     "on closed days callers get a route or an announcement, not both; remove one")
    if "route" in fields:
        route = _route(fields["route"], f"{where}.route", owner, entry, problems)
    if "announcement" in fields:
        announcement = _sound(fields["announcement"], f"{where}.announcement", problems)
    if problems.count != before or owner.e164 is None or (calendar is None and not dates):
        return None
    return Closures(number_zone(owner.e164), calendar, dates, route, announcement)


def _public_holidays(node: yaml.Node, key: str, country: str | None, problems: _Problems) -> Holidays | None:
    """true: the country's national holidays; a subdivision code: those and the subdivision's; false: none."""
    raw = _scalar(node)
    if raw is not None and raw.lower() == "false":
        return None
    if raw is None or not raw.strip():
        problems.add(node, key, "expected true, false, or a subdivision of the number's country such as BY")
        return None
    if country is None:  # the number itself is wrong, and says so
        return None
    try:
        return Holidays(country, None if raw.lower() == "true" else raw)
    except ValueError as exc:
        problems.add(node, key, str(exc))
        return None


def _closed_dates(node: yaml.Node, key: str, problems: _Problems) -> tuple[DateRange, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(node, key, f"expected a list of dates; each {_DATE_EXPECTED}")
        return ()
    if len(node.value) > MAX_CLOSED_DATES:
        problems.add(node, key, f"{len(node.value)} dates; expected at most {MAX_CLOSED_DATES} (use ranges)")
        return ()
    ranges: list[DateRange] = []
    for k, item in enumerate(node.value):
        raw = _scalar(item)
        match = _DATE_RANGE.fullmatch(raw.strip()) if raw is not None else None
        try:
            if match is None:
                raise ValueError(_DATE_EXPECTED)
            first = date.fromisoformat(match[1])
            ranges.append(DateRange(first, date.fromisoformat(match[2]) if match[2] else first))
        except ValueError as exc:
            reason = str(exc) if match is not None and "ends before" in str(exc) else _DATE_EXPECTED
            problems.add(item, f"{key}[{k}]", f"{raw!r}: {reason}" if raw is not None else reason)
    return tuple(ranges)


# ---- blocked callers (decision 0030)


_BLOCKED_WITH = "expected busy, or {announcement: SOUND} (played as early media, then busy)"


def _blocking(fields: Mapping[str, yaml.Node], where: str,
              problems: _Problems) -> tuple[blocking.Blocklist | None, blocking.Refusal | None]:
    """`blocked_callers` and `blocked_with` of a customer or a number."""
    blocked = _blocked_callers(fields["blocked_callers"], f"{where}.blocked_callers",
                               problems) if "blocked_callers" in fields else None
    refusal = _blocked_with(fields["blocked_with"], f"{where}.blocked_with",
                            problems) if "blocked_with" in fields else None
    return blocked, refusal


def _blocked_callers(node: yaml.Node, key: str, problems: _Problems) -> blocking.Blocklist | None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(node, key, f"expected a list of callers; each {blocking.EXPECTED}")
        return None
    if len(node.value) > blocking.MAX_BLOCKED:
        problems.add(node, key, f"{len(node.value)} callers; expected at most {blocking.MAX_BLOCKED} "
                                "(a prefix blocks a whole range)")
        return None
    before = problems.count
    seen: dict[str, int] = {}
    for k, item in enumerate(node.value):
        raw = _scalar(item)
        try:
            entry = blocking.check_entry(raw if raw is not None else "")
        except ValueError:
            problems.add(item, f"{key}[{k}]", f"{raw!r}: {blocking.EXPECTED}" if raw is not None else blocking.EXPECTED)
            continue
        if entry in seen:
            problems.add(item, f"{key}[{k}]", f"{entry} is already {key}[{seen[entry]}]; expected each caller once")
            continue
        seen[entry] = k
    return blocking.Blocklist.of(tuple(seen)) if problems.count == before else None


def _blocked_with(node: yaml.Node, key: str, problems: _Problems) -> blocking.Refusal | None:
    if _scalar(node) == "busy":
        return blocking.BUSY
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, key, _BLOCKED_WITH)
        return None
    before = problems.count
    fields = _mapping(node, problems, key, allowed={"announcement"})
    if "announcement" not in fields:
        if problems.count == before:
            problems.add(node, key, _BLOCKED_WITH)
        return None
    sound = _sound(fields["announcement"], f"{key}.announcement", problems)
    return blocking.Refusal(sound) if sound is not None else None
