"""`fairline --help` answers at once: building the command line loads no heavy module.

The composition root registers every command for every run; each command imports its
driver, YAML loader, tariff (with the holiday calendars) and phonenumbers when it runs.
"""

from __future__ import annotations

from ari_app.cli import build_parser
from rating.commands import reconcile_cli
from rating.core import reconcile


class TestHelpShowsTheDefaultsInForce:
    def test_reconcile_settle_default_is_the_comparison_s_margin(self) -> None:
        assert reconcile_cli.DEFAULT_SETTLE == reconcile.SETTLE
        args = build_parser().parse_args(["reconcile", "--since", "2026-11-25"])
        assert args.settle == reconcile.SETTLE
