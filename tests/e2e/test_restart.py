"""fairline killed (SIGKILL) with calls ringing, queued and bridged; restarted; every call ends well
and gets exactly one CDR (issue 7, decision 0015).

The calls, all at once (numbers in tests/e2e/fairline.yaml, phones by last digit):
- +31201230001: rings two phones, one answers after 1 s (the dialplan's Dial() connects them);
- +31201230012: waits in queue e2e-answer, its agent answers after 1 s (fairline's bridge);
- +31201230015: waits in queue e2e-abandon, whose agent never answers;
while fairline is down, a new call to +31201230006 takes the dialplan fallback (its phone answers and
hangs up after 2 s).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import json
from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import SCENARIOS, LiveStack, poll, talk
from tests.e2e.test_reconcile import assert_reconciled, reconcile

pytestmark = pytest.mark.e2e


def events_named(live: LiveStack, name: str) -> list[dict[str, object]]:
    return [e for e in live.logs() if e.get("event") == name]


def test_killed_fairline_comes_back_and_every_call_ends_with_one_cdr(live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    with ThreadPoolExecutor(4) as pool:
        routed = pool.submit(live.call, "+31201230001", talk(live, 14), caller="+31612345631", timeout=60)
        bridged = pool.submit(live.call, "+31201230012", talk(live, 14), caller="+31612345632", timeout=60)
        queued = pool.submit(live.call, "+31201230015", str(SCENARIOS / "uac_answered.xml"),
                             caller="+31612345633", timeout=60)
        assert poll(lambda: len(events_named(live, "call.bridged")) >= 1
                    and len(events_named(live, "queue.joined")) >= 2, timeout=15)
        assert s.fairline is not None
        s.fairline.kill()  # SIGKILL: no goodbye
        s.fairline.wait(timeout=10)
        killed_at = datetime.now().astimezone()
        fallback = pool.submit(live.call, "+31201230006", str(SCENARIOS / "uac_answered.xml"),
                               caller="+31612345634", timeout=30)
        fallback_result = fallback.result()
        s.start_fairline()
        results = {name: f.result() for name, f in
                   (("routed", routed), ("bridged", bridged), ("queued", queued))}

    assert fallback_result.returncode == 0, fallback_result.stderr  # the fallback rang the first target
    for name, result in results.items():  # nobody was dropped: each scenario ended as it expects
        assert result.returncode == 0, (name, result.stderr)

    adopted = {e["call_id"]: e["where"] for e in events_named(live, "call.adopted_after_restart")}
    rows = {r["caller"]: r for r in live.wait_cdrs(3, timeout=20) if r["caller"] != "+31612345634"}
    assert sorted(rows) == ["+31612345631", "+31612345632", "+31612345633"]
    routed_row, bridged_row, queued_row = rows["+31612345631"], rows["+31612345632"], rows["+31612345633"]

    # The routed call talked on through the restart; billed from Asterisk's own answer time.
    assert adopted[routed_row["call_id"]] == "dialing"
    assert routed_row["disposition"] == "answered"
    assert datetime.fromisoformat(routed_row["answered_at"]) < killed_at
    assert routed_row["billable_seconds"] >= 12

    # The bridged queue call talked on too; the caller hung up, the agent's leg went with it.
    assert adopted[bridged_row["call_id"]] == "bridged"
    assert (bridged_row["disposition"], bridged_row["hangup_cause"]) == ("answered", 16)
    assert datetime.fromisoformat(bridged_row["answered_at"]) < killed_at

    # The queued caller's place was lost with the process: an apology, then a clean release.
    assert adopted[queued_row["call_id"]] == "held"
    assert queued_row["hangup_cause"] == 38
    played = [e for e in events_named(live, "call.playing") if e.get("call_id") == queued_row["call_id"]]
    assert [e["media"] for e in played] == ["sound:all-circuits-busy-now"]

    # Each call exactly once, and nothing left behind in Asterisk.
    ids = [r["call_id"] for r in live.cdrs()]
    assert len(ids) == len(set(ids))
    assert poll(lambda: "0 active channels" in s.asterisk_rx("core show channels count"), timeout=10), \
        s.asterisk_rx("core show channels")

    # Asterisk's own records agree, once the call the fallback served is imported from them.
    imported = reconcile(live, since, "--import", "--json")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert [i["did"] for i in json.loads(imported.stdout)["imported"]] == ["+31201230006"]
    assert_reconciled(live, since, calls=4)
