"""Phone numbers: E.164 parsing, kind of line, country and US state, time zone, withheld caller ids.

The one module that asks phonenumbers about a number; everything else asks here. Callers differ in
what they accept (a dialled DID may lack its '+', a configured number may not; rating wants E.164
exactly), so each rule is its own function, named for what it accepts.

The US state of a number comes from phonenumbers' geocoding data, but only its North American (+1)
English part, loaded on first use (about 60 ms): the whole geocoder holds every country in every
language, 100 MB in each process that imports it (issue 14). `load_us_states` loads it ahead, for
processes that must not pause on their first US call.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberType

__all__ = ["PhoneNumberType", "WITHHELD", "NotE164", "Phone", "Place", "REGIONS", "is_country", "is_withheld",
           "load_us_states", "phone", "place", "region", "region_of", "to_e164"]

# What carriers put in the caller id when the caller withheld it.
WITHHELD: Final = frozenset({"", "anonymous", "restricted", "private", "unavailable", "unknown", "withheld"})


def is_withheld(caller: str) -> bool:
    """Whether a caller id says the caller withheld their number ("Anonymous", " restricted ", "")."""
    return caller.strip().lower() in WITHHELD


class NotE164(ValueError):
    """A phone number that is not a valid international number in E.164 form (+ and up to 15 digits)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Phone:
    """What phonenumbers says about a valid international number."""

    e164: str
    region: str | None  # ISO 3166 country; "001" for non-geographic numbers (+800...), None when unknown
    type: int  # PhoneNumberType: the kind of line (fixed line, mobile, toll-free, premium rate, ...)


# A configuration names each number three or four times (the number, its type, its route's owner) and
# checking a new version reads most of them again: parsing is most of loading's time (issue 16).
@functools.lru_cache(maxsize=1 << 17)
def phone(text: str) -> Phone | None:
    """A number written with its '+' ("+31 20 123 4567" too) when phonenumbers knows its kind of line, or None."""
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    # phonenumbers' is_valid_number is exactly "its type is known"; asking for the type once
    # halves the cost of loading thousands of numbers.
    number_type = phonenumbers.number_type(parsed)
    if number_type == PhoneNumberType.UNKNOWN:
        return None
    return Phone(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        region=phonenumbers.region_code_for_number(parsed),
        type=number_type,
    )


def to_e164(raw: str) -> str | None:
    """E.164 form of a dialled number ("+31201234567", "31201234567"), or None when it is not one."""
    text = raw.strip()
    found = phone(text if text.startswith("+") else "+" + text)
    return found.e164 if found is not None else None


def region(number: str) -> str | None:
    """The region phonenumbers gives a number's country code (None when it knows none); valid or not.

    Raises NotE164 when phonenumbers cannot parse it at all.
    """
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException as exc:
        raise NotE164(str(exc)) from None


@dataclasses.dataclass(frozen=True, slots=True)
class Place:
    """Where a valid E.164 number rings: its country and its time zones (several where it tells none)."""

    region: str
    zones: tuple[str, ...]  # IANA names, sorted; empty when phonenumbers knows none


def place(number: str) -> Place:
    """The country and time zones of a number written in E.164 exactly; ValueError says why not."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as problem:
        raise ValueError(f"expected an E.164 number like +31201234567, got {number!r} ({problem})") from None
    if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != number:
        raise ValueError(f"expected E.164, a plus sign and digits only, like +31201234567; got {number!r}")
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{number} is not a valid number according to phonenumbers")
    # Imported here: the time zone table is only needed where numbers are priced.
    from phonenumbers import timezone as phone_time_zones

    zones = sorted(z for z in phone_time_zones.time_zones_for_number(parsed) if z != phone_time_zones.UNKNOWN_TIMEZONE)
    return Place(str(phonenumbers.region_code_for_number(parsed)), tuple(zones))


_COUNTRY_KEY = re.compile(r"[A-Z]{2}")


def is_country(code: str) -> bool:
    """Whether `code` is an ISO 3166-1 alpha-2 country phonenumbers knows ("NL"; not "nl", "001" or "XX")."""
    return bool(_COUNTRY_KEY.fullmatch(code)) and code in phonenumbers.SUPPORTED_REGIONS


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
    # As phonenumbers' geocoder.description_for_number: only geographic numbers tell a place (a toll-free
    # number gets the country's name, which is no state), and the longest prefix with a description wins.
    if not phonenumbers.is_number_type_geographical(phonenumbers.number_type(parsed), parsed.country_code or 0):
        return country, None
    states, longest = load_us_states()
    digits = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    for length in range(min(longest, len(digits)), 0, -1):
        if digits[:length] in states:
            return country, states[digits[:length]]
    return country, None


@functools.cache
def load_us_states() -> tuple[Mapping[str, str | None], int]:
    """The US state (or None) of every +1 prefix phonenumbers describes in English, and the longest prefix.

    Read from phonenumbers' own geocoding data (an upgrade updates it; no table is kept here), but only the
    files that hold +1 prefixes: the data is split into files sorted by prefix, and importing the
    `phonenumbers.geodata` package would load them all. About 60 ms and 9 MB, once per process.
    """
    spec = importlib.util.find_spec("phonenumbers.geodata")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("phonenumbers.geodata not found")
    folder = Path(next(iter(spec.submodule_search_locations)))
    states: dict[str, str | None] = {}
    for index in range(1000):
        path = folder / f"data{index}.py"
        if not path.is_file():
            break
        data = _geodata_file(path, index)
        for prefix, names in data.items():
            if prefix.startswith("1") and "en" in names:
                states[prefix] = _us_state(names["en"])
        if any(not prefix.startswith("1") for prefix in data):
            break  # past the last +1 prefix
    if not states:
        raise ImportError(f"no +1 prefixes in phonenumbers' geocoding data under {folder}")
    return MappingProxyType(states), max(map(len, states))


def _geodata_file(path: Path, index: int) -> Mapping[str, Mapping[str, str]]:
    """One of phonenumbers' geodata/dataN.py modules, executed apart (not kept in sys.modules)."""
    spec = importlib.util.spec_from_file_location(f"phonenumbers.geodata.data{index}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data: Mapping[str, Mapping[str, str]] = module.data
    return data


def _us_state(described: str) -> str | None:
    """The state of a description: "Texas", "San Francisco, CA"; None for anything else."""
    if described in _US_STATES:
        return _US_STATES[described]
    last = described.rsplit(", ", 1)[-1]
    return last if last in REGIONS["US"] else _US_STATES.get(last)
