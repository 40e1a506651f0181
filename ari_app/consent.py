"""Whether a call may be recorded, and how: the strictest rule of the places the call touches (issue 6).

A jurisdiction table, shipped as data (`jurisdictions.yaml`, each entry with its legal source), gives every
country (and, where the law differs by state, every US state) a `Mode`. The mode for a call is the
strictest over its parties: the dialled fairline number, the caller and the answering target. A caller id
that is withheld or not an E.164 number could be from anywhere, so it counts as the strictest mode found
anywhere in the table. The `Decision` keeps, for each party, which rule applied and why, so the recording's
evidence row can say under which law it was made.

Pure: no I/O except `load_jurisdictions`, which the composition root calls once; the table is a frozen
value passed in. Decision 0013.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final

import phonenumbers
import yaml
from phonenumbers import geocoder

from ari_app.errors import ConfigError
from ari_app.core.events import WITHHELD

DATA_FILE: Final = "jurisdictions.yaml"  # shipped inside the ari_app package


class Mode(enum.StrEnum):
    """What the law asks before a call is recorded; members are ordered from least to most strict."""

    ONE_PARTY = "one_party"  # a participant may record without telling anyone
    NOTIFY = "notify"  # the caller hears a recording notice before the call is connected
    CONSENT = "consent"  # the caller must agree; silence or refusal means no recording
    FORBIDDEN = "forbidden"  # never recorded

    @property
    def strictness(self) -> int:
        """0 for one_party up to 3 for forbidden."""
        return _STRICTNESS[self]

    # A StrEnum would otherwise compare alphabetically ("consent" < "notify"): compare by strictness.
    def __lt__(self, other: object) -> bool:
        return self.strictness < other.strictness if isinstance(other, Mode) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.strictness <= other.strictness if isinstance(other, Mode) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.strictness > other.strictness if isinstance(other, Mode) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.strictness >= other.strictness if isinstance(other, Mode) else NotImplemented


_STRICTNESS: Final = {mode: rank for rank, mode in enumerate(Mode)}


def strictest(mode: Mode, *modes: Mode) -> Mode:
    """The strictest of the modes given (at least one)."""
    return max((mode, *modes), key=_STRICTNESS.__getitem__)


class Party(enum.StrEnum):
    """Whose place a rule was taken from."""

    NUMBER = "number"  # the fairline number dialled
    CALLER = "caller"
    TARGET = "target"  # the phone that answered


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One entry of the table: the mode and the law it comes from."""

    mode: Mode
    law: str  # the law and article, or what else decided (an operator's override)
    url: str | None  # where the law can be read; None for overrides and the unknown-country rule
    note: str

    def cite(self) -> str:
        """The law and where to read it, for evidence rows."""
        return f"{self.law} <{self.url}>" if self.url else self.law


@dataclasses.dataclass(frozen=True, slots=True)
class Country:
    """A country's rule, and its regions' where the law differs by region (US states)."""

    rule: Rule  # the country's, and that of every region not listed
    regions: Mapping[str, Rule] = dataclasses.field(default_factory=lambda: MappingProxyType({}))


@dataclasses.dataclass(frozen=True, slots=True)
class Jurisdictions:
    """The whole table: countries by ISO 3166-1 alpha-2 code, and the rule for countries not listed."""

    countries: Mapping[str, Country]
    unknown: Rule

    def strictest_anywhere(self) -> tuple[Mode, tuple[str, ...]]:
        """The strictest mode anywhere in the table and where it applies ("DE", "US-CA", "unlisted countries")."""
        places = [("unlisted countries", self.unknown.mode)]
        for code, country in self.countries.items():
            places.append((code, country.rule.mode))
            places.extend((f"{code}-{region}", rule.mode) for region, rule in country.regions.items())
        mode = strictest(*(mode for _, mode in places))
        return mode, tuple(where for where, found in places if found == mode)


@dataclasses.dataclass(frozen=True, slots=True)
class Basis:
    """Why one party's place asks for its mode."""

    party: Party
    jurisdiction: str | None  # "NL", "US-CA", "US"; None when the party's number told no place
    mode: Mode
    reason: str  # what applied and the law behind it, readable in an evidence row


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The mode for a call and, for every party considered, why."""

    mode: Mode
    bases: tuple[Basis, ...]  # number, caller, then target when it was known

    @property
    def imposed_by(self) -> tuple[Basis, ...]:
        """The parties whose place asks for the decided mode (there can be several)."""
        return tuple(basis for basis in self.bases if basis.mode == self.mode)

    @property
    def evidence(self) -> str:
        """One line for the recording's evidence row: the mode and the rules that imposed it."""
        why = "; ".join(f"{b.party} {b.jurisdiction or 'unknown'}: {b.reason}" for b in self.imposed_by)
        return f"{self.mode}: {why}"


