"""The configuration store against the real PostgreSQL: versions stored with author, role, reason
and base; a stale base, a missing author and the same content again store nothing; every version
wakes a listener on `fairline_config`. Each test has a database of its own (conftest.scratch_database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ari_app.config_versions import number_changes
from rating.storage.config_store import (
    NOTIFY_CHANNEL,
    MissingAuthor,
    SameContent,
    StaleBase,
    StoredVersion,
    newest_version,
    store_version,
    version,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 10


def config(announcement: str, *, comment: str = "") -> str:
    """A valid configuration whose one number plays `announcement`."""
    return (f"{comment}customers:\n  - id: acme\n    name: Acme BV\nnumbers:\n"
            f'  - number: "+31201234567"\n    customer: acme\n    type: local\n    announcement: {announcement}\n')


@pytest.fixture
async def conn(scratch_database: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(scratch_database)
    try:
        yield c
    finally:
        await c.close()


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
        self, scratch_database: str, conn: asyncpg.Connection
    ) -> None:
        heard: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(scratch_database)
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
