"""Configuration versions without a database: hashes, per-number changes and diffs, the history command."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import socket
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ari_app.commands import config_history_cli
from ari_app.config_versions import number_changes
from rating.storage.config_store import ConfigVersion, Fee, NumberChange, content_hash

BASE = """\
customers:
  - id: acme
    name: Acme BV
  - id: bakery
    name: Brussels Bakery SPRL

numbers:
  - number: "+31201234567"
    customer: acme
    type: local
    announcement: hello-world
  - number: "+3215123456"
    customer: bakery
    type: national
    announcement: beep

tariff:
  - valid_from: 2020-01-01
    setup_eur: 0.04
    peak_eur_per_min: 0.07
    offpeak_eur_per_min: 0.05
"""

TOLLFREE = """\
  - number: "+318001234567"
    customer: acme
    type: tollfree
"""


def with_tollfree(text: str) -> str:
    return text.replace("\ntariff:", TOLLFREE + "\ntariff:")


def kinds(changes: Sequence[NumberChange]) -> dict[str, str]:
    return {c.number: c.change for c in changes}


class TestContentHash:
    def test_is_the_sha256_of_the_file_bytes(self) -> None:
        """The same as `sha256sum fairline.yaml`, so an operator can tell which version a file is."""
        assert content_hash(BASE) == hashlib.sha256(BASE.encode("utf-8")).hexdigest()

    def test_any_edit_changes_it_even_a_comment(self) -> None:
        assert content_hash(BASE) != content_hash("# reviewed\n" + BASE)

    def test_non_ascii_text_is_hashed_as_utf8(self) -> None:
        text = BASE.replace("Acme BV", "Açme BV")
        assert content_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()


class TestNumberChanges:
    def test_the_first_version_adds_every_number_and_the_rest(self) -> None:
        assert kinds(number_changes(None, BASE)) == {"*": "added", "+31201234567": "added", "+3215123456": "added"}

    def test_the_same_text_changes_nothing(self) -> None:
        assert number_changes(BASE, BASE) == []

    def test_a_new_number_is_added(self) -> None:
        assert kinds(number_changes(BASE, with_tollfree(BASE))) == {"+318001234567": "added"}

    def test_a_number_left_out_is_removed(self) -> None:
        assert kinds(number_changes(with_tollfree(BASE), BASE)) == {"+318001234567": "removed"}

    def test_an_edited_number_is_changed_and_only_it(self) -> None:
        new = BASE.replace("announcement: beep", "announcement: tt-monkeys")
        assert kinds(number_changes(BASE, new)) == {"+3215123456": "changed"}

    @pytest.mark.parametrize("spelling", ["+31 20 123 4567", "+31-20-1234567", "+31 (0)20 123 4567"])
    def test_a_number_spelled_differently_is_the_same_number(self, spelling: str) -> None:
        assert number_changes(BASE, BASE.replace("+31201234567", spelling)) == []

    def test_comments_layout_key_order_and_item_order_change_nothing(self) -> None:
        new = """\
# Reviewed by ops.
tariff: [{valid_from: 2020-01-01, setup_eur: 0.04, peak_eur_per_min: 0.07, offpeak_eur_per_min: 0.05}]
numbers:
  - {announcement: beep, type: national, customer: bakery, number: "+3215123456"}
  - {number: "+31201234567", customer: acme, type: local, announcement: hello-world}
customers:
  - {id: acme, name: Acme BV}
  - {id: bakery, name: Brussels Bakery SPRL}