class NotE164(ValueError):
    """A phone number that is not a valid international number in E.164 form (+ and up to 15 digits)."""


class JurisdictionsError(ConfigError):
    """The jurisdiction table or an override of it is wrong; each problem names the file or key."""


# Where phonenumbers' geocoder tells a region, its English descriptions are either a state's name or
# "City, ST". Only the US is told apart by region; ISO 3166-2:US codes (50 states and DC).
_US_STATES: Final = MappingProxyType({
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "Washington State": "WA",
    "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "District of Columbia": "DC", "Washington D.C.": "DC", "Washington, D.C.": "DC",
})
REGIONS: Final = MappingProxyType({"US": frozenset(_US_STATES.values())})  # countries told apart by region

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_COUNTRY_KEY = re.compile(r"[A-Z]{2}")
_REGION_KEY = re.compile(r"([A-Z]{2})-([A-Z0-9]{1,3})")
_URL = re.compile(r"https?://[^\s/]+\.[^\s/]+(/\S*)?")


def region_of(e164: str) -> tuple[str, str | None]:
    """The country (ISO 3166-1 alpha-2, or "001" for non-geographic numbers such as +800) and, in a
    country told apart by region, the region the number's area code belongs to; None where it tells none.

    Raises NotE164 for anything but a valid E.164 number.
    """
    if not _E164.fullmatch(e164):
        raise NotE164(f"not an E.164 number: {e164[:32]!r}")
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise NotE164(f"not an E.164 number: {e164!r} ({exc})") from None
    country = phonenumbers.region_code_for_number(parsed) if phonenumbers.is_valid_number(parsed) else None
    if country is None:
        raise NotE164(f"not a valid number: {e164!r}")
    if country not in REGIONS:
        return country, None
    described = geocoder.description_for_number(parsed, "en")  # "Texas", "San Francisco, CA" or ""
    if described in _US_STATES:
        return country, _US_STATES[described]
    last = described.rsplit(", ", 1)[-1]
    return country, last if last in REGIONS[country] else _US_STATES.get(last)


def mode_for_call(table: Jurisdictions, number: str, caller: str | None, target: str | None) -> Decision:
    """The strictest mode of the call's parties, with each party's basis.

    `number` is the fairline number dialled, `caller` the caller id (None when withheld), `target` the
    phone that answered, or None before anyone did. A target not yet known is not counted: decide again
    (and keep the stricter) when the parties change, as wazo-calld restarts its notice when one joins.
    """
    bases = [_basis(table, Party.NUMBER, number), _basis(table, Party.CALLER, caller)]
    if target is not None:
        bases.append(_basis(table, Party.TARGET, target))
    return Decision(strictest(*(basis.mode for basis in bases)), tuple(bases))


def _basis(table: Jurisdictions, party: Party, e164: str | None) -> Basis:
    if e164 is None or e164.strip().lower() in WITHHELD:
        return _anywhere(table, party, "caller id withheld" if party is Party.CALLER else f"{party} not known")
    try:
        country, region = region_of(e164)
    except NotE164:
        return _anywhere(table, party, f"{party} {e164[:32]!r} is not a valid E.164 number")
    entry = table.countries.get(country)
    if entry is None:
        return Basis(party, country, table.unknown.mode, f"{country} is not in the table, unlisted countries get "
                                                         f"{table.unknown.mode}")
    if region is not None:
        rule = entry.regions.get(region, entry.rule)
        where = f"{country}-{region}"
        return Basis(party, where, rule.mode, rule.cite() if region in entry.regions else
                     f"{where} has no rule of its own: {rule.cite()}")
    if not entry.regions:
        return Basis(party, country, entry.rule.mode, entry.rule.cite())
    # The number does not tell its region (toll-free, non-geographic): the strictest of the country's.
    where, rule = f"{country}", entry.rule
    for code, regional in entry.regions.items():
        if regional.mode > rule.mode:
            where, rule = f"{country}-{code}", regional
    return Basis(party, country, rule.mode, f"region not told by the number, strictest of {country} ({where}): "
                                            f"{rule.cite()}")


