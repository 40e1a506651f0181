"""The console's pages on the customer's clock, over HTTP against a real PostgreSQL: a date filter takes
local days (a call just after local midnight is on the local day, not the UTC one), times are shown and
exported local, the page names the zone; and a new configuration version reaches the pages without a
page waiting for its parse. Fixtures from test_console_db.py."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import datetime, timezone

import asyncpg
import pytest

from ari_app.config_versions import number_changes
from rating.storage.config_store import newest_version, store_version
from tests.e2e.test_console_db import CONFIG, Console, console, enrol  # noqa: F401  (console: a fixture)

pytestmark = pytest.mark.e2e

# 2026-11-15 23:30 UTC is 2026-11-16 00:30 in Amsterdam, where acme's numbers are (UTC+01:00 in November).
LATE = datetime(2026, 11, 15, 23, 30, tzinfo=timezone.utc)


async def _call_at(url: str, call_id: str, started: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO cdrs (call_id, did, caller, started_at, answered_at, ended_at, disposition, customer_id,
                                 billing_month)
               VALUES ($1, '+31201110001', '+31655512345', $2::timestamptz, NULL, $2::timestamptz + interval '20 s',
                       'abandoned', 'acme', '2026-11-01')""", call_id, started)
    finally:
        await conn.close()


class TestCustomersClock:
    def test_a_call_after_local_midnight_is_on_the_local_day_and_shown_local(self, console: Console) -> None:
        asyncio.run(_call_at(console.url, "late-call", LATE))
        c = console.sign_in("ann@acme.example")
        local_day = c.get("/calls", params={"from": "2026-11-16", "to": "2026-11-16"})
        assert local_day.status_code == 200 and "+31655512345" in local_day.text
        assert "2026-11-16 00:30:00" in local_day.text and "2026-11-15 23:30" not in local_day.text
        assert "Europe/Amsterdam (CET, UTC+01:00)" in local_day.text
        utc_day = c.get("/calls", params={"from": "2026-11-15", "to": "2026-11-15"})
        assert utc_day.status_code == 200 and "+31655512345" not in utc_day.text
        exported = c.get("/calls.csv", params={"from": "2026-11-16", "to": "2026-11-16"})
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["call_id"], r["started_at"]) for r in rows] == [("late-call", "2026-11-16 00:30:00+01")]

    def test_staff_see_which_clock_a_customers_pages_show(self, console: Console) -> None:
        c = console.sign_in("sam@fairline.example")
        enrol(console, c, "sam@fairline.example")
        page = c.get("/staff/customers/acme")
        assert page.status_code == 200 and "Europe/Amsterdam" in page.text


class TestNewVersion:
    def test_a_new_version_reaches_the_pages_which_say_which_version_they_show(self, console: Console) -> None:
        c = console.sign_in("ann@acme.example")
        assert "version v1, the one in service" in c.get("/numbers").text
        asyncio.run(_new_version(console.url))
        deadline = time.monotonic() + 30
        while True:  # the previous version, saying v2 is loading, until v2 is parsed
            text = c.get("/numbers").text
            if "version v2, the one in service" in text:
                break
            assert "version v1, the one in service" in text and "Version v2 was stored since" in text
            assert time.monotonic() < deadline, "v2 never shown"
        assert "rings +31612349999" in text


async def _new_version(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        newest = await newest_version(conn)
        assert newest is not None and newest.content == CONFIG
        text = CONFIG.replace("+31612340001", "+31612349999")
        await store_version(conn, content=text, author="test", role="admin", reason="one number",
                            based_on=newest.id, changes=number_changes(CONFIG, text))
    finally:
        await conn.close()



def test_the_consoles_connections_plan_each_query_for_its_values(console: Console) -> None:
    """A generic plan of "my calls" guesses one call per customer and sorts all of a big customer's calls
    (seconds at 100,000 calls, docs/performance.md); the console's pool asks for custom plans."""
    c = console.client()
    pool: asyncpg.Pool = c.app.state.pool  # type: ignore[attr-defined]
    setting = c.portal.call(pool.fetchval, "SHOW plan_cache_mode")  # type: ignore[union-attr]
    assert setting == "force_custom_plan"
