"""Overload: a new call whose StasisStart reaches fairline late is handed to the dialplan fallback at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from ari_app.errors import AriError
from ari_app.runtime import App
from rating.cdr import RatedCdr
from rating.tariff import DEFAULT_RATES
from tests.unit.test_runtime import CHANNEL, ROUTED_CONFIG, FakeAri, recorded, turn_until

CONTINUE_TO_FALLBACK = ("POST", f"/channels/{CHANNEL}/continue",
                        {"context": "from-carrier", "extension": "+31201234567", "label": "fallback"})


def started(lag_s: float) -> str:
    """The recorded call's StasisStart, sent `lag_s` seconds ago."""
    [start] = [json.loads(m) for m in recorded(types=["StasisStart"])]
    sent = datetime.now(UTC) - timedelta(seconds=lag_s)
    start["timestamp"] = sent.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return json.dumps(start)


def app_shedding(ari: FakeAri) -> tuple[App, list[RatedCdr]]:
    submitted: list[RatedCdr] = []
    return App(ari, ROUTED_CONFIG, DEFAULT_RATES, submitted.append, shed_after_s=0.5), submitted  # type: ignore[arg-type]


async def test_a_call_that_arrives_late_takes_the_fallback_with_one_request() -> None:
    ari = FakeAri()
    app, _ = app_shedding(ari)

    with capture_logs() as logs:
        app.handle(started(lag_s=2.0))
        await turn_until(lambda: bool(ari.requests), "the hand-over")

    assert ari.requests == [CONTINUE_TO_FALLBACK]
    assert (app.calls, app.calls_shed) == ({}, 1)
    [shed] = [e for e in logs if e["event"] == "call.shed"]
    assert shed["lag_s"] >= 2.0 and shed["log_level"] == "warning"


async def test_a_call_on_time_is_routed_by_fairline() -> None:
    ari = FakeAri()
    app, _ = app_shedding(ari)

    app.handle(started(lag_s=0.05))
    await turn_until(lambda: any(r[1].endswith("/continue") for r in ari.requests), "the route")

    assert CONTINUE_TO_FALLBACK not in ari.requests and app.calls_shed == 0
    assert CHANNEL in app.calls


async def test_a_failed_hand_over_routes_the_call_after_all() -> None:
    ari = FakeAri(failures_once={CONTINUE_TO_FALLBACK[:2]: AriError("POST", CONTINUE_TO_FALLBACK[1], 500, "busy")})
    app, _ = app_shedding(ari)

    app.handle(started(lag_s=2.0))
    await turn_until(lambda: CHANNEL in app.calls and len(ari.requests) >= 3, "the call routed")

    assert ari.requests[1][1] == "/applications/fairline/subscription"


async def test_without_a_threshold_nothing_is_shed() -> None:
    ari = FakeAri()
    submitted: list[RatedCdr] = []
    app = App(ari, ROUTED_CONFIG, DEFAULT_RATES, submitted.append)  # type: ignore[arg-type]

    app.handle(started(lag_s=60))
    await turn_until(lambda: bool(ari.requests), "the route")

    assert CONTINUE_TO_FALLBACK not in ari.requests
