"""Overload: a new call that routing would keep waiting past the budget is handed to the dialplan fallback at once.

The wait counts from the channel's creation, plus the requests routing needs at ARI's current latency
(decision 0016).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from ari_app.errors import AriError
from ari_app.ari.event_parser import parse
from ari_app.core.events import CallStarted
from ari_app.health import render_metrics
from ari_app.runtime.app import App
from ari_app.runtime.shedding import LATENCY_WEIGHT
from rating.core.cdr import RatedCdr
from rating.core.tariff import DEFAULT_RATES
from tests.unit.test_health import FakeWriter, value
from tests.unit.test_health import parse as parse_metrics
from tests.unit.test_runtime import ANSWER, CHANNEL, PLAY_HELLO, ROUTED_CONFIG, FakeAri, app_with, recorded, turn_until

CONTINUE_TO_FALLBACK = ("POST", f"/channels/{CHANNEL}/continue",
                        {"context": "from-carrier", "extension": "+31201234567", "label": "shed"})
ADMIT = ("POST", "/asterisk/variable")


def admitted(ari: FakeAri) -> list[int]:
    """The shares of new calls (percent) fairline told the dialplan to let in, in order."""
    return [int(p["value"]) for m, path, p in ari.requests if (m, path) == ADMIT and p and p["variable"] == "FAIRLINE_ADMIT"]


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
        await turn_until(lambda: len(ari.requests) == 2, "the hand-over and the share")

    assert ari.requests[0] == CONTINUE_TO_FALLBACK and ari.requests[1][:2] == ADMIT
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

    assert ari.requests[0] == CONTINUE_TO_FALLBACK


async def test_metrics_split_a_new_calls_wait_between_asterisk_and_fairline() -> None:
    """Which of the two falls behind (issue 15): channel created -> StasisStart sent, and sent -> handled."""
    ari = FakeAri()
    app, _ = app_shedding(ari)

    app.handle(started(lag_s=0.03, created_s=0.33))  # Asterisk took 0.3 s, the event then waited 0.03 s
    await turn_until(lambda: bool(ari.requests), "the route")

    samples = parse_metrics(render_metrics(app, FakeWriter()))
    asterisk, fairline = "fairline_call_start_asterisk_delay_seconds", "fairline_call_start_event_delay_seconds"
    assert value(samples, f"{asterisk}_count") == value(samples, f"{fairline}_count") == 1
    assert value(samples, f"{asterisk}_bucket", le="0.25") == 0 and value(samples, f"{asterisk}_bucket", le="0.5") == 1
    assert value(samples, f"{fairline}_bucket", le="0.025") == 0 and value(samples, f"{fairline}_bucket", le="0.1") == 1
    assert 0.29 <= value(samples, f"{asterisk}_sum") <= 0.31


async def test_a_call_that_waited_while_fairline_was_connecting_is_routed_not_shed() -> None:
    """Its wait came from fairline's (re)start, not from an overload: the fallback would lose its route."""
    ari = FakeAri()
    app, _ = app_shedding(ari)
    await app._on_connect()  # the event filter, the admitted share, adoption: then events flow
    ari.requests.clear()

    app.handle(started(lag_s=2.0))  # waiting in Asterisk's queue since before fairline listened
    await turn_until(lambda: any(r[1].endswith("/continue") for r in ari.requests), "the route")

    assert CONTINUE_TO_FALLBACK not in ari.requests and app.calls_shed == 0


async def test_slow_ari_answers_shed_a_call_on_time_and_fast_ones_bring_routing_back() -> None:
    ari = FakeAri()
    app, _ = app_shedding(ari)
    for _ in range(30):
        app.shedding.note_latency(0.3)  # two round trips at 300 ms: the caller would wait 0.6 s for a ring

    app.handle(started(lag_s=0.01))
    await turn_until(lambda: bool(ari.requests), "the hand-over")
    assert ari.requests[0] == CONTINUE_TO_FALLBACK

    for _ in range(20):  # shed calls keep measuring: quick answers pull the estimate down again
        app.shedding.note_latency(0.002)
    assert app.request_latency_s < 0.01
    on_time = parse(started(lag_s=0.01))
    assert isinstance(on_time, CallStarted) and not app.shedding.lagging(on_time)


