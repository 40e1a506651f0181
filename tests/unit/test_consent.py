"""The recording mode of a call (issue 6, decision 0013): the strictest rule of its parties' places."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA

from ari_app.config.jurisdictions import DATA_FILE, load_jurisdictions
from ari_app.core.consent import (
    Decision,
    Jurisdictions,
    JurisdictionsError,
    Mode,
    Party,
    mode_for_call,
    strictest,
    with_overrides,
)
from rating.core.numbering import NotE164, region_of

TABLE = load_jurisdictions()

# One valid number per country in the table; US: a Texas number, which follows the country's rule.
EXAMPLE = {
    "NL": "+31201234567", "BE": "+3225551234", "DE": "+4930123456", "FR": "+33123456789",
    "GB": "+442071234567", "PL": "+48221234567", "ES": "+34912345678", "IT": "+390612345678",
    "CA": "+14165550123", "US": "+12145550123",
}
CALIFORNIA = "+14155550123"  # San Francisco, CA
TEXAS = EXAMPLE["US"]  # Dallas, TX
US_TOLLFREE = "+18005550123"  # tells no state
AUSTRIA = "+43123456789"  # not in the table

# What the shipped table is expected to say; a change to the data must be a change here too.
EXPECTED_COUNTRY_MODES = {
    "NL": Mode.ONE_PARTY, "BE": Mode.CONSENT, "DE": Mode.CONSENT, "FR": Mode.CONSENT, "GB": Mode.NOTIFY,
    "PL": Mode.NOTIFY, "ES": Mode.NOTIFY, "IT": Mode.NOTIFY, "CA": Mode.NOTIFY, "US": Mode.ONE_PARTY,
}
ALL_PARTY_STATES = ("CA", "CT", "DE", "FL", "IL", "MA", "MD", "MI", "MT", "NH", "NV", "PA", "VT", "WA")


def country_mode(code: str) -> Mode:
    return TABLE.countries[code].rule.mode


class TestMode:
    def test_modes_are_ordered_by_strictness_not_alphabetically(self) -> None:
        """`consent` sorts before `notify` as text; as a mode it is stricter."""
        assert sorted([Mode.FORBIDDEN, Mode.CONSENT, Mode.ONE_PARTY, Mode.NOTIFY]) == [
            Mode.ONE_PARTY, Mode.NOTIFY, Mode.CONSENT, Mode.FORBIDDEN]
        assert Mode.NOTIFY < Mode.CONSENT and Mode.CONSENT > Mode.NOTIFY
        assert Mode.CONSENT <= Mode.CONSENT and Mode.FORBIDDEN >= Mode.CONSENT
        assert not Mode.FORBIDDEN < Mode.ONE_PARTY

    def test_strictest_takes_the_strictest_whatever_the_order(self) -> None:
        for modes in itertools.permutations(Mode):
            assert strictest(*modes) is Mode.FORBIDDEN
        assert strictest(Mode.NOTIFY, Mode.ONE_PARTY) is Mode.NOTIFY
        assert strictest(Mode.CONSENT) is Mode.CONSENT

    def test_modes_read_as_their_values(self) -> None:
        assert Mode("one_party") is Mode.ONE_PARTY and str(Mode.CONSENT) == "consent"


class TestShippedTable:
    def test_covers_the_required_countries_with_the_expected_modes(self) -> None:
        assert {code: country.rule.mode for code, country in TABLE.countries.items()} == EXPECTED_COUNTRY_MODES

    def test_every_entry_has_a_mode_a_law_a_url_and_a_note(self) -> None:
        rules = [(code, c.rule) for code, c in TABLE.countries.items()]
        rules += [(f"{code}-{r}", rule) for code, c in TABLE.countries.items() for r, rule in c.regions.items()]
        assert len(rules) > len(EXPECTED_COUNTRY_MODES)
        for where, rule in rules:
            assert isinstance(rule.mode, Mode), where
            assert rule.url is not None and re.fullmatch(r"https?://[^\s/]+\.[a-z]{2,}/\S*", rule.url), where
            assert len(rule.law) > 10 and len(rule.note) > 20, where

    def test_us_all_party_states_need_consent_and_the_rest_follow_federal_one_party(self) -> None:
        us = TABLE.countries["US"]
        assert us.rule.mode is Mode.ONE_PARTY
        for state in ALL_PARTY_STATES:
            assert us.regions[state].mode is Mode.CONSENT, state
        assert {r for r, rule in us.regions.items() if rule.mode is Mode.CONSENT} == set(ALL_PARTY_STATES)
        assert "TX" not in us.regions and "NY" not in us.regions

    def test_unlisted_countries_need_consent(self) -> None:
        assert TABLE.unknown.mode is Mode.CONSENT

    def test_the_shipped_file_is_in_the_package_and_loads_by_path_too(self) -> None:
        shipped = Path(__file__).resolve().parents[2] / "ari_app" / "config" / DATA_FILE
        assert load_jurisdictions(shipped) == TABLE

    def test_every_country_in_the_table_has_an_example_here(self) -> None:
        """So the pair tests below cover every entry, including ones added later."""
        assert set(EXAMPLE) == set(TABLE.countries)
        for code, number in EXAMPLE.items():
            assert region_of(number)[0] == code


class TestRegionOf:
    @pytest.mark.parametrize(("number", "expected"), [
        ("+31201234567", ("NL", None)),
        (CALIFORNIA, ("US", "CA")),  # "San Francisco, CA"
        ("+12135550100", ("US", "CA")),  # "Los Angeles, CA"
        (TEXAS, ("US", "TX")),  # "Texas"
        ("+12065550100", ("US", "WA")),  # "Washington State"
        ("+12025550100", ("US", "DC")),  # "Washington D.C."
        ("+13125550100", ("US", "IL")),  # "Chicago, IL"
        (US_TOLLFREE, ("US", None)),  # "": toll-free tells no state
        ("+14165550123", ("CA", None)),  # Toronto: Canada, not California
        ("+80012345678", ("001", None)),  # international freephone, no country
    ])
    def test_tells_country_and_us_state(self, number: str, expected: tuple[str, str | None]) -> None:
        assert region_of(number) == expected

    @pytest.mark.parametrize("text", ["", "+", "garbage", "31201234567", "0201234567", "+31 20 123 4567",
                                      "+15555550100", "+999123", "+3120123456789012345", "+" + "1" * 400])
    def test_refuses_what_is_not_a_valid_e164_number(self, text: str) -> None:
        with pytest.raises(NotE164):
            region_of(text)

    def test_every_us_place_the_geocoder_names_is_a_state(self) -> None:
        """Any US description phonenumbers can give maps to a state, so no number falls back by accident."""
        by_description: dict[str, str] = {}
        for prefix, names in GEOCODE_DATA.items():
            if prefix.startswith("1") and "en" in names and len(prefix) <= 11:
                by_description.setdefault(names["en"], "+" + prefix + "2" * (11 - len(prefix)))
        checked = 0
        for description, number in by_description.items():
            parsed = phonenumbers.parse(number)
            if (phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == "US"
                    and geocoder.description_for_number(parsed, "en") == description):
                checked += 1
                assert region_of(number)[1] is not None, description
        assert checked > 1000


class TestEveryPairOfCountries:
    @pytest.mark.parametrize(("number_country", "caller_country"), list(itertools.product(EXAMPLE, EXAMPLE)))
    def test_the_call_gets_the_stricter_of_number_and_caller(self, number_country: str, caller_country: str) -> None:
        decision = mode_for_call(TABLE, EXAMPLE[number_country], EXAMPLE[caller_country], None)
        number_mode = EXPECTED_COUNTRY_MODES[number_country]
        caller_mode = EXPECTED_COUNTRY_MODES[caller_country]
        assert decision.mode is max(number_mode, caller_mode)
        assert [b.party for b in decision.bases] == [Party.NUMBER, Party.CALLER]
        imposed = {(b.party, (b.jurisdiction or "").split("-")[0]) for b in decision.imposed_by}  # US-TX: US
        assert ((Party.NUMBER, number_country) in imposed) == (number_mode >= caller_mode)
        assert ((Party.CALLER, caller_country) in imposed) == (caller_mode >= number_mode)
        for _, country in imposed:
            assert str(TABLE.countries[country].rule.url) in decision.evidence

    @pytest.mark.parametrize("target_country", list(EXAMPLE))
    def test_the_answering_target_counts_too(self, target_country: str) -> None:
        decision = mode_for_call(TABLE, EXAMPLE["NL"], EXAMPLE["NL"], EXAMPLE[target_country])
        assert decision.mode is EXPECTED_COUNTRY_MODES[target_country]
        assert decision.bases[-1].party is Party.TARGET
        assert (decision.bases[-1].jurisdiction or "").split("-")[0] == target_country


class TestKnownCalls:
    def test_a_dutch_caller_to_a_dutch_number_is_recorded_silently(self) -> None:
        decision = mode_for_call(TABLE, EXAMPLE["NL"], "+31612345678", "+31201234568")
        assert decision.mode is Mode.ONE_PARTY
        assert "139a" in decision.evidence

    def test_a_german_caller_to_a_dutch_number_must_agree(self) -> None:
        decision = mode_for_call(TABLE, EXAMPLE["NL"], EXAMPLE["DE"], None)
        assert decision.mode is Mode.CONSENT
        assert decision.imposed_by == (decision.bases[1],)
        assert decision.evidence.startswith("consent: caller DE: Strafgesetzbuch § 201")

    def test_a_british_caller_to_a_dutch_number_hears_a_notice(self) -> None:
        assert mode_for_call(TABLE, EXAMPLE["NL"], EXAMPLE["GB"], None).mode is Mode.NOTIFY

    def test_a_target_abroad_makes_a_dutch_call_stricter(self) -> None:
        assert mode_for_call(TABLE, EXAMPLE["NL"], EXAMPLE["NL"], EXAMPLE["FR"]).mode is Mode.CONSENT

    def test_a_caller_from_a_country_not_in_the_table_must_agree(self) -> None:
        decision = mode_for_call(TABLE, EXAMPLE["NL"], AUSTRIA, None)
        assert decision.mode is Mode.CONSENT
        assert decision.bases[1].jurisdiction == "AT"
        assert "not in the table" in decision.bases[1].reason


class TestUsStates:
    def test_a_california_caller_to_a_texas_number_must_agree(self) -> None:
        decision = mode_for_call(TABLE, TEXAS, CALIFORNIA, None)
        assert decision.mode is Mode.CONSENT
        assert [(b.party, b.jurisdiction, b.mode) for b in decision.bases] == [
            (Party.NUMBER, "US-TX", Mode.ONE_PARTY), (Party.CALLER, "US-CA", Mode.CONSENT)]
        assert "Penal Code § 632" in decision.evidence

    def test_a_texas_caller_to_a_texas_number_follows_federal_one_party(self) -> None:
        decision = mode_for_call(TABLE, TEXAS, "+15125550123", None)
        assert decision.mode is Mode.ONE_PARTY
        assert "US-TX has no rule of its own" in decision.bases[1].reason
        assert "2511" in decision.bases[1].reason

    def test_a_us_number_that_tells_no_state_gets_the_strictest_state(self) -> None:
        decision = mode_for_call(TABLE, US_TOLLFREE, EXAMPLE["NL"], None)
        assert decision.mode is Mode.CONSENT
        number = decision.bases[0]
        assert (number.jurisdiction, number.mode) == ("US", Mode.CONSENT)
        assert "region not told" in number.reason

    def test_a_canadian_caller_is_not_taken_for_california(self) -> None:
        decision = mode_for_call(TABLE, TEXAS, EXAMPLE["CA"], None)
        assert decision.mode is Mode.NOTIFY
        assert decision.bases[1].jurisdiction == "CA"


WITHHELD_OR_GARBAGE = [None, "", "anonymous", "Anonymous", " restricted ", "PRIVATE", "unknown", "garbage",
                       "+", "0201234567", "31201234567", "+31 20 123 4567", "+15555550100", "+999123",
                       "+3120123456789012345", "+" + "3" * 10_000, "\x00+31201234567", "+31201234567\n"]


class TestWithheldAndUnparseableCallers:
    @pytest.mark.parametrize("caller", WITHHELD_OR_GARBAGE)
    def test_count_as_the_strictest_mode_anywhere_in_the_table(self, caller: str | None) -> None:
        decision = mode_for_call(TABLE, EXAMPLE["NL"], caller, None)
        assert decision.mode is Mode.CONSENT  # nothing in the shipped table is stricter
        caller_basis = decision.bases[1]
        assert (caller_basis.party, caller_basis.jurisdiction) == (Party.CALLER, None)
        assert "could be from anywhere" in caller_basis.reason
        assert len(decision.evidence) < 400  # an overlong caller id is not copied into evidence

    @pytest.mark.parametrize("caller", [None, "garbage", "+" + "9" * 300])
    def test_are_forbidden_once_any_place_in_the_table_is(self, caller: str | None) -> None:
        table = with_overrides(TABLE, {"IT": Mode.FORBIDDEN})
        decision = mode_for_call(table, EXAMPLE["NL"], caller, None)
        assert decision.mode is Mode.FORBIDDEN
        assert "(IT)" in decision.bases[1].reason

    def test_a_withheld_caller_is_named_as_such(self) -> None:
        assert "caller id withheld" in mode_for_call(TABLE, EXAMPLE["NL"], None, None).evidence
        assert "'garbage' is not a valid E.164" in mode_for_call(TABLE, EXAMPLE["NL"], "garbage", None).evidence


class TestOverrides:
    def test_a_country_override_changes_that_country_only(self) -> None:
        table = with_overrides(TABLE, {"DE": Mode.ONE_PARTY})
        decision = mode_for_call(table, EXAMPLE["NL"], EXAMPLE["DE"], None)
        assert decision.mode is Mode.ONE_PARTY
        assert "configuration override" in decision.evidence
        assert table.countries["DE"].rule.note.startswith("the table says consent")
        assert mode_for_call(table, EXAMPLE["NL"], EXAMPLE["FR"], None).mode is Mode.CONSENT

    def test_a_region_override_changes_that_state_only(self) -> None:
        table = with_overrides(TABLE, {"US-TX": Mode.NOTIFY})
        assert mode_for_call(table, TEXAS, TEXAS, None).mode is Mode.NOTIFY
        assert mode_for_call(table, TEXAS, "+12125550123", None).mode is Mode.NOTIFY  # NY caller, TX number
        assert mode_for_call(table, "+12125550123", "+12125550123", None).mode is Mode.ONE_PARTY  # NY only

    def test_a_country_override_covers_its_regions_and_region_overrides_come_after(self) -> None:
        assert mode_for_call(with_overrides(TABLE, {"US": Mode.NOTIFY}), TEXAS, CALIFORNIA, None).mode is Mode.NOTIFY
        table = with_overrides(TABLE, {"US-CA": Mode.FORBIDDEN, "US": Mode.NOTIFY})
        assert mode_for_call(table, TEXAS, CALIFORNIA, None).mode is Mode.FORBIDDEN
        assert mode_for_call(table, TEXAS, TEXAS, None).mode is Mode.NOTIFY

    def test_an_override_can_add_a_country(self) -> None:
        table = with_overrides(TABLE, {"AT": Mode.NOTIFY})
        assert mode_for_call(table, EXAMPLE["NL"], AUSTRIA, None).mode is Mode.NOTIFY

    def test_overrides_leave_the_original_table_alone(self) -> None:
        with_overrides(TABLE, {"DE": Mode.ONE_PARTY, "US-CA": Mode.ONE_PARTY})
        assert TABLE.countries["DE"].rule.mode is Mode.CONSENT
        assert TABLE.countries["US"].regions["CA"].mode is Mode.CONSENT

    def test_modes_given_as_text_are_accepted(self) -> None:
        table = with_overrides(TABLE, {"DE": "notify"})  # type: ignore[dict-item]
        assert table.countries["DE"].rule.mode is Mode.NOTIFY

    def test_wrong_keys_and_modes_are_refused_each_by_name(self) -> None:
        overrides = {"nl": Mode.NOTIFY, "XX": Mode.NOTIFY, "US-ZZ": Mode.NOTIFY, "NL-NH": Mode.NOTIFY,
                     "DEU": Mode.NOTIFY, "GB": "loud"}
        with pytest.raises(JurisdictionsError) as caught:
            with_overrides(TABLE, overrides)  # type: ignore[arg-type]
        assert isinstance(caught.value, ValueError)
        assert len(caught.value.problems) == 6
        for key in ("'nl'", "'XX'", "'US-ZZ'", "'NL-NH'", "'DEU'"):
            assert f"recording override {key}: expected a country code such as 'NL'" in str(caught.value)
        assert "recording override 'GB': expected one of one_party, notify, consent, forbidden, got 'loud'" \
            in str(caught.value)


NUMBERS = st.sampled_from([*EXAMPLE.values(), CALIFORNIA, US_TOLLFREE, AUSTRIA, "garbage"])


class TestProperties:
    @given(NUMBERS, st.one_of(st.none(), NUMBERS), NUMBERS)
    def test_knowing_the_target_never_makes_a_call_less_strict(self, number: str, caller: str | None,
                                                               target: str) -> None:
        assert mode_for_call(TABLE, number, caller, target).mode >= mode_for_call(TABLE, number, caller, None).mode

    @given(NUMBERS, NUMBERS, NUMBERS)
    def test_it_does_not_matter_who_is_where(self, a: str, b: str, c: str) -> None:
        modes = {mode_for_call(TABLE, *order).mode for order in itertools.permutations((a, b, c))}
        assert len(modes) == 1

    @given(NUMBERS, st.one_of(st.none(), st.text(max_size=40)))
    def test_any_caller_id_gets_at_least_the_numbers_mode(self, number: str, caller: str | None) -> None:
        decision = mode_for_call(TABLE, number, caller, None)
        assert isinstance(decision, Decision)
        assert decision.mode >= decision.bases[0].mode


def test_the_core_imports_no_io_libraries() -> None:
    code = ("import sys, ari_app.core.consent, ari_app.core.model, ari_app.core.recording_rules; "
            "print(sorted({'asyncio', 'aiohttp', 'asyncpg', 'yaml', 'phonenumbers.geocoder'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- a broken data file -----------------------------------------------------------------------------

GOOD_DE = """\
  DE:
    mode: consent
    source:
      law: Strafgesetzbuch § 201
      url: https://www.gesetze-im-internet.de/stgb/__201.html
    note: Recording needs authorisation.
