"""The configuration store against the real PostgreSQL: versions stored with author, role, reason
and base; a stale base, a missing author and the same content again store nothing; every version
wakes a listener on `fairline_config`; `fairline run` records as admin from the newest version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from ari_app.config_versions import ConfigRecorder, number_changes
from rating.storage.config_store import (
    NOTIFY_CHANNEL,
    MissingAuthor,
    SameContent,
    StaleBase,
    StoredVersion,
    content_hash,
    newest_version,
    store_version,
    version,
)
from tests.e2e.conftest import LiveStack, poll, stackmod

pytestmark = pytest.mark.e2e

DEADLINE_S = 10


def config(announcement: str, *, comment: str = "") -> str:
    """A valid configuration whose one number plays `announcement`."""
    return (f"{comment}customers:\n  - id: acme\n    name: Acme BV\nnumbers:\n"
            f'  - number: "+31201234567"\n    customer: acme\n    type: local\n    announcement: {announcement}\n')


@pytest.fixture
def versions_since(live_stack: LiveStack) -> Iterator[None]:
    """The versions a test stores are removed after it: the next test starts from the same newest version.

    First it waits for the stack's fairline to have recorded the file it runs with (its recorder
    stores in the background, a few seconds after start): a version stored by it in the middle
    of a test would be a change from someone else.
    """
    running = content_hash(live_stack.stack.app_config.read_bytes().decode("utf-8"))
    recorded_sql = f"SELECT count(*) FROM config_versions WHERE content_hash = '{running}'"

    def recorded() -> bool:
        try:
            return str(live_stack.stack.psql("fairline", recorded_sql)).strip() != "0"
        except stackmod.StackError:  # its migrations have not made the table yet
            return False

    if not poll(recorded, timeout=DEADLINE_S * 3):
        pytest.fail(f"the stack's fairline did not record its configuration within {DEADLINE_S * 3} s")
    before = int(live_stack.stack.psql("fairline", "SELECT coalesce(max(id), 0) FROM config_versions").strip() or 0)
    yield
    live_stack.stack.psql("fairline", f"""
        DELETE FROM service_charges WHERE config_version IN (SELECT version FROM config_versions WHERE id > {before});
        DELETE FROM config_version_changes WHERE version_id > {before};
        DELETE FROM config_versions WHERE id > {before}""")


@pytest.fixture
async def conn(live_stack: LiveStack, pool: asyncpg.Pool, versions_since: None) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


async def count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM config_versions"))


async def store(conn: asyncpg.Connection, content: str, *, based_on: int | None, author: str = "alice",
                reason: str = "test") -> StoredVersion:
    newest = await newest_version(conn)
    return await store_version(conn, content=content, author=author, role="staff", reason=reason, based_on=based_on,
                               changes=number_changes(newest.content if newest else None, content))


class TestStoreVersion:
    async def test_a_version_is_stored_with_who_why_and_its_base_and_read_back_as_stored(
        self, conn: asyncpg.Connection
    ) -> None:
        base = await newest_version(conn)
        text = config("tt-monkeys", comment="# été\r\n")  # bytes a YAML round trip would not keep
        made = await store(conn, text, based_on=base.id if base else None, author="bob", reason="ring the shop")
        assert made.name == f"v{made.id}"
        again = await version(conn, made.name)
        assert again == made and await newest_version(conn) == made
        assert (again.content, again.author, again.role, again.reason, again.based_on) == (
            text, "bob", "staff", "ring the shop", base.id if base else None)
        changes = await conn.fetch("SELECT number, change FROM config_version_changes WHERE version_id = $1", made.id)
        assert ("+31201234567", "changed" if base and "+31201234567" in base.content else "added") in [
            tuple(r) for r in changes]

    async def test_a_change_made_from_a_version_that_is_no_longer_the_newest_is_refused(
        self, conn: asyncpg.Connection
    ) -> None:
        base = await newest_version(conn)
        first = await store(conn, config("beep"), based_on=base.id if base else None)
        before = await count(conn)
        with pytest.raises(StaleBase) as refused:  # made from the same base as `first`, stored after it
            await store(conn, config("tt-monkeys"), based_on=base.id if base else None)
        assert str(refused.value) == (f"based on {base.name if base else 'no version'}, but {first.name} is the "
                                      f"newest: export {first.name}, make the change again")
        assert await count(conn) == before and await newest_version(conn) == first

    async def test_a_change_without_an_author_is_refused(self, conn: asyncpg.Connection) -> None:
        base, before = await newest_version(conn), await count(conn)
        with pytest.raises(MissingAuthor):
            await store(conn, config("beep"), based_on=base.id if base else None, author="  ")
        assert await count(conn) == before

    async def test_the_newest_content_again_is_not_stored(self, conn: asyncpg.Connection) -> None:
        base = await newest_version(conn)
        made = await store(conn, config("beep"), based_on=base.id if base else None)
        before = await count(conn)
        with pytest.raises(SameContent) as same:
            await store(conn, config("beep"), based_on=made.id)
        assert same.value.newest == made and f"no change: {made.name}" in str(same.value)
        assert await count(conn) == before

    async def test_every_stored_version_wakes_a_listener_with_its_id(
        self, live_stack: LiveStack, conn: asyncpg.Connection
    ) -> None:
        heard: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(live_stack.stack.database_url)
        try:
            await listener.add_listener(NOTIFY_CHANNEL, lambda _c, _pid, _channel, payload: heard.put_nowait(payload))
            base = await newest_version(conn)
            made = await store(conn, config("beep"), based_on=base.id if base else None)
            async with asyncio.timeout(DEADLINE_S):
                assert await heard.get() == str(made.id)
            with pytest.raises(StaleBase):  # a refused version wakes nobody
                await store(conn, config("tt-monkeys"), based_on=base.id if base else None)
            await asyncio.sleep(0.3)
            assert heard.empty()
        finally:
            await listener.close()

    async def test_fairline_run_records_as_admin_made_from_the_newest(
        self, pool: asyncpg.Pool, conn: asyncpg.Connection
    ) -> None:
        base = await newest_version(conn)
        async with ConfigRecorder(pool, retry_s=0.2) as recorder:
            recorder.record(config("beep", comment="# recorded\n"), "ops")
        made = await newest_version(conn)
        assert made is not None and made.content == config("beep", comment="# recorded\n")
        assert (made.author, made.role, made.reason, made.based_on) == ("ops", "admin", "", base.id if base else None)
