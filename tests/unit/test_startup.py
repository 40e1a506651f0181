"""`fairline --help` answers at once: building the command line loads no heavy module.

The composition root registers every command for every run; each command imports its
driver, YAML loader, tariff (with the holiday calendars) and phonenumbers when it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ari_app.cli import build_parser
from rating.commands import reconcile_cli
from rating.core import reconcile

# Each costs tens of milliseconds to import, holidays and aiohttp over a hundred.
HEAVY = ("aiohttp", "asyncpg", "holidays", "phonenumbers", "yaml")


def loaded_by(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has loaded after running `code`."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"],
        capture_output=True, text=True, check=True,
    )
    found: list[str] = json.loads(done.stdout)
    return found


class TestHelpLoadsNothingHeavy:
    def test_importing_the_command_line_loads_no_heavy_module(self) -> None:
        assert loaded_by("import ari_app.cli") == []

    def test_building_every_command_s_options_loads_no_heavy_module(self) -> None:
        # build_parser runs each module's register(): their help texts must not reach for a heavy module either.
        assert loaded_by("import ari_app.cli\nari_app.cli.build_parser().format_help()") == []


class TestHelpShowsTheDefaultsInForce:
    def test_reconcile_settle_default_is_the_comparison_s_margin(self) -> None:
        assert reconcile_cli.DEFAULT_SETTLE == reconcile.SETTLE
        args = build_parser().parse_args(["reconcile", "--since", "2026-11-25"])
        assert args.settle == reconcile.SETTLE