def _anywhere(table: Jurisdictions, party: Party, what: str) -> Basis:
    mode, places = table.strictest_anywhere()
    shown = ", ".join(places[:6]) + (", ..." if len(places) > 6 else "")
    return Basis(party, None, mode, f"{what}: could be from anywhere, so the strictest mode in the table ({shown})")


def with_overrides(table: Jurisdictions, overrides: Mapping[str, Mode]) -> Jurisdictions:
    """The table with the operator's overrides applied; keys are countries ("DE") or US states ("US-CA").

    A country's override sets the mode for the whole country, its regions included; region overrides are
    applied after, so {"US": notify, "US-CA": consent} means what it says. Raises JurisdictionsError
    naming every key or mode that is wrong.
    """
    problems: list[str] = []
    countries = dict(table.countries)
    regional: list[tuple[str, str, Mode]] = []
    for key, value in overrides.items():
        try:
            mode = Mode(value)
        except ValueError:
            problems.append(f"recording override {key!r}: expected one of {_modes()}, got {value!r}")
            continue
        if _COUNTRY_KEY.fullmatch(key) and key in phonenumbers.SUPPORTED_REGIONS:
            old = countries.get(key)
            was = f"the table says {old.rule.mode} ({old.rule.law})" if old else "not in the table"
            countries[key] = Country(Rule(mode, "configuration override", None, was))
        elif (match := _REGION_KEY.fullmatch(key)) and match[2] in REGIONS.get(match[1], ()):
            regional.append((match[1], match[2], mode))
        else:
            problems.append(f"recording override {key!r}: expected a country code such as 'NL' (ISO 3166-1 "
                            f"alpha-2) or a US state such as 'US-CA'")
    if problems:
        raise JurisdictionsError(problems)
    for code, region, mode in regional:
        country = countries.get(code) or Country(table.unknown)
        old_rule = country.regions.get(region)
        was = f"the table says {old_rule.mode} ({old_rule.law})" if old_rule else f"{code}'s rule: {country.rule.mode}"
        regions = {**country.regions, region: Rule(mode, "configuration override", None, was)}
        countries[code] = Country(country.rule, MappingProxyType(regions))
    return Jurisdictions(MappingProxyType(countries), table.unknown)


def _modes() -> str:
    return ", ".join(Mode)


# --- loading the shipped table -----------------------------------------------------------------------


