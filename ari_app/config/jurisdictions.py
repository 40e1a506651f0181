"""The jurisdiction table shipped with fairline (`jurisdictions.yaml`): read and checked into consent's model.

Every problem names the file, the line, the key and what was expected. The rules that use the table
(ari_app.core.consent) read no file: the composition root passes them `shipped_law()`.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final

import yaml

from ari_app.core.consent import Country, Jurisdictions, JurisdictionsError, Mode, Rule, modes
from rating.core.numbering import REGIONS, is_country

DATA_FILE: Final = "jurisdictions.yaml"  # shipped inside the ari_app.config package

_MODES: Final = frozenset(mode.value for mode in Mode)
_URL = re.compile(r"https?://[^\s/]+\.[^\s/]+(/\S*)?")


@functools.cache
def shipped_law() -> Jurisdictions:
    """The jurisdiction table shipped with fairline, read once."""
    return load_jurisdictions()


def load_jurisdictions(path: Path | None = None) -> Jurisdictions:
    """Read and check a jurisdiction table (the one shipped with fairline by default).

    Raises JurisdictionsError listing every problem, each naming the file, line, key and what was expected.
    """
    source = resources.files("ari_app.config").joinpath(DATA_FILE)
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
                if not is_country(code):
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
        if isinstance(value, str) and value in _MODES:
            return Mode(value)
        self.add(node, key, f"expected one of {modes()}, got {value if value is not None else 'a collection'!r}")
        return None