async def test_after_a_quiet_spell_the_first_call_is_routed_though_the_overload_left_the_estimate_high() -> None:
    """Shed calls measure ARI while the overload lasts; once calls stop coming, nothing would measure it again."""
    ari = FakeAri()
    app, _ = app_shedding(ari)
    for _ in range(30):
        app.shedding.note_latency(0.3)  # the last requests of an overload
    late = parse(started(lag_s=0.01))
    assert isinstance(late, CallStarted) and app.shedding.lagging(late)

    app.shedding.request_latency.noted_at -= 5  # five quiet seconds: the estimate halves every second
    app.handle(started(lag_s=0.01))
    await turn_until(lambda: any(r[1].endswith("/continue") for r in ari.requests), "the route")

    assert CONTINUE_TO_FALLBACK not in ari.requests and app.calls_shed == 0


async def test_a_failed_hand_over_routes_the_call_after_all() -> None:
    ari = FakeAri(failures_once={CONTINUE_TO_FALLBACK[:2]: AriError("POST", CONTINUE_TO_FALLBACK[1], 500, "busy")})
    app, _ = app_shedding(ari)

    app.handle(started(lag_s=2.0))
    await turn_until(lambda: CHANNEL in app.calls and len(ari.requests) >= 4, "the call routed")

    assert ("POST", "/applications/fairline/subscription") in [r[:2] for r in ari.requests]


async def test_without_a_threshold_nothing_is_shed() -> None:
    ari = FakeAri()
    submitted: list[RatedCdr] = []
    app = App(ari, ROUTED_CONFIG, DEFAULT_RATES, submitted.append)  # type: ignore[arg-type]

    app.handle(started(lag_s=60))
    await turn_until(lambda: bool(ari.requests), "the route")

    assert CONTINUE_TO_FALLBACK not in ari.requests


async def test_shedding_halves_the_share_of_calls_the_dialplan_lets_in_and_calm_gives_it_back() -> None:
    ari = FakeAri()
    app, _ = app_shedding(ari)

    with capture_logs() as logs:
        app.handle(started(lag_s=2.0))
        await turn_until(lambda: admitted(ari) == [50], "the share halved")
        # Calls already in the app when the share fell are shed one by one, without halving it again.
        app.handle(started(lag_s=2.0).replace(CHANNEL, "1700000000.99"))
        await turn_until(lambda: app.calls_shed == 2, "the second hand-over")
        assert admitted(ari) == [50]
        assert "fairline_admitted_percent 50\n" in render_metrics(app, FakeWriter())

        app.admission.shed_at = app.admission.changed_at = time.monotonic() - 60  # a minute without shedding
        app.handle(started(lag_s=0.01).replace(CHANNEL, "1700000000.100"))
        await turn_until(lambda: admitted(ari) == [50, 100], "every call let in again")

    assert [(e["percent"], e["log_level"]) for e in logs if e["event"] == "call.admission"] == [(50, "warning"),
                                                                                                  (100, "info")]
    assert "fairline_admitted_percent 100\n" in render_metrics(app, FakeWriter())


async def test_a_share_asterisk_does_not_take_still_sheds_the_call() -> None:
    ari = FakeAri(failures={ADMIT: AriError("POST", "/asterisk/variable", 403, "forbidden")})
    app, _ = app_shedding(ari)

    with capture_logs() as logs:
        app.handle(started(lag_s=2.0))
        await turn_until(lambda: any(e["event"] == "call.admission_failed" for e in logs), "the share's failure")

    assert ari.requests[0] == CONTINUE_TO_FALLBACK and app.calls == {}


async def test_a_slow_answer_raises_the_wait_expected_for_the_next_calls() -> None:
    """Queued callers are answered by fairline first: Asterisk falling behind shows in that request too."""
    ari = FakeAri()
    ari.gates[ANSWER[:2]] = answered = asyncio.Event()
    app, _ = app_with(ari)  # an announcement number: answered, then the announcement plays

    app.handle(recorded(types=["StasisStart"])[0])
    await turn_until(lambda: ANSWER in ari.requests, "the answer")
    await asyncio.sleep(0.2)
    answered.set()
    await turn_until(lambda: PLAY_HELLO in ari.requests, "the announcement")

    assert app.request_latency_s >= LATENCY_WEIGHT * 0.2
