"""Configuration versions without a database: hashes, per-number changes and diffs, the recorder, the history command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

import ari_app.config_versions
from ari_app.commands import config_history_cli
from ari_app.config_versions import ConfigRecorder, number_changes
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


# ---------------------------------------------------------------- the recorder


@dataclasses.dataclass
class Stored:
    version: str
    content_hash: str
    author: str
    content: str
    applied_at: datetime
    changes: list[NumberChange]


class FakeStore:
    """Stands in for `record_version`: a version table that can go down or refuse a version."""

    def __init__(self) -> None:
        self.versions: list[Stored] = []
        self.down: BaseException | None = None  # raised by every attempt while set
        self.refuse: set[str] = set()  # hashes that break a CHECK constraint
        self.attempts = 0

    async def record_version(self, _conn: Any, *, content_hash: str, author: str, content: str, applied_at: datetime,
                             changes: Callable[[str | None], Sequence[NumberChange]]) -> str | None:
        self.attempts += 1
        await asyncio.sleep(0)
        if self.down is not None:
            raise self.down
        if content_hash in self.refuse:
            raise asyncpg.CheckViolationError('new row for relation "config_versions" violates check constraint')
        if self.versions and self.versions[-1].content_hash == content_hash:
            return None
        found = list(changes(self.versions[-1].content if self.versions else None))
        self.versions.append(Stored(f"v{len(self.versions) + 1}", content_hash, author, content, applied_at, found))
        return self.versions[-1].version


class FakePool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    monkeypatch.setattr(ari_app.config_versions, "record_version", fake.record_version)
    return fake


OUTAGE = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def recorder(**options: Any) -> ConfigRecorder:
    """A recorder on the fake store that retries every 10 ms."""
    return ConfigRecorder(FakePool(), **{"retry_s": 0.01, **options})


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until check() holds: the recorder works in a background task."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.001)


def events(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs]


class TestConfigRecorder:
    async def test_record_returns_before_anything_is_stored_then_the_version_is_stored(self, store: FakeStore) -> None:
        with capture_logs() as logs:
            async with recorder() as rec:
                rec.record(BASE, "alice")
                assert (store.attempts, rec.pending) == (0, 1)
                await eventually(lambda: rec.pending == 0)
        [v] = store.versions
        assert (v.version, v.content_hash, v.author, v.content) == ("v1", content_hash(BASE), "alice", BASE)
        [recorded] = [e for e in logs if e["event"] == "config.version_recorded"]
        assert (recorded["version"], recorded["hash"]) == ("v1", content_hash(BASE))

    async def test_each_version_is_diffed_against_the_one_before(self, store: FakeStore) -> None:
        async with recorder() as rec:
            rec.record(BASE, "alice")
            rec.record(with_tollfree(BASE), "bob")
        assert [kinds(v.changes) for v in store.versions] == [
            {"*": "added", "+31201234567": "added", "+3215123456": "added"}, {"+318001234567": "added"}]

    async def test_the_same_content_again_is_not_a_new_version(self, store: FakeStore) -> None:
        with capture_logs() as logs:
            async with recorder() as rec:
                rec.record(BASE, "alice")
                rec.record(BASE, "bob")
        assert [v.version for v in store.versions] == ["v1"]
        assert events(logs) == ["config.version_recorded", "config.version_unchanged"]

    async def test_applied_at_is_when_record_was_called_not_when_it_was_stored(self, store: FakeStore) -> None:
        now = [T0]
        async with recorder(clock=lambda: now[0]) as rec:
            store.down = OUTAGE
            rec.record(BASE, "alice")
            now[0] = T0 + timedelta(hours=1)
            await eventually(lambda: store.attempts >= 2)
            store.down = None
        assert store.versions[0].applied_at == T0

    async def test_while_the_database_is_down_versions_wait_in_order_and_are_stored_once_it_is_back(
        self, store: FakeStore
    ) -> None:
        with capture_logs() as logs:
            async with recorder() as rec:
                store.down = OUTAGE
                rec.record(BASE, "alice")
                rec.record(with_tollfree(BASE), "bob")
                await eventually(lambda: store.attempts >= 3)
                assert (store.versions, rec.pending) == ([], 2)
                store.down = None
                await eventually(lambda: rec.pending == 0)
        assert [(v.version, v.author) for v in store.versions] == [("v1", "alice"), ("v2", "bob")]
        pending = [e for e in logs if e["event"] == "config.version_pending"]
        assert pending and all(e["hash"] == content_hash(BASE) and e["exc_info"] is False for e in pending)

    async def test_close_tries_once_more_and_logs_every_version_it_could_not_store(self, store: FakeStore) -> None:
        rec = ConfigRecorder(FakePool(), retry_s=3600)  # only close() can cut the wait short
        store.down = OUTAGE
        with capture_logs() as logs:
            rec.record(BASE, "alice")
            rec.record(with_tollfree(BASE), "bob")
            await eventually(lambda: store.attempts == 1)
            async with asyncio.timeout(2):
                await rec.close()
        assert store.attempts == 2
        unrecorded = [e for e in logs if e["event"] == "config.version_unrecorded"]
        assert [(e["hash"], e["author"]) for e in unrecorded] == [
            (content_hash(BASE), "alice"), (content_hash(with_tollfree(BASE)), "bob")]
        with capture_logs() as again:
            await rec.close()
        assert again == []

    async def test_close_stores_what_the_last_try_can(self, store: FakeStore) -> None:
        rec = ConfigRecorder(FakePool(), retry_s=3600)
        store.down = OUTAGE
        rec.record(BASE, "alice")
        await eventually(lambda: store.attempts == 1)
        store.down = None
        with capture_logs() as logs:
            await rec.close()
        assert [v.version for v in store.versions] == ["v1"]
        assert "config.version_unrecorded" not in events(logs)

    async def test_a_version_the_database_refuses_does_not_hold_back_the_next(self, store: FakeStore) -> None:
        store.refuse = {content_hash(BASE)}
        with capture_logs() as logs:
            async with recorder() as rec:
                rec.record(BASE, "alice")
                rec.record(with_tollfree(BASE), "bob")
        assert [v.author for v in store.versions] == ["bob"]
        [refused] = [e for e in logs if e["event"] == "config.version_refused"]
        assert refused["hash"] == content_hash(BASE)

    async def test_a_record_after_close_is_logged_not_lost_silently(self, store: FakeStore) -> None:
        rec = recorder()
        await rec.close()
        with capture_logs() as logs:
            rec.record(BASE, "alice")
        assert events(logs) == ["config.version_unrecorded"]
        assert store.attempts == 0

    def test_a_blank_author_is_a_caller_bug(self) -> None:
        with pytest.raises(ValueError, match="author"):
            recorder().record(BASE, "  ")


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