"""
GOOD_UNKNOWN = "unknown:\n  mode: consent\n  note: Nobody looked it up.\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jurisdictions.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class TestBrokenDataFile:
    def test_a_minimal_good_file_loads(self, tmp_path: Path) -> None:
        table = load_jurisdictions(write(tmp_path, GOOD_UNKNOWN + "countries:\n" + GOOD_DE))
        assert isinstance(table, Jurisdictions)
        assert table.countries["DE"].rule.mode is Mode.CONSENT

    @pytest.mark.parametrize(("text", "expected"), [
        ("countries: [\n", "not valid YAML"),
        ("- NL\n", "(top level): expected a mapping with unknown, countries"),
        ("countries:\n" + GOOD_DE, ":1: (top level).unknown: missing"),
        ("unknown:\n  mode: one_party\n  note: x\ncountries:\n" + GOOD_DE,
         ":2: unknown.mode: expected consent or forbidden"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("mode: consent", "mode: maybe"),
         ":6: countries.DE.mode: expected one of one_party, notify, consent, forbidden, got 'maybe'"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("mode: consent", "mdoe: consent"),
         ":6: countries.DE.mdoe: unknown key; expected mode, source, note, regions"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("      url: https://www.gesetze-im-internet.de/stgb/"
                                                         "__201.html\n", ""),
         "countries.DE.source.url: missing"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("https://www.gesetze-im-internet.de/stgb/__201.html",
                                                         "see the StGB"),
         ":9: countries.DE.source.url: expected an http(s) URL, got 'see the StGB'"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("Recording needs authorisation.", "12"),
         "countries.DE.note: expected a short note"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("DE:", "Germany:"),
         ":5: countries.Germany: expected an ISO 3166-1 alpha-2 country code"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE + GOOD_DE, ":11: countries.DE: given twice"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE + "    regions:\n      BY:\n        mode: consent\n",
         "countries.DE.regions: regions are only told apart for US"),
        (GOOD_UNKNOWN + "countries:\n" + GOOD_DE.replace("DE:", "US:")
         + "    regions:\n      ZZ:\n        mode: consent\n", "countries.US.regions.ZZ: expected an ISO 3166-2"),
        (GOOD_UNKNOWN + "countries: {}\n", "countries: expected at least one country"),
    ])
    def test_problems_name_the_file_line_key_and_expectation(self, tmp_path: Path, text: str, expected: str) -> None:
        path = write(tmp_path, text)
        with pytest.raises(JurisdictionsError) as caught:
            load_jurisdictions(path)
        assert isinstance(caught.value, ValueError)
        assert str(caught.value).startswith(str(path))
        assert expected in str(caught.value)

    def test_every_problem_is_reported_at_once(self, tmp_path: Path) -> None:
        broken = GOOD_DE.replace("mode: consent", "mode: maybe").replace("https://www.gesetze-im-internet.de/"
                                                                         "stgb/__201.html", "none")
        with pytest.raises(JurisdictionsError) as caught:
            load_jurisdictions(write(tmp_path, GOOD_UNKNOWN + "countries:\n" + broken))
        assert [p.split(": ", 2)[1] for p in caught.value.problems] == ["countries.DE.mode", "countries.DE.source.url"]

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(JurisdictionsError, match=r"nowhere\.yaml: cannot read"):
            load_jurisdictions(tmp_path / "nowhere.yaml")

    def test_a_file_that_is_not_utf8_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.yaml"
        path.write_bytes("unknown:\n  note: caf\u00e9\n".encode("latin-1"))
        with pytest.raises(JurisdictionsError, match=r"latin1\.yaml: not UTF-8 text"):
            load_jurisdictions(path)
