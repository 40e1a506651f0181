"""`fairline reconcile` on the real stack: Asterisk's own CDR file (cdr_custom) against fairline's CDRs.

Each test compares only the calls it placed (--since its start): Asterisk's file keeps
the calls of the whole session, while the `live` fixture empties the CDR table.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import LiveStack, poll, talk

pytestmark = pytest.mark.e2e

SETTLE = "1"  # seconds; the default (10) would only make the tests wait longer
NOT_IN_SERVICE = "+31209999999"


@contextlib.contextmanager
def cdrs_of_caller_refused(live: LiveStack, caller: str) -> Iterator[None]:
    """PostgreSQL refuses the CDRs of calls from `caller` with a trigger's error (SQLSTATE P0001, outside
    classes 22 and 23) and takes every other CDR, until the block ends: a poison CDR (issue 17)."""
    live.stack.psql("fairline", f"""
        CREATE FUNCTION test_refuse_caller() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.caller = '{caller}' THEN RAISE EXCEPTION 'test trigger: CDR of % refused', NEW.call_id; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse_caller BEFORE INSERT OR UPDATE ON cdrs
            FOR EACH ROW EXECUTE FUNCTION test_refuse_caller();""")
    try:
        yield
    finally:
        live.stack.psql("fairline", "DROP TRIGGER IF EXISTS test_refuse_caller ON cdrs; "
                                    "DROP FUNCTION IF EXISTS test_refuse_caller()")


def reconcile(live: LiveStack, since: datetime, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # As an operator runs it: its own process, configured by the stack's environment
        # (FAIRLINE_ASTERISK_CDR, DATABASE_URL, FAIRLINE_CONFIG).
        [str(Path(sys.executable).parent / "fairline"), "reconcile", "--since", since.isoformat(), "--settle", SETTLE,
         *extra],
        capture_output=True, text=True, timeout=60, env=live.stack.fairline_env(), check=False)


def settled(live: LiveStack, since: datetime, *extra: str, calls: int) -> tuple[int, dict[str, Any]]:
    """The JSON report once `calls` calls are in the window and none is still unsettled."""
    report: dict[str, Any] = {}
    status = -1

    def done() -> bool:
        nonlocal report, status
        proc = reconcile(live, since, "--json", *extra)
        assert proc.returncode in (0, 1), proc.stderr
        status, report = proc.returncode, json.loads(proc.stdout)
        seen = report["matched"] + len(report["missing_in_fairline"]) + len(report["missing_in_asterisk"])
        return seen >= calls and not report["unsettled"]

    assert poll(done, timeout=20), report
    return status, report


def assert_reconciled(live: LiveStack, since: datetime, *, calls: int) -> dict[str, Any]:
    """Asterisk and fairline agree on the `calls` calls started since `since` (for fault tests too)."""
    status, report = settled(live, since, calls=calls)
    assert (status, report["missing_in_fairline"], report["missing_in_asterisk"]) == (0, [], []), report
    assert report["matched"] == calls
    return report


def test_after_ordinary_calls_asterisk_and_fairline_agree(live: LiveStack) -> None:
    since = datetime.now(UTC)
    assert live.call("+31201234567", "uac_answered.xml").returncode == 0  # an announcement
    assert live.call("+31201230001", "uac_talk.xml").returncode == 0  # two phones ring, one answers
    assert live.call("+31201230002", "uac_talk.xml").returncode == 0  # busy, then the next phone answers
    assert live.call(NOT_IN_SERVICE, "uac_rejected.xml").returncode == 0  # fairline releases it unallocated
    # Agents are channels of their own in Asterisk's records; they are not calls.
    assert live.call("+31201230012", talk(live, 2)).returncode == 0
    cdrs = live.wait_cdrs(5)
    assert len(cdrs) == 5

    report = assert_reconciled(live, since, calls=5)
    assert (report["asterisk_calls"], report["fairline_cdrs"]) == (5, 5)

    table = reconcile(live, since)
    assert table.returncode == 0, table.stderr
    assert table.stdout.endswith("Asterisk 5, fairline 5, in both 5\nno differences\n")


def test_calls_the_fallback_served_while_fairline_was_down_are_listed_and_imported(live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    assert live.call("+31201234567", "uac_answered.xml").returncode == 0
    assert len(live.wait_cdrs(1)) == 1
    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=10) == 0
    try:
        # The fallback rings the number's first target (it answers, 2 s of talk) ...
        assert live.call("+31201230006", "uac_answered.xml").returncode == 0
        # ... and releases a number it has no route for with an announcement and 503.
        assert live.call(NOT_IN_SERVICE, "uac_unavailable.xml").returncode == 0
    finally:
        s.start_fairline()
    assert len(live.cdrs()) == 1

    status, report = settled(live, since, calls=3)
    assert status == 1
    missing = {m["did"]: m for m in report["missing_in_fairline"]}
    assert sorted(missing) == ["+31201230006", NOT_IN_SERVICE]
    assert (missing["+31201230006"]["path"], missing["+31201230006"]["asterisk_disposition"]) == ("fallback",
                                                                                                 "ANSWERED")
    assert "dialplan fallback (fairline-fallback) served the call" in missing["+31201230006"]["reason"]
    assert (missing[NOT_IN_SERVICE]["path"], missing[NOT_IN_SERVICE]["answered_at"]) == ("refused", None)
    assert "(503)" in missing[NOT_IN_SERVICE]["reason"]
    assert (report["matched"], report["missing_in_asterisk"]) == (1, [])
    table = reconcile(live, since)
    assert table.returncode == 1
    assert "missing in fairline: 2\n" in table.stdout
    assert table.stdout.endswith("2 missing in fairline, 0 missing in Asterisk\n")

    imported = reconcile(live, since, "--import", "--json")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    after = json.loads(imported.stdout)
    assert sorted(i["call_id"] for i in after["imported"]) == sorted(m["call_id"] for m in missing.values())
    assert (after["missing_in_fairline"], after["missing_in_asterisk"], after["matched"]) == ([], [], 3)

    rows = {r["did"]: r for r in live.cdrs() if r["source"] == "asterisk"}
    answered, refused = rows["+31201230006"], rows[NOT_IN_SERVICE]
    assert answered["call_id"] == missing["+31201230006"]["call_id"]
    assert (answered["disposition"], answered["customer_id"], answered["number_type"]) == ("answered", "acme", "local")
    assert answered["billable_seconds"] >= 2  # the target talks 2 s
    assert answered["list_price_eur"] > answered["setup_eur"] > 0
    assert (refused["disposition"], refused["customer_id"], refused["list_price_eur"]) == ("unallocated", None, 0)

    again = reconcile(live, since)  # a second run finds nothing left to do
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.endswith("in both 3\nno differences\n")
    assert reconcile(live, since, "--import").stdout.endswith("no differences\n")  # and imports nothing twice
    assert len(live.cdrs()) == 3


def test_a_cdr_asterisk_never_recorded_is_listed_as_missing_in_asterisk(live: LiveStack) -> None:
    since = datetime.now(UTC)
    assert live.call("+31201234567", "uac_answered.xml").returncode == 0
    assert len(live.wait_cdrs(1)) == 1
    start, end = since + timedelta(milliseconds=100), since + timedelta(milliseconds=200)
    live.stack.psql("fairline", f"""
        INSERT INTO cdrs (call_id, did, started_at, ended_at, disposition, billing_month)
        VALUES ('not-a-channel.1', '+31201234567', '{start.isoformat()}', '{end.isoformat()}', 'abandoned',
                '{start.date().replace(day=1).isoformat()}')""")

    status, report = settled(live, since, calls=2)
    assert status == 1
    assert [(m["call_id"], m["reason"]) for m in report["missing_in_asterisk"]] == [
        ("not-a-channel.1", "Asterisk's CDR file has no record of this channel")]
    assert (report["matched"], report["missing_in_fairline"]) == (1, [])
    # Importing adds nothing Asterisk lacks: it only ever fills fairline's side.
    assert reconcile(live, since, "--import").returncode == 1


# Alone: its CDR must stay refused (5 tries, about 15 s) while three fairline commands run; beside another
# worker on a loaded machine they took longer, and the CDR went to the dead-letter file first.
@pytest.mark.alone
def test_import_leaves_alone_a_call_whose_own_cdr_still_waits_in_fairlines_spool(live: LiveStack) -> None:
    """Issue 17: importing it would store Asterisk's poorer record, and fairline's own CDR, replayed later,
    used to be dropped by ON CONFLICT DO NOTHING. Now the import refuses it; the live CDR arrives."""
    since = datetime.now(UTC)
    waiting = "+31600000777"
    with cdrs_of_caller_refused(live, waiting):
        assert live.call("+31201230006", "uac_answered.xml", caller=waiting).returncode == 0
        assert poll(lambda: any(e.get("event") == "cdr.refused_for_now" for e in live.logs()), timeout=20)
        status, _ = settled(live, since, calls=1)
        assert status == 1
        imported = reconcile(live, since, "--import", "--json")
        assert imported.returncode == 1, imported.stdout + imported.stderr
        report = json.loads(imported.stdout)
        [missing] = report["missing_in_fairline"]
        assert report["imported"] == [] and missing["path"] == "fairline"
        [refused] = report["not_imported"]
        assert refused["call_id"] == missing["call_id"]
        assert "in its spool directory (" in refused["reason"] and "not in PostgreSQL yet" in refused["reason"]
        assert live.cdrs() == []
    rows = live.wait_cdrs(1, timeout=30)  # its next try, once the database takes it
    assert [(r["call_id"], r["source"], r["caller"]) for r in rows] == [(missing["call_id"], "live", waiting)]
    assert rows[0]["node"] == "fairline1" and rows[0]["call_id"].startswith("fairline1-")  # asterisk.conf systemname
    assert_reconciled(live, since, calls=1)