"""
        assert number_changes(BASE, new) == []

    def test_a_tariff_change_is_a_change_outside_numbers(self) -> None:
        new = BASE.replace("peak_eur_per_min: 0.07", "peak_eur_per_min: 0.08")
        assert kinds(number_changes(BASE, new)) == {"*": "changed"}

    def test_a_new_customer_is_a_change_outside_numbers(self) -> None:
        new = BASE.replace("customers:\n", "customers:\n  - id: zeta\n    name: Zeta Ltd\n")
        [change] = number_changes(BASE, new)
        assert (change.number, change.change) == ("*", "changed")
        assert "+- id: zeta\n" in change.diff

    def test_a_section_outside_numbers_that_appears_is_added(self) -> None:
        without_tariff = BASE.split("\ntariff:")[0] + "\n"
        assert kinds(number_changes(without_tariff, BASE)) == {"*": "changed"}
        assert kinds(number_changes("numbers: []\n", "numbers: []\ntariff: []\n")) == {"*": "added"}
        assert kinds(number_changes("numbers: []\ntariff: []\n", "numbers: []\n")) == {"*": "removed"}

    def test_changes_come_sorted_by_number_with_the_rest_first(self) -> None:
        assert [c.number for c in number_changes(None, with_tollfree(BASE))] == [
            "*", "+31201234567", "+318001234567", "+3215123456"]

    def test_a_number_that_does_not_parse_is_known_as_written(self) -> None:
        new = with_tollfree(BASE).replace("+318001234567", "not-a-number")
        assert kinds(number_changes(BASE, new)) == {"not-a-number": "added"}

    def test_an_empty_file_has_nothing_in_it(self) -> None:
        assert kinds(number_changes(BASE, "")) == {"*": "removed", "+31201234567": "removed",
                                                    "+3215123456": "removed"}


def owners(changes: Sequence[NumberChange]) -> dict[str, tuple[str | None, str | None]]:
    return {c.number: (c.owner_before, c.owner_after) for c in changes}


class TestOwners:
    """Each change names the number's customer before and after it (migration 0025): the console shows a
    customer only the changes made while the number was theirs."""

    def test_an_added_number_has_only_an_owner_after_and_everything_outside_numbers_none(self) -> None:
        assert owners(number_changes(None, BASE)) == {"*": (None, None), "+31201234567": (None, "acme"),
                                                      "+3215123456": (None, "bakery")}

    def test_a_number_changed_by_its_customer_keeps_them_before_and_after(self) -> None:
        new = BASE.replace("announcement: beep", "announcement: vm-nobodyavail")
        assert owners(number_changes(BASE, new)) == {"+3215123456": ("bakery", "bakery")}

    def test_a_number_moved_to_another_customer_names_both(self) -> None:
        new = BASE.replace("customer: bakery", "customer: acme")
        assert owners(number_changes(BASE, new)) == {"+3215123456": ("bakery", "acme")}

    def test_a_removed_number_has_only_an_owner_before(self) -> None:
        assert owners(number_changes(with_tollfree(BASE), BASE)) == {"+318001234567": ("acme", None)}

    def test_a_queue_is_its_own_row_by_name_owned_by_its_customer_not_part_of_the_rest(self) -> None:
        queue = "queues:\n  - name: desk\n    customer: acme\n    agents: ['+31612340071']\n"
        with_queue = queue + BASE
        assert owners(number_changes(BASE, with_queue)) == {"queue:desk": (None, "acme")}
        moved = with_queue.replace("customer: acme\n    agents", "customer: bakery\n    agents")
        assert owners(number_changes(with_queue, moved)) == {"queue:desk": ("acme", "bakery")}

    def test_an_item_without_a_customer_has_none(self) -> None:
        new = with_tollfree(BASE).replace("    customer: acme\n    type: tollfree", "    type: tollfree")
        assert owners(number_changes(BASE, new)) == {"+318001234567": (None, None)}


class TestDiff:
    def test_a_changed_number_shows_the_old_and_new_line_with_context(self) -> None:
        new = BASE.replace("announcement: beep", "announcement: tt-monkeys")
        [change] = number_changes(BASE, new)
        assert change.diff == (
            "--- +3215123456 before\n"
            "+++ +3215123456 after\n"
            "@@ -1,4 +1,4 @@\n"
            "-announcement: beep\n"
            "+announcement: tt-monkeys\n"
            " customer: bakery\n"
            " number: '+3215123456'\n"
            " type: national\n"
        )

    def test_an_added_number_shows_all_of_it(self) -> None:
        [change] = number_changes(BASE, with_tollfree(BASE))
        assert change.diff.splitlines()[3:] == ["+customer: acme", "+number: '+318001234567'", "+type: tollfree"]

    def test_a_removed_number_shows_all_of_it(self) -> None:
        [change] = number_changes(with_tollfree(BASE), BASE)
        assert change.diff.splitlines()[3:] == ["-customer: acme", "-number: '+318001234567'", "-type: tollfree"]

    def test_the_number_is_shown_in_e164_whatever_its_spelling(self) -> None:
        [change] = number_changes(BASE, with_tollfree(BASE).replace("+318001234567", "+31 800 123 4567"))
        assert "+number: '+318001234567'\n" in change.diff


# ----------------------------------------------------------- the history command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairline")
    sub = p.add_subparsers(dest="command", required=True)
    config = sub.add_parser("config")
    config_history_cli.register(config.add_subparsers(dest="config_command", required=True))
    return p


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


V2 = ConfigVersion("v2", "ab" * 32, datetime(2026, 11, 3, 11, 30, tzinfo=UTC), datetime(2026, 11, 3, 11, 31, tzinfo=UTC),
                   "bob", (NumberChange("+3215123456", "changed", "--- a\n+++ b\n-announcement: beep\n+announcement: x\n"),
                           NumberChange("+318001234567", "added", "--- a\n+++ b\n+type: tollfree\n")))
V1 = ConfigVersion("v1", "cd" * 32, datetime(2026, 11, 3, 10, 0, tzinfo=UTC), datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
                   "alice", ())


class TestHistoryCommand:
    def test_has_help_naming_its_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(["config", "history", "--help"])
        assert exited.value.code == 0
        out = capsys.readouterr().out
        assert "NUMBER" in out and "--database-url" in out and "--json" in out

    def test_takes_an_optional_number(self) -> None:
        assert parser().parse_args(["config", "history"]).number is None
        assert parser().parse_args(["config", "history", "+31201234567", "--json"]).number == "+31201234567"

    def test_an_unreachable_database_exits_3_without_showing_the_password(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"postgresql://fairline:s3cret-pw@127.0.0.1:{closed_port()}/fairline"
        args = parser().parse_args(["config", "history", "--database-url", url])
        assert args.fn(args) == 3
        err = capsys.readouterr().err
        assert "unreachable" in err and "fairline:***@127.0.0.1" in err and "s3cret-pw" not in err

    def test_no_database_given_is_bad_usage(self, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        args = parser().parse_args(["config", "history"])
        assert args.fn(args) == 2
        assert "DATABASE_URL" in capsys.readouterr().err

    def test_text_lists_versions_with_their_changes_and_no_diff_without_a_number(self) -> None:
        out = io.StringIO()
        config_history_cli.write_text(out, [V2, V1], None)
        assert out.getvalue() == (
            "v2  2026-11-03 11:30:00 UTC  bob as admin  abababababab\n"
            "    changed  +3215123456\n"
            "    added    +318001234567\n"
            "v1  2026-11-03 10:00:00 UTC  alice as admin  cdcdcdcdcdcd\n"
            "    no number changed (only comments or layout)\n"
        )

    def test_text_shows_the_role_the_base_why_and_the_fee_paid_for_the_version(self) -> None:
        """A disputed fee is answered from the history: who changed what in which role, why, and what was charged."""
        staff = dataclasses.replace(V2, role="staff", reason="ring the mobile longer", based_on="v1",
                                    fees=(Fee("acme", date(2026, 11, 1), Decimal("25.0000"), "bob"),))
        out = io.StringIO()
        config_history_cli.write_text(out, [staff], None)
        assert out.getvalue().splitlines()[:3] == [
            "v2  2026-11-03 11:30:00 UTC  bob as staff  abababababab  from v1",
            "    why: ring the mobile longer",
            "    fee: 25.00 EUR to acme for 2026-11, charged by bob",
        ]
        out = io.StringIO()
        config_history_cli.write_json(out, [staff], None)
        [v] = json.loads(out.getvalue())["versions"]
        assert (v["role"], v["reason"], v["based_on"], v["fees"]) == (
            "staff", "ring the mobile longer", "v1",
            [{"customer_id": "acme", "month": "2026-11", "amount_eur": "25.0000", "charged_by": "bob"}])

    def test_text_for_a_number_shows_the_diff(self) -> None:
        out = io.StringIO()
        one = dataclasses.replace(V2, changes=V2.changes[:1])
        config_history_cli.write_text(out, [one], "+3215123456")
        assert out.getvalue().splitlines()[2:] == [
            "        --- a", "        +++ b", "        -announcement: beep", "        +announcement: x"]

    def test_text_says_so_when_nothing_changed_the_number(self) -> None:
        out = io.StringIO()
        config_history_cli.write_text(out, [], "+31201234567")
        assert out.getvalue() == "no version changed +31201234567\n"

    def test_json_carries_every_field_and_diff(self) -> None:
        out = io.StringIO()
        config_history_cli.write_json(out, [V2], None)
        doc = json.loads(out.getvalue())
        assert doc["number"] is None
        [v] = doc["versions"]
        assert (v["version"], v["author"], v["content_hash"], v["applied_at"]) == (
            "v2", "bob", "ab" * 32, "2026-11-03T11:30:00+00:00")
        assert v["changes"][1] == {"number": "+318001234567", "change": "added",
                                   "diff": "--- a\n+++ b\n+type: tollfree\n"}
