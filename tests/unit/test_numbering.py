"""rating.core.numbering: the one module that asks phonenumbers about a number."""

from __future__ import annotations

import subprocess
import sys

import phonenumbers
import pytest
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA

from ari_app.config.jurisdictions import shipped_law
from ari_app.core.model import Config, Customer, Number, Recording
from rating.core import numbering
from rating.core.tariff import NumberType


class TestUsStates:
    def test_the_state_is_the_one_the_whole_geocoder_describes_for_every_nanp_prefix(self) -> None:
        """Only the +1 English part of phonenumbers' data is loaded; it must answer as the whole geocoder does."""
        states, _ = numbering.load_us_states()
        compared = 0
        for prefix, names in GEOCODE_DATA.items():
            if not prefix.startswith("1") or len(prefix) > 10:
                continue
            number = "+" + prefix + "2" * (11 - len(prefix))
            parsed = phonenumbers.parse(number)
            if not phonenumbers.is_valid_number(parsed) or phonenumbers.region_code_for_number(parsed) != "US":
                continue
            whole = geocoder.description_for_number(parsed, "en")
            assert numbering.region_of(number) == ("US", numbering._us_state(whole)), (number, whole)
            compared += 1
        assert compared > 10_000
        assert len(states) == sum(1 for p, names in GEOCODE_DATA.items() if p.startswith("1") and "en" in names)

    def test_a_process_that_parses_numbers_loads_no_geocoder(self) -> None:
        code = ("import sys; from rating.core import numbering; "
                "numbering.region_of('+31201234567'); numbering.place('+31201234567'); "
                "print(sorted(m for m in sys.modules if m.startswith(('phonenumbers.geocoder', 'phonenumbers.geodata'))))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]"

    def test_a_us_state_loads_only_the_nanp_part_and_never_the_geocoder(self) -> None:
        code = ("import sys; from rating.core import numbering; print(numbering.region_of('+12125550100')); "
                "print(sorted(m for m in sys.modules if m.startswith(('phonenumbers.geocoder', 'phonenumbers.geodata'))))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.split("\n")[:2] == ["('US', 'NY')", "[]"]


class TestWithheld:
    @pytest.mark.parametrize("caller", ["", "anonymous", " Restricted ", "PRIVATE", "unavailable", "unknown", "withheld"])
    def test_what_carriers_send_for_a_withheld_caller_id(self, caller: str) -> None:
        assert numbering.is_withheld(caller)

    @pytest.mark.parametrize("caller", ["+31612345678", "garbage", "0"])
    def test_anything_else_is_not_withheld(self, caller: str) -> None:
        assert not numbering.is_withheld(caller)


class TestNeedsUsStates:
    NUMBER = Number("+31201234567", "acme", NumberType.LOCAL, "hello-world")

    @pytest.mark.parametrize(("recording", "law", "needed"), [
        (False, True, False),  # nothing recorded: no call asks for a state
        (True, False, False),  # no law table: nothing tells states apart
        (True, True, True),
    ])
    def test_only_a_recorded_number_under_a_law_with_states_needs_them(self, recording: bool, law: bool,
                                                                       needed: bool) -> None:
        cfg = Config(customers={"acme": Customer("acme", "Acme BV", recording)}, numbers={self.NUMBER.e164: self.NUMBER},
                     recording=Recording(shipped_law()) if law else Recording())
        assert cfg.needs_us_states is needed
