"""Whether a call may be recorded, and how: the strictest rule of the places the call touches (issue 6).

A jurisdiction table, shipped as data (`jurisdictions.yaml`, each entry with its legal source), gives every
country (and, where the law differs by state, every US state) a `Mode`. The mode for a call is the
strictest over its parties: the dialled fairline number, the caller and the answering target. A caller id
that is withheld or not an E.164 number could be from anywhere, so it counts as the strictest mode found
anywhere in the table. The `Decision` keeps, for each party, which rule applied and why, so the recording's
evidence row can say under which law it was made.

Pure: the table is a frozen value passed in (ari_app.config.jurisdictions reads the shipped one).
Decision 0013.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ari_app.errors import ConfigError
from rating.core.numbering import REGIONS, NotE164, is_country, is_withheld, region_of


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


class JurisdictionsError(ConfigError):
    """The jurisdiction table or an override of it is wrong; each problem names the file or key."""


_REGION_KEY = re.compile(r"([A-Z]{2})-([A-Z0-9]{1,3})")


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
    if e164 is None or is_withheld(e164):
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
            problems.append(f"recording override {key!r}: expected one of {modes()}, got {value!r}")
            continue
        if is_country(key):
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


def modes() -> str:
    """The modes, least strict first, as a problem message lists them."""
    return ", ".join(Mode)
