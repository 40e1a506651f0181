"""Real SIP calls from sipp through Asterisk 22 to `fairline run`, checked in the SIP outcome and in PostgreSQL."""

from __future__ import annotations

import signal
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.e2e.conftest import LiveStack, poll

pytestmark = pytest.mark.e2e

CONFIGURED = "+31201234567"
NOT_IN_SERVICE = "+31209999999"
TOLLFREE = "+318001234567"
HELLO_WORLD_S = 1.3  # length of the hello-world prompt, a little less
NOT_IN_SERVICE_S = 4.5  # length of ss-noservice, a little less


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_configured_number_is_answered_hears_its_announcement_and_leaves_one_cdr(live: LiveStack) -> None:
    result = live.call(CONFIGURED, "uac_answered.xml", caller="+31612345678")
    assert result.returncode == 0, result.stderr

    [cdr] = live.wait_cdrs(1)
    assert cdr["did"] == CONFIGURED
    assert cdr["caller"] == "+31612345678"
    assert cdr["disposition"] == "answered"
    assert cdr["hangup_cause"] == 16
    # The caller heard the whole announcement before fairline released the call.
    assert (ts(cdr["ended_at"]) - ts(cdr["answered_at"])).total_seconds() >= HELLO_WORLD_S
    assert ts(cdr["started_at"]) <= ts(cdr["answered_at"]) <= ts(cdr["ended_at"])
    played = [e for e in live.logs() if e.get("event") == "call.playing" and e.get("call_id") == cdr["call_id"]]
    assert [e["media"] for e in played] == ["sound:hello-world"]


def test_unknown_number_hears_not_in_service_unanswered_and_is_released_unallocated(live: LiveStack) -> None:
    # The scenario requires 183 (early media) and then 404; a 200 would fail it.
    result = live.call(NOT_IN_SERVICE, "uac_rejected.xml")
    assert result.returncode == 0, result.stderr

    [cdr] = live.wait_cdrs(1)
    assert cdr["did"] == NOT_IN_SERVICE
    assert cdr["disposition"] == "unallocated"
    assert cdr["answered_at"] is None
    assert cdr["hangup_cause"] == 1
    assert (ts(cdr["ended_at"]) - ts(cdr["started_at"])).total_seconds() >= NOT_IN_SERVICE_S


def test_did_that_is_not_e164_is_not_in_service(live: LiveStack) -> None:
    result = live.call("0123", "uac_rejected.xml")
    assert result.returncode == 0, result.stderr
    [cdr] = live.wait_cdrs(1)
    assert (cdr["did"], cdr["disposition"]) == ("0123", "unallocated")


def test_simultaneous_calls_each_leave_exactly_one_cdr(live: LiveStack) -> None:
    result = live.call(CONFIGURED, "uac_answered.xml", calls=8, rate=8)
    assert result.returncode == 0, result.stderr
    rows = live.wait_cdrs(8)
    assert len(rows) == 8
    assert len({r["call_id"] for r in rows}) == 8
    assert {r["disposition"] for r in rows} == {"answered"}


def test_while_fairline_is_down_callers_reach_the_first_target_or_a_clear_announcement(live: LiveStack) -> None:
    s = live.stack
    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=10) == 0
    assert any(e.get("event") == "stopped" for e in live.logs())

    # Stasis() fails at once; the generated fairline-fallback context rings the number's
    # first target (this one answers and hangs up after 2 s) ...
    result = live.call("+31201230006", "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    # ... and a number fairline does not serve gets an announcement and 503: no silence.
    result = live.call(NOT_IN_SERVICE, "uac_unavailable.xml")
    assert result.returncode == 0, result.stderr
    assert live.cdrs() == []

    s.start_fairline()
    result = live.call(CONFIGURED, "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    assert poll(lambda: len(live.cdrs()) == 1)


def test_fairline_reconnects_after_asterisk_restarts_and_serves_the_next_call(live: LiveStack) -> None:
    s = live.stack
    s.stop_asterisk()
    assert poll(lambda: any(e.get("event") in ("ari.disconnected", "ari.unreachable") for e in live.logs()))
    s.start_asterisk()
    assert poll(s.fairline_connected, timeout=20)
    assert s.fairline is not None and s.fairline.poll() is None  # no crash, no restart needed

    result = live.call(CONFIGURED, "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    assert [r["disposition"] for r in live.wait_cdrs(1)] == ["answered"]
    assert any(e.get("event") == "ari.reconnecting" for e in live.logs())


def test_answered_calls_are_rated_free_under_fair_use_and_charged_on_tollfree(live: LiveStack) -> None:
    assert live.call(CONFIGURED, "uac_answered.xml").returncode == 0
    assert live.call(TOLLFREE, "uac_answered.xml").returncode == 0
    rows = {r["did"]: r for r in live.wait_cdrs(2)}

    local, tollfree = rows[CONFIGURED], rows[TOLLFREE]
    assert (local["customer_id"], local["number_type"], local["fair_use_eligible"]) == ("acme", "local", True)
    assert (tollfree["number_type"], tollfree["fair_use_eligible"]) == ("tollfree", False)
    for row in (local, tollfree):
        assert row["billable_seconds"] >= 2  # hello-world takes about 1.5 s; each started second counts
        assert row["peak_seconds"] + row["offpeak_seconds"] == row["billable_seconds"]
        assert Decimal(str(row["setup_eur"])) == Decimal("0.04")
        assert Decimal(str(row["list_price_eur"])) > Decimal("0.04")
        # What priced it is on the row (issue 16): the rates and the clock, enough to work the amount out again.
        assert (row["tariff"], row["rating_zone"]) == ("2020-01-01: 0.04 + 0.07/0.05 per min", "Europe/Amsterdam")
        usage = (row["peak_seconds"] * Decimal("0.07") + row["offpeak_seconds"] * Decimal("0.05")) / 60
        assert Decimal(str(row["list_price_eur"])) == Decimal("0.04") + usage.quantize(Decimal("0.0001"), ROUND_HALF_UP)
    assert Decimal(str(local["charged_eur"])) == 0
    assert Decimal(str(tollfree["charged_eur"])) == Decimal(str(tollfree["list_price_eur"]))
