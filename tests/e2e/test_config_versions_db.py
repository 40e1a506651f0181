"""Configuration versions against the real PostgreSQL: what each version changed, per number, and
`fairline config history NUMBER` listing the versions that changed one number with their diffs.
Each test has a database of its own (conftest.scratch_database)."""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg
import pytest

from ari_app.commands import config_history_cli
from ari_app.config_versions import number_changes
from rating.storage.config_store import ConfigVersion, config_history, newest_version, store_version

pytestmark = pytest.mark.e2e

N1, N2 = "+31201239901", "+31201239902"


def text(announcement: str, *, second: bool = False) -> str:
    items = "".join(f'  - number: "{n}"\n    customer: acme\n    type: local\n    announcement: {announcement}\n'
                    for n in ([N1, N2] if second else [N1]))
    return f"customers:\n  - id: acme\n    name: Acme BV\nnumbers:\n{items}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairline")
    config = p.add_subparsers(dest="command", required=True).add_parser("config")
    config_history_cli.register(config.add_subparsers(dest="config_command", required=True))
    return p


async def store_all(url: str, *made: tuple[str, str]) -> None:
    """Store each (content, author) in turn, each made from the newest, as `config apply` does."""
    conn = await asyncpg.connect(url)
    try:
        for content, author in made:
            newest = await newest_version(conn)
            await store_version(conn, content=content, author=author, role="admin", reason="test",
                                based_on=newest.id if newest else None,
                                changes=number_changes(newest.content if newest else None, content))
    finally:
        await conn.close()


async def history(url: str, number: str) -> list[ConfigVersion]:
    conn = await asyncpg.connect(url)
    try:
        return await config_history(conn, number)
    finally:
        await conn.close()


def test_each_version_records_what_it_changed_per_number(scratch_database: str) -> None:
    asyncio.run(store_all(scratch_database, (text("hello-world"), "alice"), (text("beep", second=True), "bob")))

    [v2] = asyncio.run(history(scratch_database, N2))
    assert (v2.version, v2.author, [(c.number, c.change) for c in v2.changes]) == ("v2", "bob", [(N2, "added")])
    v1_again, v1 = asyncio.run(history(scratch_database, N1))
    assert [v.version for v in (v1_again, v1)] == ["v2", "v1"]
    [changed] = v1_again.changes
    assert changed.change == "changed"
    assert "-announcement: hello-world\n+announcement: beep\n" in changed.diff


def test_history_for_one_number_lists_the_versions_that_changed_it_with_the_diff(
    scratch_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(store_all(scratch_database, (text("hello-world"), "alice"),
                          (text("hello-world", second=True), "bob"), (text("beep", second=True), "carol")))
    args = parser().parse_args(["config", "history", N2, "--database-url", scratch_database])
    assert args.fn(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[4] for line in lines if line.startswith("v")] == ["carol", "bob"]
    assert f"    changed  {N2}" in lines and f"    added    {N2}" in lines
    assert "        -announcement: hello-world" in lines and "        +announcement: beep" in lines

    args = parser().parse_args(["config", "history", N1, "--json", "--database-url", scratch_database])
    assert args.fn(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(v["author"], [c["change"] for c in v["changes"]]) for v in doc["versions"]] == [
        ("carol", ["changed"]), ("alice", ["added"])]
