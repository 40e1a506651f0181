"""Routing never waits on the database: fairline starts and routes while PostgreSQL is down."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import LiveStack, poll

pytestmark = pytest.mark.e2e


def test_calls_are_routed_while_postgres_is_down_and_their_cdrs_arrive_once_it_is_back(live: LiveStack) -> None:
    s = live.stack
    assert s.fairline is not None
    s.fairline.terminate()
    assert s.fairline.wait(timeout=15) == 0
    s.stop_postgres()
    # The file on disk loses the number: a fairline that routed by the file would not serve it. It routes by
    # the version it cached when it last ran (decision 0021), the one the store had.
    original = s.app_config.read_text()
    s.app_config.write_text(original.replace('"+31201230001"', '"+31201230099"'))
    try:
        s.start_fairline()  # connected to ARI although PostgreSQL does not answer
        [cached] = [e for e in live.logs() if e.get("event") == "config.from_cache"]
        assert cached["version"].startswith("v")
        result = live.call("+31201230001", "uac_talk.xml")
        assert result.returncode == 0, result.stderr
        assert any(e.get("event") == "db.unreachable" for e in live.logs())
        assert poll(lambda: any(e.get("event") == "cdr.spooled" for e in live.logs()))
    finally:
        s.app_config.write_text(original)
        s.start_postgres()
    rows = live.wait_cdrs(1, timeout=40)  # fairline retries with back-off
    assert [(r["did"], r["disposition"], r["answered_target"]) for r in rows] == [
        ("+31201230001", "answered", "+31201230901")]
