"""Configuration versions against the real PostgreSQL: recorded once per content, listed per number,
and a version applied while PostgreSQL is down is recorded once it is back."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from structlog.testing import capture_logs

from ari_app.commands import config_history_cli
from ari_app.config_versions import ConfigRecorder
from rating.storage.config_store import ConfigVersion, config_history, content_hash
from tests.e2e.conftest import LiveStack

pytestmark = pytest.mark.e2e

DEADLINE_S = 30


class Versions:
    """Configurations only this test uses (their own numbers, a unique comment) and cleans up after."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        # Amsterdam numbers no other test configures: the history of each is this test's alone.
        self.n1, self.n2 = (f"+3120{random.randrange(10**6, 10**7)}" for _ in range(2))
        self.hashes: set[str] = set()

    def text(self, announcement: str, *, second: bool = False) -> str:
        numbers = [self.n1, self.n2] if second else [self.n1]
        items = "".join(f'  - number: "{n}"\n    customer: acme\n    type: local\n    announcement: {announcement}\n'
                        for n in numbers)
        text = f"# {self.tag}\ncustomers:\n  - id: acme\n    name: Acme BV\nnumbers:\n{items}"
        self.hashes.add(content_hash(text))
        return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairline")
    config = p.add_subparsers(dest="command", required=True).add_parser("config")
    config_history_cli.register(config.add_subparsers(dest="config_command", required=True))
    return p


@pytest.fixture
def versions(live_stack: LiveStack) -> Iterator[Versions]:
    made = Versions()
    yield made
    hashes = ", ".join(f"'{h}'" for h in made.hashes)
    live_stack.stack.psql("fairline", f"""
        DELETE FROM config_version_changes WHERE version_id IN (SELECT id FROM config_versions
                                                                  WHERE content_hash IN ({hashes}));
        DELETE FROM config_versions WHERE content_hash IN ({hashes})""")


async def history(live: LiveStack, number: str) -> list[ConfigVersion]:
    conn = await asyncpg.connect(live.stack.database_url)
    try:
        return await config_history(conn, number)
    finally:
        await conn.close()


def copies(live: LiveStack, text: str) -> int:
    return int(live.stack.psql("fairline", f"SELECT count(*) FROM config_versions "
                                           f"WHERE content_hash = '{content_hash(text)}'"))


async def test_each_new_content_is_one_version_and_the_same_content_again_is_none(
    live_stack: LiveStack, pool: asyncpg.Pool, versions: Versions
) -> None:
    first, second = versions.text("hello-world"), versions.text("beep", second=True)
    with capture_logs() as logs:
        async with ConfigRecorder(pool, retry_s=0.2) as recorder:
            recorder.record(first, "alice")
            recorder.record(second, "bob")
            recorder.record(second, "carol")
    assert (copies(live_stack, first), copies(live_stack, second)) == (1, 1)
    recorded = [e for e in logs if e["event"] == "config.version_recorded"]
    assert [e["hash"] for e in recorded] == [content_hash(first), content_hash(second)]
    assert [e["event"] for e in logs].count("config.version_unchanged") == 1

    [v2] = await history(live_stack, versions.n2)
    assert (v2.version, v2.author, [(c.number, c.change) for c in v2.changes]) == (
        recorded[1]["version"], "bob", [(versions.n2, "added")])
    v1_again, v1 = await history(live_stack, versions.n1)
    assert [v.version for v in (v1_again, v1)] == [recorded[1]["version"], recorded[0]["version"]]
    [changed] = v1_again.changes
    assert changed.change == "changed"
    assert "-announcement: hello-world\n+announcement: beep\n" in changed.diff


def test_history_for_one_number_lists_the_versions_that_changed_it_with_the_diff(
    live_stack: LiveStack, versions: Versions, capsys: pytest.CaptureFixture[str]
) -> None:
    async def record() -> None:
        pool = await asyncpg.create_pool(live_stack.stack.database_url, min_size=1, max_size=1)
        try:
            async with ConfigRecorder(pool) as recorder:
                recorder.record(versions.text("hello-world"), "alice")
                recorder.record(versions.text("hello-world", second=True), "bob")
                recorder.record(versions.text("beep", second=True), "carol")
        finally:
            await pool.close()

    asyncio.run(record())
    url = live_stack.stack.database_url
    args = parser().parse_args(["config", "history", versions.n2, "--database-url", url])
    assert args.fn(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[4] for line in lines if line.startswith("v")] == ["carol", "bob"]
    assert f"    changed  {versions.n2}" in lines and f"    added    {versions.n2}" in lines
    assert "        -announcement: hello-world" in lines and "        +announcement: beep" in lines

    args = parser().parse_args(["config", "history", versions.n1, "--json", "--database-url", url])
    assert args.fn(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(v["author"], [c["change"] for c in v["changes"]]) for v in doc["versions"]] == [
        ("carol", ["changed"]), ("alice", ["added"])]


@contextlib.asynccontextmanager
async def postgres_down(live: LiveStack) -> AsyncIterator[None]:
    """PostgreSQL is stopped for the block and started again after it, even when it fails."""
    try:
        await asyncio.to_thread(live.stack.stop_postgres)
        yield
    finally:
        await asyncio.to_thread(live.stack.start_postgres)


async def test_a_version_applied_while_postgres_is_down_is_recorded_once_it_is_back(
    live_stack: LiveStack, pool: asyncpg.Pool, versions: Versions
) -> None:
    text = versions.text("hello-world")
    with capture_logs() as logs:
        async with ConfigRecorder(pool, retry_s=0.2) as recorder:
            async with postgres_down(live_stack):
                started = time.monotonic()
                recorder.record(text, "alice")
                assert time.monotonic() - started < 0.5  # routing goes on: nothing waited for the database
                deadline = time.monotonic() + DEADLINE_S
                while not any(e["event"] == "config.version_pending" for e in logs):
                    assert time.monotonic() < deadline, "no attempt while PostgreSQL was down"
                    await asyncio.sleep(0.05)
                assert recorder.pending == 1
            deadline = time.monotonic() + DEADLINE_S
            while recorder.pending:
                assert time.monotonic() < deadline, f"gave up after {DEADLINE_S} s waiting for the version"
                await asyncio.sleep(0.05)
    [version] = await history(live_stack, versions.n1)
    assert (version.content_hash, version.author) == (content_hash(text), "alice")
    assert version.applied_at < version.recorded_at  # when it was applied, not when the database came back
    assert "config.version_unrecorded" not in [e["event"] for e in logs]
