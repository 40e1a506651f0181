"""A restarted fairline takes over the calls its predecessor left in Asterisk (decision 0015), with a fake ARI.

Asterisk's answers to GET /channels and /bridges are what a restarted fairline finds; the
tests check what it then asks of Asterisk and what the CDRs say.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from ari_app.errors import ChannelGone
from ari_app.runtime.app import App
from rating.core.cdr import Disposition, RatedCdr
from rating.core.tariff import DEFAULT_RATES
from tests.unit.test_flow_queues import QUEUES, SUPPORT
from tests.unit.test_runtime import FakeAri, turn_until

CALLER = "+31612345678"
ANSWERED_AT = datetime(2026, 11, 25, 13, 0, 5, 250000, tzinfo=UTC)


def channel(cid: str, *, state: str = "Up", app: str = "Stasis", context: str = "from-carrier",
            exten: str = SUPPORT, app_data: str = "fairline") -> dict[str, Any]:
    return {"id": cid, "name": f"PJSIP/carrier-in-{cid}", "state": state,
            "caller": {"name": "", "number": CALLER}, "creationtime": "2026-11-25T13:00:00.000+0000",
            "dialplan": {"context": context, "exten": exten, "priority": 1, "app_name": app, "app_data": app_data}}


def found(channels: list[dict[str, Any]], bridges: list[dict[str, Any]] | None = None) -> FakeAri:
    ari = FakeAri(answers={("GET", "/channels"): channels, ("GET", "/bridges"): bridges or []})
    for c in channels:
        ari.answers[("GET", f"/channels/{c['id']}/variable")] = {"value": f"{ANSWERED_AT.timestamp()}"}
        ari.failures[("GET", f"/channels/{c['id']}-recorder")] = _gone(c["id"])
    return ari


def _gone(cid: str) -> Exception:
    return ChannelGone("GET", f"/channels/{cid}-recorder", 404, "Channel not found")


def destroyed(cid: str) -> str:
    return json.dumps({"type": "ChannelDestroyed", "timestamp": "2026-11-25T13:01:00.000+0000", "cause": 16,
                       "channel": channel(cid)})


async def adopt(ari: FakeAri) -> tuple[App, list[RatedCdr]]:
    submitted: list[RatedCdr] = []
    app = App(ari, QUEUES, DEFAULT_RATES, submitted.append)  # type: ignore[arg-type]
    await app.adoption.adopt_channels()
    return app, submitted


async def test_a_caller_held_in_the_app_hears_the_apology_and_is_released() -> None:
    ari = found([channel("c1", context="fairline-dial", exten="s", app_data="fairline,dialed,NOANSWER,+31201234580")])
    ari.answers[("GET", "/channels/c1/variable")] = {"value": SUPPORT}  # FAIRLINE_DID; also read as CDR(answer,u)

    await adopt(ari)
    await turn_until(lambda: any(r[1] == "/channels/c1/play" for r in ari.requests), "the apology")

    assert ("DELETE", "/channels/c1/moh", None) in ari.requests
    play = next(r for r in ari.requests if r[1] == "/channels/c1/play")
    assert play[2] == {"media": "sound:all-circuits-busy-now", "playbackId": "c1-failure"}


async def test_a_call_in_dial_is_subscribed_to_and_billed_from_asterisks_answer_time() -> None:
    ari = found([channel("c2", app="Dial", context="fairline-dial", exten="s")])
    ari.answers[("GET", "/channels/c2/variable")] = {"value": f"{ANSWERED_AT.timestamp()}"}

    app, submitted = await adopt(ari)
    assert ("POST", "/applications/fairline/subscription", {"eventSource": "channel:c2"}) in ari.requests
    app.handle(destroyed("c2"))
    await turn_until(lambda: bool(submitted), "the CDR")

    [cdr] = submitted
    assert (cdr.call.disposition, cdr.call.answered_at) == (Disposition.ANSWERED, ANSWERED_AT)


async def test_a_caller_bridged_with_an_agent_talks_on_and_the_agent_hanging_up_releases_it() -> None:
    ari = found([channel("c3"), {**channel("c3-agent-1"), "name": "PJSIP/carrier-out-1"}],
                [{"id": "c3-bridge", "channels": ["c3", "c3-agent-1"]}])

    app, submitted = await adopt(ari)
    assert not any(r[0] == "DELETE" for r in ari.requests)  # nobody interrupted
    app.handle(destroyed("c3-agent-1"))
    await turn_until(lambda: ("DELETE", "/channels/c3", {"reason": "normal"}) in ari.requests, "the release")
    app.handle(destroyed("c3"))
    await turn_until(lambda: bool(submitted), "the CDR")

    [cdr] = submitted
    assert (cdr.call.answered_at, cdr.call.disposition) == (ANSWERED_AT, Disposition.ANSWERED)


async def test_an_agent_leg_ringing_for_a_lost_caller_is_hung_up() -> None:
    ari = found([channel("c4-agent-2", state="Ringing")])

    await adopt(ari)
    await turn_until(lambda: ("DELETE", "/channels/c4-agent-2", None) in ari.requests, "the hang-up")


async def test_a_caller_never_answered_is_routed_from_the_start() -> None:
    ari = found([channel("c5", state="Ring")])

    await adopt(ari)
    await turn_until(lambda: any(r[1] == "/channels/c5/continue" for r in ari.requests), "the call handed to Dial()")


async def test_channels_of_other_apps_and_calls_fairline_knows_are_left_alone() -> None:
    ari = found([channel("x1", app_data="someone-else"), channel("x2", app="Dial", context="default")])

    app, _ = await adopt(ari)
    await asyncio.sleep(0)

    assert app.calls == {}
    assert [r for r in ari.requests if r[0] != "GET"] == []