def load_jurisdictions(path: Path | None = None) -> Jurisdictions:
    """Read and check a jurisdiction table (the one shipped with fairline by default).

    Raises JurisdictionsError listing every problem, each naming the file, line, key and what was expected.
    """
    source = resources.files("ari_app").joinpath(DATA_FILE)
    where = str(path) if path is not None else str(source)
    try:
        text = path.read_text(encoding="utf-8") if path is not None else source.read_text(encoding="utf-8")
    except OSError as exc:
        raise JurisdictionsError([f"{where}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise JurisdictionsError([f"{where}: not UTF-8 text (byte {exc.start}); expected a UTF-8 YAML file"]) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise JurisdictionsError([f"{where}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from exc
    reader = _Reader(where)
    table = reader.table(root)
    if reader.problems or table is None:
        raise JurisdictionsError(reader.problems or [f"{where}: expected a jurisdiction table"])
    return table


class _Reader:
    """Turns the composed YAML into a Jurisdictions, collecting every problem with its line."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[str] = []

    def add(self, node: yaml.Node | None, key: str, expected: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.problems.append(f"{self.where}{line}: {key}: {expected}")

    def mapping(self, node: yaml.Node | None, key: str, allowed: tuple[str, ...],
                required: tuple[str, ...]) -> dict[str, yaml.Node] | None:
        """A mapping's values by key; reports unknown, duplicate and missing keys."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, key, f"expected a mapping with {', '.join(required)}")
            return None
        found: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(name, str) or name not in allowed:
                self.add(key_node, f"{key}.{name}", f"unknown key; expected {', '.join(allowed)}")
            elif name in found:
                self.add(key_node, f"{key}.{name}", "given twice; expected each key once")
            else:
                found[name] = value
        for name in required:
            if name not in found:
                self.add(node, f"{key}.{name}", "missing")
        return found

    def entries(self, node: yaml.Node, key: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """A mapping with free keys (country or region codes): (name, key node, value node), each name once."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, key, "expected a mapping of codes to entries")
            return []
        found: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if any(name == seen for seen, _, _ in found):
                self.add(key_node, f"{key}.{name}", "given twice; expected each code once")
            else:
                found.append((name, key_node, value))
        return found

    def text(self, node: yaml.Node | None, key: str, expected: str = "expected text") -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str" and node.value.strip():
            return str(node.value).strip()
        self.add(node, key, expected)
        return None

    def table(self, root: yaml.Node | None) -> Jurisdictions | None:
        top = self.mapping(root, "(top level)", ("unknown", "countries"), ("unknown", "countries"))
        if top is None:
            return None
        unknown = self.unknown(top.get("unknown"))
        countries: dict[str, Country] = {}
        body = top.get("countries")
        if body is not None:
            entries = self.entries(body, "countries")
            for code, key_node, node in entries:
                if not _COUNTRY_KEY.fullmatch(code) or code not in phonenumbers.SUPPORTED_REGIONS:
                    self.add(key_node, f"countries.{code}", "expected an ISO 3166-1 alpha-2 country code such as NL")
                    continue
                country = self.country(node, code)
                if country is not None:
                    countries[code] = country
            if isinstance(body, yaml.MappingNode) and not entries:
                self.add(body, "countries", "expected at least one country")
        if unknown is None:
            return None
        return Jurisdictions(MappingProxyType(countries), unknown)

    def unknown(self, node: yaml.Node | None) -> Rule | None:
        fields = self.mapping(node, "unknown", ("mode", "note"), ("mode", "note"))
        if fields is None or "mode" not in fields:
            return None
        mode = self.mode(fields["mode"], "unknown.mode")
        note = self.text(fields.get("note"), "unknown.note", "expected why unlisted countries get this mode")
        if mode is not None and mode < Mode.CONSENT:
            self.add(fields["mode"], "unknown.mode", f"expected consent or forbidden (a country nobody looked up "
                                                     f"must not be recorded without agreement), got {mode}")
            return None
        if mode is None or note is None:
            return None
        return Rule(mode, "no entry in the table", None, note)

    def country(self, node: yaml.Node, code: str) -> Country | None:
        allowed = ("mode", "source", "note", "regions")
        fields = self.mapping(node, f"countries.{code}", allowed, ("mode", "source", "note"))
        if fields is None:
            return None
        rule = self.rule(fields, f"countries.{code}")
        regions: dict[str, Rule] = {}
        if "regions" in fields:
            known = REGIONS.get(code, frozenset())
            if not known:
                self.add(fields["regions"], f"countries.{code}.regions",
                         f"regions are only told apart for {', '.join(REGIONS)}; expected no regions for {code}")
            for region, key_node, region_node in self.entries(fields["regions"], f"countries.{code}.regions") \
                    if known else ():
                key = f"countries.{code}.regions.{region}"
                if region not in known:
                    self.add(key_node, key, f"expected an ISO 3166-2 subdivision of {code} without the "
                                            f"prefix, such as CA for {code}-CA")
                    continue
                region_fields = self.mapping(region_node, key, ("mode", "source", "note"), ("mode", "source", "note"))
                region_rule = self.rule(region_fields, key) if region_fields is not None else None
                if region_rule is not None:
                    regions[region] = region_rule
        if rule is None:
            return None
        return Country(rule, MappingProxyType(regions))

    def rule(self, fields: dict[str, yaml.Node], key: str) -> Rule | None:
        mode = self.mode(fields["mode"], f"{key}.mode") if "mode" in fields else None
        note = self.text(fields.get("note"), f"{key}.note", "expected a short note on how the law was read") \
            if "note" in fields else None
        law = url = None
        if "source" in fields:
            source = self.mapping(fields["source"], f"{key}.source", ("law", "url"), ("law", "url"))
            if source is not None:
                law = self.text(source.get("law"), f"{key}.source.law", "expected the law and article") \
                    if "law" in source else None
                url = self.text(source.get("url"), f"{key}.source.url", "expected a URL") if "url" in source else None
                if url is not None and not _URL.fullmatch(url):
                    self.add(source["url"], f"{key}.source.url", f"expected an http(s) URL, got {url!r}")
                    url = None
        if mode is None or note is None or law is None or url is None:
            return None
        return Rule(mode, law, url, note)

    def mode(self, node: yaml.Node, key: str) -> Mode | None:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, str) and value in _STRICTNESS:
            return Mode(value)
        self.add(node, key, f"expected one of {_modes()}, got {value if value is not None else 'a collection'!r}")
        return None
