"""Overload: a new call that routing would keep waiting past the budget is handed to the dialplan fallback at once.

The wait counts from the channel's creation, plus the requests routing needs at ARI's current latency
(decision 0016).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from ari_app.errors import AriError
from ari_app.events import CallStarted, parse
from ari_app.runtime import App
from rating.cdr import RatedCdr
from rating.tariff import DEFAULT_RATES
from tests.unit.test_runtime import CHANNEL, ROUTED_CONFIG, FakeAri, recorded, turn_until

CONTINUE_TO_FALLBACK = ("POST", f"/channels/{CHANNEL}/continue",
                        {"context": "from-carrier", "extension": "+31201234567", "label": "fallback"})


def ari_time(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def started(lag_s: float, created_s: float | None = None) -> str:
    """The recorded call's StasisStart, sent `lag_s` seconds ago for a channel created `created_s` ago."""
    [start] = [json.loads(m) for m in recorded(types=["StasisStart"])]
    start["timestamp"] = ari_time(lag_s)
    start["channel"]["creationtime"] = ari_time(lag_s if created_s is None else created_s)
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


async def test_a_call_whose_channel_waited_in_asterisk_is_shed_though_its_event_is_on_time() -> None:
    ari = FakeAri()
    app, _ = app_shedding(ari)

    app.handle(started(lag_s=0.002, created_s=0.8))  # Asterisk was behind before it told fairline
    await turn_until(lambda: bool(ari.requests), "the hand-over")

    assert ari.requests == [CONTINUE_TO_FALLBACK]


async def test_slow_ari_answers_shed_a_call_on_time_and_fast_ones_bring_routing_back() -> None:
    ari = FakeAri()
    app, _ = app_shedding(ari)
    app.request_latency_s = 0.25  # three requests at 250 ms: the caller would wait 0.75 s for a ring

    app.handle(started(lag_s=0.01))
    await turn_until(lambda: bool(ari.requests), "the hand-over")
    assert ari.requests == [CONTINUE_TO_FALLBACK]

    for _ in range(20):  # shed calls keep measuring: quick answers pull the estimate down again
        app._note_latency(0.002)
    assert app.request_latency_s < 0.01
    on_time = parse(started(lag_s=0.01))
    assert isinstance(on_time, CallStarted) and not app._lagging(on_time)


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
