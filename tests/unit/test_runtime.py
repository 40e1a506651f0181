"""The running app: the recorded Asterisk 22 call replayed through App with a fake ARI client and CDR writer.

Events go in as the raw websocket strings. Workers run as tasks on the test's event
loop; tests wait for them by turning the loop (bounded), never by sleeping. What App
hands to the CDR writer is collected in a list: it must be exactly one RatedCdr per call.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ari_app.runtime import session as runtime_session
from ari_app.ari.client import AriClient
from ari_app.core.model import (AnswerConfirmation, Config, Customer, ForwardTo, Number, Route, Strategy, Target,
                                 TargetKind)
from ari_app.errors import AriError, AriUnauthorized, ChannelGone
from ari_app.ari.version import UnsupportedAsterisk, asterisk_major
from ari_app.runtime.app import App
from ari_app.runtime.session import backoff_delays
from rating.core.cdr import CallRecord, Disposition, RatedCdr
from rating.core.tariff import DEFAULT_RATES, NumberType, RatedPrice, RateTable, TrafficRates

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ari_answered_call.jsonl"
CHANNEL = "1795612635.0"
CALL = f"/channels/{CHANNEL}"
CONFIG = Config(
    customers={"acme": Customer("acme", "Acme BV")},
    numbers={"+31201234567": Number("+31201234567", "acme", NumberType.LOCAL, "hello-world")},
)

# The recorded call's DID, routed instead: one mobile, then the default announcement.
ROUTED_CONFIG = Config(
    customers={"acme": Customer("acme", "Acme BV")},
    numbers={"+31201234567": Number("+31201234567", "acme", NumberType.LOCAL, route=Route(
        Strategy.SIMULTANEOUS, (Target("+31612345601", TargetKind.MOBILE, 20),)))},
    confirmation=AnswerConfirmation(mobiles=False),  # routing alone; answer confirmation: test_answer_confirmation.py
)
# Three phones at once: a dial too long for an extension of fairline-dial.
THREE_PHONES = ("+31612345601", "+31612345602", "+31612345603")
THREE_PHONES_CONFIG = Config(
    customers={"acme": Customer("acme", "Acme BV")},
    numbers={"+31201234567": Number("+31201234567", "acme", NumberType.LOCAL, route=Route(
        Strategy.SIMULTANEOUS, tuple(Target(p, TargetKind.MOBILE, 20) for p in THREE_PHONES)))},
    confirmation=AnswerConfirmation(mobiles=False),  # routing alone; answer confirmation: test_answer_confirmation.py
)

Request = tuple[str, str, "dict[str, str] | None"]


def recorded(channel: str = CHANNEL, did: str | None = None, types: Iterable[str] | None = None,
             playback: str | None = "announcement") -> list[str]:
    """The recorded call's events as websocket strings, rewritten in memory for another channel or DID.

    The recording's playback id ("p1") becomes the flow's own, `<channel>-<playback>`
    ("noservice" for a number not in service); None keeps it as recorded.
    """
    wanted = set(types) if types is not None else None
    out = []
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if wanted is not None and event["type"] not in wanted:
            continue
        event = copy.deepcopy(event)
        if "channel" in event:
            event["channel"]["id"] = channel
            if did is not None:
                event["channel"]["dialplan"]["exten"] = did
        if "playback" in event:
            event["playback"]["target_uri"] = f"channel:{channel}"
            if playback is not None:
                event["playback"]["id"] = f"{channel}-{playback}"
        out.append(json.dumps(event))
    return out


class FakeAri:
    """Records REST requests (JSON bodies apart, in `bodies`); raises what `failures` holds for a (method, path),
    and what `failures_once` holds the first time only."""

    app = "fairline"

    def __init__(self, failures: dict[tuple[str, str], Exception] | None = None,
                 answers: dict[tuple[str, str], Any] | None = None,
                 failures_once: dict[tuple[str, str], Exception] | None = None) -> None:
        self.requests: list[Request] = []
        self.bodies: dict[tuple[str, str], Any] = {}
        self.failures = failures or {}
        self.failures_once = failures_once or {}
        self.answers = answers or {}
        self.gates: dict[tuple[str, str], asyncio.Event] = {}

    async def request(self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None) -> Any:
        self.requests.append((method, path, params))
        if body is not None:
            self.bodies[(method, path)] = body
        gate = self.gates.get((method, path))
        if gate is not None:
            await gate.wait()
        if (method, path) in self.failures_once:
            raise self.failures_once.pop((method, path))
        if (method, path) in self.failures:
            raise self.failures[(method, path)]
        return self.answers.get((method, path))


def app_with(ari: FakeAri, rates: RateTable = DEFAULT_RATES, config: Config = CONFIG) -> tuple[App, list[RatedCdr]]:
    """An App on `ari`, and the list its CDRs are submitted to (as the CDR writer would take them: never blocking)."""
    submitted: list[RatedCdr] = []
    return App(ari, config, rates, submitted.append), submitted  # type: ignore[arg-type]


async def turn_until(condition: Callable[[], bool], what: str, turns: int = 200) -> None:
    """Let the event loop run until `condition` holds; fail after `turns` turns (no wall-clock waiting)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"still waiting for {what} after {turns} event-loop turns")


async def workers_done(app: App) -> None:
    await turn_until(lambda: not app._workers, "the call workers to finish")


def feed(app: App, messages: Iterable[str]) -> None:
    for m in messages:
        app.handle(m)


def dispositions(submitted: list[RatedCdr]) -> list[str]:
    return [c.call.disposition.value for c in submitted]


ANSWER = ("POST", f"{CALL}/answer", None)
PLAY_HELLO = ("POST", f"{CALL}/play", {"media": "sound:hello-world", "playbackId": f"{CHANNEL}-announcement"})
RELEASE_NORMAL = ("DELETE", CALL, {"reason": "normal"})
RELEASE_FAILURE = ("DELETE", CALL, {"reason": "failure"})
ASTERISK_INFO = ("GET", "/asterisk/info", {"only": "system,config"})
EVENT_FILTER = ("PUT", "/applications/fairline/eventFilter", None)  # its JSON body is in FakeAri.bodies
ADOPTION = [("GET", "/channels", None), ("GET", "/bridges", None)]  # calls a previous fairline left behind
SUBSCRIBE = ("POST", "/applications/fairline/subscription", {"eventSource": f"channel:{CHANNEL}"})
# The dial is the extension of fairline-dial the call continues to.
CONTINUE = ("POST", f"{CALL}/continue", {"context": "fairline-dial", "extension": "PJSIP/+31612345601@carrier-out,20",
                                         "priority": "1"})
# Too long for an extension, it goes in FAIRLINE_DIAL and the call to extension s.
SET_LONG_DIAL = ("POST", f"{CALL}/variable", {"variable": "FAIRLINE_DIAL", "value": "&".join(
    f"PJSIP/{p}@carrier-out" for p in THREE_PHONES) + ",20"})
CONTINUE_LONG = ("POST", f"{CALL}/continue", {"context": "fairline-dial", "extension": "s", "priority": "1"})
PROGRESS = ("POST", f"{CALL}/progress", None)
PLAY_NOBODY = ("POST", f"{CALL}/play", {"media": "sound:vm-nobodyavail", "playbackId": f"{CHANNEL}-0-noanswer"})
RELEASE_BUSY = ("DELETE", CALL, {"reason": "busy"})
APOLOGY_ID = f"{CHANNEL}-failure"
PLAY_APOLOGY = ("POST", f"{CALL}/play", {"media": "sound:all-circuits-busy-now", "playbackId": APOLOGY_ID})


def channel_event(kind: str, timestamp: str, **fields: Any) -> str:
    """An ARI event about the recorded channel, as Asterisk 22 writes it, at `timestamp` (UTC, HH:MM:SS.mmm)."""
    [start] = [json.loads(m) for m in recorded(types=["StasisStart"])]
    return json.dumps({"type": kind, "timestamp": f"2026-11-25T{timestamp}+0000", **fields,
                       "channel": start["channel"], "asterisk_id": start["asterisk_id"], "application": "fairline"})


def dial_returned(status: str, timestamp: str) -> str:
    """StasisStart as the fairline-dial context's Stasis(fairline,dialed,${DIALSTATUS}) sends it."""
    message = json.loads(channel_event("StasisStart", timestamp, args=["dialed", status]))
    message["channel"]["dialplan"] = {"context": "fairline-dial", "exten": "s", "priority": 2,
                                      "app_name": "Stasis", "app_data": f"fairline,dialed,{status}"}
    return json.dumps(message)


def playback_finished(playback_id: str, media: str, timestamp: str) -> str:
    return json.dumps({"type": "PlaybackFinished", "timestamp": f"2026-11-25T{timestamp}+0000",
                       "playback": {"id": playback_id, "media_uri": media, "target_uri": f"channel:{CHANNEL}",
                                    "language": "en", "state": "done"},
                       "asterisk_id": "02:fc:00:00:00:01", "application": "fairline"})


def apology_finished(timestamp: str = "13:17:17.000") -> str:
    """PlaybackFinished of the apology fairline plays after a failed action."""
    return playback_finished(APOLOGY_ID, "sound:all-circuits-busy-now", timestamp)

STARTED = datetime(2026, 11, 25, 13, 17, 15, 861000, tzinfo=UTC)
ANSWERED = datetime(2026, 11, 25, 13, 17, 15, 863000, tzinfo=UTC)
ENDED = datetime(2026, 11, 25, 13, 17, 16, 308000, tzinfo=UTC)
NO_PRICE = RatedPrice(0, 0, 0, Decimal("0.0000"), Decimal("0.0000"), Decimal("0.0000"), False)


class TestReplayRecordedCall:
    """The recorded call, fed as raw strings, drives the REST requests and the one CDR submitted for it."""

    async def test_recorded_call_is_answered_announced_released_and_submitted_once_priced(self) -> None:
        """Answered 0.445 s on a Wednesday 14:17 in Amsterdam: one peak second plus the set-up fee."""
        ari = FakeAri()
        app, submitted = app_with(ari)

        feed(app, recorded())
        await workers_done(app)

        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        assert submitted == [RatedCdr(
            call=CallRecord(CHANNEL, "+31201234567", "+31612345678", STARTED, ANSWERED, ENDED, Disposition.ANSWERED,
                            16),
            customer_id="acme",
            number_type=NumberType.LOCAL,
            price=RatedPrice(billable_seconds=1, peak_seconds=1, offpeak_seconds=0, setup_eur=Decimal("0.0400"),
                             usage_eur=Decimal("0.0012"), list_price_eur=Decimal("0.0412"), fair_use_eligible=True,
                             tariff="2000-01-01: 0.04 + 0.07/0.05 per min"),  # the default tariff
            billing_month=date(2026, 11, 1),
            rating_zone="Europe/Amsterdam",
        )]
        assert (submitted[0].rating_error, submitted[0].source) == (None, "live")
        assert app.calls == {}

    async def test_unknown_number_gets_progress_not_in_service_and_is_submitted_unallocated_without_price(
            self) -> None:
        """The same recording dialled to a number fairline does not serve (Asterisk then sends no Up)."""
        ari = FakeAri()
        app, submitted = app_with(ari)

        feed(app, [m for m in recorded(did="+31209999999", playback="noservice")
                   if json.loads(m)["type"] != "ChannelStateChange"])
        await workers_done(app)

        assert ari.requests == [
            ("POST", f"{CALL}/progress", None),
            ("POST", f"{CALL}/play", {"media": "sound:ss-noservice", "playbackId": f"{CHANNEL}-noservice"}),
            ("DELETE", CALL, {"reason": "unallocated"}),
        ]
        [cdr] = submitted
        assert (cdr.call.did, cdr.call.disposition, cdr.call.answered_at, cdr.call.hangup_cause) == (
            "+31209999999", Disposition.UNALLOCATED, None, 1)
        assert (cdr.customer_id, cdr.number_type, cdr.price, cdr.rating_error) == (None, None, NO_PRICE, None)

    async def test_playback_that_is_not_fairlines_does_not_release_the_caller(self) -> None:
        """As recorded, the PlaybackFinished is for playback "p1": not fairline's announcement, so no hang-up.

        The caller hangs up (a soft request, no Q.850 cause) and the call still gets its one CDR.
        """
        ari = FakeAri()
        app, submitted = app_with(ari)

        feed(app, recorded(playback=None))
        await workers_done(app)

        assert ari.requests == [ANSWER, PLAY_HELLO]
        [cdr] = submitted
        assert (cdr.call.disposition, cdr.call.hangup_cause, cdr.price.billable_seconds) == (
            Disposition.ANSWERED, None, 1)

    async def test_two_calls_each_get_their_own_requests_and_cdr(self) -> None:
        ari = FakeAri()
        app, submitted = app_with(ari)
        a, b = recorded(channel="a.1"), recorded(channel="b.2")

        feed(app, [m for pair in zip(a, b) for m in pair])  # interleaved, as Asterisk would send them
        await workers_done(app)

        for channel in ("a.1", "b.2"):
            assert [(m, p) for m, p, _ in ari.requests if p.startswith(f"/channels/{channel}")] == [
                ("POST", f"/channels/{channel}/answer"), ("POST", f"/channels/{channel}/play"),
                ("DELETE", f"/channels/{channel}")]
        assert sorted(c.call.call_id for c in submitted) == ["a.1", "b.2"]

    async def test_slow_request_for_one_call_does_not_delay_another(self) -> None:
        ari = FakeAri()
        slow = asyncio.Event()
        ari.gates[("POST", "/channels/a.1/answer")] = slow
        app, submitted = app_with(ari)

        feed(app, recorded(channel="a.1", types=["StasisStart"]))
        feed(app, recorded(channel="b.2"))
        await turn_until(lambda: len(submitted) == 1, "call b's CDR")

        assert submitted[0].call.call_id == "b.2"
        assert ("POST", "/channels/a.1/play") not in [(m, p) for m, p, _ in ari.requests]
        slow.set()
        feed(app, recorded(channel="a.1", types=["StasisEnd"]))
        await workers_done(app)
        assert [c.call.call_id for c in submitted] == ["b.2", "a.1"]

    async def test_events_for_a_call_fairline_does_not_know_are_skipped(self) -> None:
        """A call that entered the app before fairline (re)started: nothing is done to it, nothing crashes."""
        ari = FakeAri()
        app, submitted = app_with(ari)

        feed(app, recorded()[1:])  # everything but StasisStart
        await workers_done(app)

        assert (ari.requests, submitted, app.calls) == ([], [], {})


class TestReplayRoutedCall:
    """A routed call: subscribed, handed to the dialplan's Dial(), its outcome back in the app."""

    async def test_busy_target_gets_progress_the_announcement_and_a_busy_release(self) -> None:
        ari = FakeAri()
        app, submitted = app_with(ari, config=ROUTED_CONFIG)

        feed(app, recorded(types=["StasisStart"]))
        await turn_until(lambda: CONTINUE in ari.requests, "the call handed to Dial()")
        assert ari.requests == [SUBSCRIBE, CONTINUE]

        feed(app, [channel_event("StasisEnd", "13:17:15.870"),  # leaving the app for the dialplan
                   dial_returned("BUSY", "13:17:17.200")])
        await turn_until(lambda: PLAY_NOBODY in ari.requests, "the no-answer announcement")
        feed(app, [playback_finished(f"{CHANNEL}-0-noanswer", "sound:vm-nobodyavail", "13:17:19.500")])
        await turn_until(lambda: RELEASE_BUSY in ari.requests, "the busy release")
        feed(app, [channel_event("ChannelHangupRequest", "13:17:19.510", cause=17, soft=True),
                   channel_event("StasisEnd", "13:17:19.511"),
                   channel_event("ChannelDestroyed", "13:17:19.520", cause=17, cause_txt="User busy")])
        await workers_done(app)

        assert ari.requests == [SUBSCRIBE, CONTINUE, PROGRESS, PLAY_NOBODY, RELEASE_BUSY]
        [cdr] = submitted
        assert (cdr.call.disposition, cdr.call.hangup_cause, cdr.call.answered_at, cdr.call.answered_target) == (
            Disposition.BUSY, 17, None, None)
        assert cdr.call.ended_at == datetime(2026, 11, 25, 13, 17, 19, 520000, tzinfo=UTC)
        assert (cdr.customer_id, cdr.price.billable_seconds) == ("acme", 0)
        assert app.calls == {}

    async def test_a_call_in_progress_keeps_the_flow_it_started_with_when_a_new_version_comes(self) -> None:
        """The call's number forwards, when nobody answers, to another number's route; a new version changes
        that route while the call rings. The call goes on as it started; a new call would take the new one."""
        def forwarding(second_phone: str) -> Config:
            return Config(customers={"acme": Customer("acme", "Acme BV")}, numbers={
                "+31201234567": Number("+31201234567", "acme", NumberType.LOCAL, route=Route(
                    Strategy.SIMULTANEOUS, (Target("+31612345601", TargetKind.MOBILE, 20),), ForwardTo("+31201234568"))),
                "+31201234568": Number("+31201234568", "acme", NumberType.LOCAL, route=Route(
                    Strategy.SIMULTANEOUS, (Target(second_phone, TargetKind.MOBILE, 20),)))},
                confirmation=AnswerConfirmation(mobiles=False))
        ari = FakeAri()
        app, _ = app_with(ari, config=forwarding("+31612345602"))

        feed(app, recorded(types=["StasisStart"]))
        await turn_until(lambda: CONTINUE in ari.requests, "the call handed to Dial()")
        app.config = forwarding("+31612345699")  # applied while the first phone rings
        feed(app, [channel_event("StasisEnd", "13:17:15.870"), dial_returned("NOANSWER", "13:17:35.900")])
        await turn_until(lambda: len(ari.requests) == 3, "the forwarded route")

        assert ari.requests[2][:2] == ("POST", f"{CALL}/continue")
        assert ari.requests[2][2]["extension"] == "PJSIP/+31612345602@carrier-out,20"  # the old version's phone

    async def test_stasis_end_of_a_followed_call_writes_no_cdr_until_the_channel_is_destroyed(self) -> None:
        ari = FakeAri()
        app, submitted = app_with(ari, config=ROUTED_CONFIG)

        feed(app, [*recorded(types=["StasisStart"]), channel_event("StasisEnd", "13:17:15.870")])
        await turn_until(lambda: CONTINUE in ari.requests, "the call handed to Dial()")

        assert (submitted, list(app.calls)) == ([], [CHANNEL])
        feed(app, [channel_event("ChannelDestroyed", "13:17:30.000", cause=16)])
        await workers_done(app)
        assert dispositions(submitted) == ["abandoned"]

    async def test_the_call_goes_to_dial_only_once_its_events_are_followed(self) -> None:
        ari = FakeAri()
        ari.gates[SUBSCRIBE[:2]] = subscribed = asyncio.Event()
        app, _ = app_with(ari, config=ROUTED_CONFIG)

        feed(app, recorded(types=["StasisStart"]))
        await turn_until(lambda: SUBSCRIBE in ari.requests, "the subscription")
        for _ in range(20):
            await asyncio.sleep(0)
        assert ari.requests == [SUBSCRIBE]  # never into Dial() before the events are followed

        subscribed.set()
        await turn_until(lambda: CONTINUE in ari.requests, "the call handed to Dial()")
        assert ari.requests == [SUBSCRIBE, CONTINUE]

    async def test_a_dial_too_long_for_an_extension_is_set_while_subscribing_and_dial_waits_for_both(self) -> None:
        ari = FakeAri()
        ari.gates[SUBSCRIBE[:2]] = subscribed = asyncio.Event()
        app, _ = app_with(ari, config=THREE_PHONES_CONFIG)

        feed(app, recorded(types=["StasisStart"]))
        await turn_until(lambda: SET_LONG_DIAL in ari.requests, "the variable, while the subscription is unanswered")
        assert ari.requests == [SUBSCRIBE, SET_LONG_DIAL]
        for _ in range(20):
            await asyncio.sleep(0)
        assert CONTINUE_LONG not in ari.requests

        subscribed.set()
        await turn_until(lambda: CONTINUE_LONG in ari.requests, "the call handed to Dial()")
        assert ari.requests == [SUBSCRIBE, SET_LONG_DIAL, CONTINUE_LONG]

    async def test_failed_subscription_plays_the_apology_releases_with_failure_and_the_cdr_still_follows(
            self) -> None:
        refused = AriError("POST", "/applications/fairline/subscription", 500, "Internal Server Error")
        ari = FakeAri(failures={SUBSCRIBE[:2]: refused})
        app, submitted = app_with(ari, config=ROUTED_CONFIG)
        try:
            feed(app, recorded(types=["StasisStart"]))
            await turn_until(lambda: PLAY_APOLOGY in ari.requests, "the apology after the failed subscription")
            # Not handed to Dial() unfollowed.
            assert ari.requests == [SUBSCRIBE, PROGRESS, PLAY_APOLOGY]
            feed(app, [apology_finished()])
            await turn_until(lambda: RELEASE_FAILURE in ari.requests, "the release after the apology")
            assert ari.requests == [SUBSCRIBE, PROGRESS, PLAY_APOLOGY, RELEASE_FAILURE]
            feed(app, recorded(types=["ChannelHangupRequest", "StasisEnd"]))
            await turn_until(lambda: bool(submitted), "the CDR")

            assert dispositions(submitted) == ["failed"]
        finally:
            await app._drain()


class TestBadEvents:
    """One malformed message never stops the event loop."""

    async def test_bad_event_is_logged_and_later_events_still_handled(self) -> None:
        ari = FakeAri()
        with capture_logs() as logs:
            app, submitted = app_with(ari)
            events = recorded()
            feed(app, [events[0], "{not json", '{"type": "StasisEnd"}', *events[1:]])
            await workers_done(app)

        bad = [e for e in logs if e["event"] == "ari.bad_event"]
        assert [(e["log_level"], e["message"]) for e in bad] == [
            ("warning", "{not json"), ("warning", '{"type": "StasisEnd"}')]
        assert "missing field channel.id" in bad[1]["error"]
        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        assert dispositions(submitted) == ["answered"]

    async def test_long_bad_event_is_logged_shortened(self) -> None:
        """A huge malformed message does not flood the log."""
        with capture_logs() as logs:
            app, _ = app_with(FakeAri())
            app.handle("x" * 10_000)

        [entry] = logs
        assert len(entry["message"]) == 300


class TestActionFailures:
    """What the worker does when an action fails: the apology, then a release with failure; the CDR still follows."""

    async def test_failed_answer_hears_the_apology_is_released_with_failure_and_recorded_failed(self) -> None:
        refused = AriError("POST", f"{CALL}/answer", 500, "Internal Server Error")
        ari = FakeAri(failures={("POST", f"{CALL}/answer"): refused})
        with capture_logs() as logs:
            app, submitted = app_with(ari)
            feed(app, recorded(types=["StasisStart"]))
            await turn_until(lambda: len(ari.requests) == 3, "the apology after the failed answer")

            assert ari.requests == [ANSWER, PROGRESS, PLAY_APOLOGY]  # not the number's announcement: early media
            feed(app, [apology_finished()])
            await turn_until(lambda: len(ari.requests) == 4, "the hang-up after the apology")
            assert ari.requests == [ANSWER, PROGRESS, PLAY_APOLOGY, RELEASE_FAILURE]
            feed(app, recorded(types=["ChannelHangupRequest", "StasisEnd"]))
            await workers_done(app)

        [cdr] = submitted
        assert (cdr.call.disposition, cdr.call.answered_at, cdr.call.hangup_cause) == (Disposition.FAILED, None, 38)
        # Never answered: the customer's number, at no cost.
        assert (cdr.customer_id, cdr.price.billable_seconds, cdr.price.list_price_eur) == ("acme", 0, Decimal("0"))
        [failed] = [e for e in logs if e["event"] == "call.action_failed"]
        assert (failed["action"], failed["call_id"], failed["log_level"]) == ("Answer", CHANNEL, "error")

    async def test_action_raising_unexpectedly_plays_the_apology_releases_with_failure_and_the_cdr_is_submitted(
            self) -> None:
        """'Whatever happens, the call ends with exactly one CDR' (ari_app.core.flow), even after a bug of ours."""
        odd = ValueError("Expecting value: line 1 column 1 (char 0)")
        ari = FakeAri(failures_once={("POST", f"{CALL}/play"): odd})
        with capture_logs() as logs:
            app, submitted = app_with(ari)
            feed(app, recorded(types=["StasisStart", "ChannelStateChange"]))
            await turn_until(lambda: len(ari.requests) == 4, "the apology after the crashed play")

            assert ari.requests == [ANSWER, PLAY_HELLO, PROGRESS, PLAY_APOLOGY]
            feed(app, [apology_finished()])
            await turn_until(lambda: len(ari.requests) == 5, "the hang-up after the apology")
            assert ari.requests == [ANSWER, PLAY_HELLO, PROGRESS, PLAY_APOLOGY, RELEASE_FAILURE]
            feed(app, recorded(types=["StasisEnd"]))
            await workers_done(app)

        [cdr] = submitted
        assert (cdr.call.disposition, cdr.call.hangup_cause) == (Disposition.ANSWERED, 38)  # it was answered
        [crashed] = [e for e in logs if e["event"] == "call.action_crashed"]
        assert (crashed["action"], crashed["call_id"], crashed["log_level"], crashed["exc_info"]) == (
            "Play", CHANNEL, "error", True)
        assert not [e for e in logs if e["event"] in ("call.action_failed", "call.worker_crashed")]

    @pytest.mark.parametrize(
        "error", [AriError("POST", f"{CALL}/play", 500, "Internal Server Error"),
                  ValueError("Expecting value: line 1 column 1 (char 0)")],
        ids=["ari-error", "unexpected-error"],
    )
    async def test_failed_apology_releases_with_failure_at_once(self, error: Exception) -> None:
        """Every play fails, the apology's too: the release follows at once, no PlaybackFinished awaited."""
        ari = FakeAri(failures={("POST", f"{CALL}/play"): error})
        with capture_logs() as logs:
            app, submitted = app_with(ari)
            feed(app, recorded(types=["StasisStart", "ChannelStateChange"]))
            await turn_until(lambda: RELEASE_FAILURE in ari.requests, "the hang-up after the failed apology")

            assert ari.requests == [ANSWER, PLAY_HELLO, PROGRESS, PLAY_APOLOGY, RELEASE_FAILURE]
            feed(app, recorded(types=["StasisEnd"]))
            await workers_done(app)

        assert ari.requests.count(RELEASE_FAILURE) == 1
        [cdr] = submitted
        assert (cdr.call.disposition, cdr.call.hangup_cause) == (Disposition.ANSWERED, 38)  # it was answered
        failures = [e for e in logs if e["event"] in ("call.action_failed", "call.action_crashed")]
        assert [(e["action"], e["call_id"], e["log_level"]) for e in failures] == [("Play", CHANNEL, "error")] * 2
        assert not [e for e in logs if e["event"] == "call.worker_crashed"]

    async def test_failed_apology_on_an_unanswered_call_releases_with_failure_and_is_recorded_failed(self) -> None:
        """Neither the answer nor the apology's early media could be sent: released at once, nobody pays."""
        refused = AriError("POST", "", 500, "Internal Server Error")
        ari = FakeAri(failures={("POST", f"{CALL}/answer"): refused, ("POST", f"{CALL}/progress"): refused})
        app, submitted = app_with(ari)

        feed(app, recorded(types=["StasisStart"]))
        await turn_until(lambda: RELEASE_FAILURE in ari.requests, "the hang-up after the failed apology")
        assert ari.requests == [ANSWER, PROGRESS, RELEASE_FAILURE]  # the apology's play is not even tried
        feed(app, recorded(types=["ChannelHangupRequest", "StasisEnd"]))
        await workers_done(app)

        [cdr] = submitted
        assert (cdr.call.disposition, cdr.call.answered_at, cdr.call.hangup_cause) == (Disposition.FAILED, None, 38)
        assert cdr.price.billable_seconds == 0

    async def test_channel_gone_on_play_stops_quietly_and_cdr_is_still_submitted(self) -> None:
        """The caller hung up just as the announcement started: no hang-up sent, one CDR when StasisEnd arrives."""
        gone = ChannelGone("POST", f"{CALL}/play", 404, "Channel not found")
        ari = FakeAri(failures={("POST", f"{CALL}/play"): gone})
        with capture_logs() as logs:
            app, submitted = app_with(ari)
            feed(app, recorded(types=["StasisStart", "ChannelStateChange"]))
            await turn_until(lambda: len(ari.requests) == 2, "the play request")
            feed(app, recorded(types=["StasisEnd"]))
            await workers_done(app)

        assert ari.requests == [ANSWER, PLAY_HELLO]
        assert dispositions(submitted) == ["answered"]
        [gone_entry] = [e for e in logs if e["event"] == "call.gone_before_action"]
        assert (gone_entry["action"], gone_entry["log_level"]) == ("Play", "info")
        assert not [e for e in logs if e["log_level"] in ("error", "critical")]

    async def test_failed_hangup_is_not_retried_once_the_call_has_left_and_the_cdr_follows(self) -> None:
        delete = ("DELETE", CALL)
        ari = FakeAri(failures={delete: AriError("DELETE", CALL, 500, "boom")})
        app, submitted = app_with(ari)

        feed(app, recorded())
        await workers_done(app)

        assert [r[:2] for r in ari.requests].count(delete) == 1
        assert dispositions(submitted) == ["answered"]


class TestCdrSubmission:
    """At call end App prices the call and submits it; what cannot be priced is submitted all the same."""

    async def test_call_end_is_logged_with_its_price(self) -> None:
        with capture_logs() as logs:
            app, _ = app_with(FakeAri())
            feed(app, recorded())
            await workers_done(app)

        [ended] = [e for e in logs if e["event"] == "call.ended"]
        assert {k: ended[k] for k in ("call_id", "log_level", "disposition", "hangup_cause", "billable_seconds",
                                      "list_price_eur")} == {
            "call_id": CHANNEL, "log_level": "info", "disposition": "answered", "hangup_cause": 16,
            "billable_seconds": 1, "list_price_eur": "0.0412"}
        assert not [e for e in logs if e["event"] == "cdr.not_priced"]

    async def test_call_that_cannot_be_priced_is_logged_and_submitted_with_the_reason(self) -> None:
        """Rates that start after the call: the CDR keeps the call, unpriced, with why; billing can re-rate it."""
        ari = FakeAri()
        with capture_logs() as logs:
            app, submitted = app_with(ari, rates=RateTable((TrafficRates(valid_from=date(2027, 1, 1)),)))
            feed(app, recorded())
            await workers_done(app)

        [cdr] = submitted
        assert (cdr.call.call_id, cdr.call.disposition, cdr.customer_id, cdr.number_type) == (
            CHANNEL, Disposition.ANSWERED, "acme", NumberType.LOCAL)
        assert "2027-01-01" in (cdr.rating_error or "")
        assert (cdr.price.billable_seconds, cdr.price.list_price_eur) == (0, Decimal("0"))
        [not_priced] = [e for e in logs if e["event"] == "cdr.not_priced"]
        assert (not_priced["call_id"], not_priced["log_level"], not_priced["error"]) == (
            CHANNEL, "error", cdr.rating_error)
        assert [e["event"] for e in logs if e["event"] in ("cdr.not_priced", "call.ended")] == [
            "cdr.not_priced", "call.ended"]

    async def test_writer_that_raises_is_logged_and_the_worker_ends_cleanly(self) -> None:
        """submit_cdr should never raise; if it does, the log says so and no exception escapes the worker."""
        def refuse(cdr: RatedCdr) -> None:
            raise OSError("spool directory is full")

        with capture_logs() as logs:
            app = App(FakeAri(), CONFIG, DEFAULT_RATES, refuse)  # type: ignore[arg-type]
            feed(app, recorded())
            await workers_done(app)

        [crashed] = [e for e in logs if e["event"] == "call.action_crashed"]
        assert (crashed["action"], crashed["call_id"]) == ("WriteCdr", CHANNEL)
        assert not [e for e in logs if e["event"] == "call.worker_crashed"]


class TestRun:
    """App.run against a fake ARI whose event stream is the recorded call."""

    class StreamingAri(FakeAri):
        def __init__(self, version: str, messages: list[str], stop: asyncio.Event) -> None:
            super().__init__(answers={("GET", "/asterisk/info"): {"system": {"version": version}}})
            self.messages = messages
            self.stop = stop

        async def events(self, on_connect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
            if on_connect is not None:  # as AriClient: once the websocket is up, before any event
                await on_connect()
            for m in self.messages:
                yield m
            self.stop.set()  # the operator stops fairline once the stream has been read

    async def test_run_checks_asterisk_then_handles_the_stream_and_drains(self) -> None:
        stop = asyncio.Event()
        ari = self.StreamingAri("22.10.1+dfsg+~cs6.17.60671434-1", recorded(), stop)
        app, submitted = app_with(ari)

        with capture_logs() as logs:
            await asyncio.wait_for(app.run(stop), timeout=5)

        # On connecting, every new call is let in again, whatever share an earlier fairline left (overload).
        admit_all = ("POST", "/asterisk/variable", {"variable": "FAIRLINE_ADMIT", "value": "100"})
        assert ari.requests == [ASTERISK_INFO, EVENT_FILTER, admit_all, *ADOPTION, ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        assert dispositions(submitted) == ["answered"]
        [connected] = [e for e in logs if e["event"] == "ari.connected"]
        assert (connected["asterisk_version"], connected["app"]) == ("22.10.1+dfsg+~cs6.17.60671434-1", "fairline")

    @pytest.mark.parametrize("version", ["certified-22.8-cert4", "23.0.0"])
    async def test_run_accepts_asterisk_22_and_later(self, version: str) -> None:
        stop = asyncio.Event()
        app, submitted = app_with(self.StreamingAri(version, recorded(), stop))

        await asyncio.wait_for(app.run(stop), timeout=5)

        assert dispositions(submitted) == ["answered"]

    @pytest.mark.parametrize("version", ["21.5.0", "18.9-cert4", "certified-18.9-cert4", "GIT-master-abc123", ""])
    async def test_run_refuses_an_asterisk_older_than_22_or_unknown(self, version: str) -> None:
        stop = asyncio.Event()
        ari = self.StreamingAri(version, recorded(), stop)
        app, _ = app_with(ari)

        with pytest.raises(UnsupportedAsterisk):
            await app.run(stop)

        assert [r[1] for r in ari.requests] == ["/asterisk/info"]

    async def test_run_gives_up_at_once_on_a_rejected_password(self) -> None:
        """Retrying with the same password cannot help."""
        stop = asyncio.Event()
        ari = self.StreamingAri("22.0.0", [], stop)
        ari.failures[("GET", "/asterisk/info")] = AriUnauthorized("GET", "/asterisk/info", 401, "rejected")
        app, _ = app_with(ari)

        with pytest.raises(AriUnauthorized):
            await app.run(stop)

    async def test_event_filter_is_sent_once_connected_with_the_event_types_fairline_uses(self) -> None:
        stop = asyncio.Event()
        ari = self.StreamingAri("22.0.0", recorded(), stop)
        app, submitted = app_with(ari)

        await asyncio.wait_for(app.run(stop), timeout=5)

        assert ari.requests[:2] == [ASTERISK_INFO, EVENT_FILTER]  # before any event is handled
        body = ari.bodies[EVENT_FILTER[:2]]
        assert sorted(t["type"] for t in body["allowed"]) == sorted([
            "StasisStart", "StasisEnd", "ChannelStateChange", "ChannelHangupRequest", "ChannelDestroyed",
            "PlaybackFinished", "Dial", "ChannelDtmfReceived", "RecordingFinished", "RecordingFailed", "ChannelVarset"])
        assert (len(body["allowed"]), body["disallowed"]) == (11, [])

    async def test_refused_event_filter_is_logged_and_calls_are_still_handled(self) -> None:
        """The filter only spares Asterisk work: without it fairline ignores the extra events."""
        stop = asyncio.Event()
        ari = self.StreamingAri("22.0.0", recorded(), stop)
        ari.failures[EVENT_FILTER[:2]] = AriError("PUT", EVENT_FILTER[1], 400, "Invalid filter")
        app, submitted = app_with(ari)

        with capture_logs() as logs:
            await asyncio.wait_for(app.run(stop), timeout=5)

        [refused] = [e for e in logs if e["event"] == "ari.event_filter_failed"]
        assert refused["log_level"] == "warning"
        assert dispositions(submitted) == ["answered"]

    async def test_call_whose_end_was_missed_while_disconnected_still_gets_its_cdr(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Asterisk restarts during an answered call: after reconnecting, the call is gone and must be billed."""
        monkeypatch.setattr(runtime_session, "backoff_delays", lambda: [0.0])  # reconnect at once, no waiting
        stop = asyncio.Event()

        class RestartingAri(FakeAri):
            """First connection: the call starts and is answered, then Asterisk goes away. Second: no channels."""

            connections = 0

            async def events(self, on_connect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
                self.connections += 1
                if on_connect is not None:
                    await on_connect()
                if self.connections == 1:
                    for m in recorded(types=["StasisStart", "ChannelStateChange"]):
                        yield m
                    await turn_until(lambda: PLAY_HELLO in self.requests, "the answer and play requests")
                else:
                    stop.set()

        ari = RestartingAri(
            answers={("GET", "/asterisk/info"): {"system": {"version": "22.0.0"}}, ("GET", "/channels"): []},
            failures={("GET", CALL): ChannelGone("GET", CALL, 404, "Channel not found")},
        )
        app, submitted = app_with(ari)

        await asyncio.wait_for(app.run(stop), timeout=5)

        assert ari.connections == 2
        assert [(c.call.call_id, c.customer_id) for c in submitted] == [(CHANNEL, "acme")]
        assert ari.requests.count(EVENT_FILTER) == 2  # a restarted Asterisk has forgotten the filter

    async def test_routed_call_whose_end_was_missed_while_disconnected_still_gets_its_cdr(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(runtime_session, "backoff_delays", lambda: [0.0])
        stop = asyncio.Event()

        class RestartingAri(FakeAri):
            """First connection: the call is handed to Dial(), then Asterisk goes away. Second: the call is gone."""

            connections = 0

            async def events(self, on_connect: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[str]:
                self.connections += 1
                if on_connect is not None:
                    await on_connect()
                if self.connections == 1:
                    for m in recorded(types=["StasisStart"]):
                        yield m
                    await turn_until(lambda: CONTINUE in self.requests, "the call handed to Dial()")
                else:
                    stop.set()

        ari = RestartingAri(answers={("GET", "/asterisk/info"): {"system": {"version": "22.0.0"}}},
                            failures={("GET", CALL): ChannelGone("GET", CALL, 404, "Channel not found")})
        app, submitted = app_with(ari, config=ROUTED_CONFIG)

        await asyncio.wait_for(app.run(stop), timeout=5)

        assert ari.connections == 2
        assert [c.call.call_id for c in submitted] == [CHANNEL]


class CannedSession:
    """Stands in for AriClient's aiohttp session: every request gets the same status and body."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        self.sent: Any = None  # the `json` of the last request

    def request(self, method: str, url: str, params: Any = None, json: Any = None) -> "CannedSession":
        self.sent = json
        return self

    async def __aenter__(self) -> "CannedSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def text(self) -> str:
        return self.body


class TestAriClientAnswers:
    """AriClient.request, as the runtime relies on it: a decoded answer, or an AriError it can act on."""

    @staticmethod
    async def answer(status: int, body: str, path: str = "/asterisk/info") -> Any:
        client = AriClient("http://127.0.0.1:8088", "fairline", "secret", "fairline")
        client._session = CannedSession(status, body)  # type: ignore[assignment]
        return await client.request("GET", path)

    @pytest.mark.parametrize(
        ("status", "body", "decoded"),
        [(200, '{"system": {"version": "22.0.0"}}', {"system": {"version": "22.0.0"}}), (204, "", None),
         (200, "[]", [])],
        ids=["json-object", "no-content", "json-list"],
    )
    async def test_json_answer_is_decoded(self, status: int, body: str, decoded: Any) -> None:
        assert await self.answer(status, body) == decoded

    @pytest.mark.parametrize("body", ["<html>It works!</html>", "OK", "{truncated"])
    async def test_answer_that_is_not_json_is_an_ari_error(self, body: str) -> None:
        """A proxy's page or a cut-off body: the worker sees an AriError (releases the call), not a ValueError."""
        with pytest.raises(AriError) as caught:
            await self.answer(200, body)

        assert (caught.value.status, caught.value.path) == (200, "/asterisk/info")
        assert "not JSON" in caught.value.detail

    @pytest.mark.parametrize(
        ("status", "path", "error"),
        [(404, CALL, ChannelGone), (401, "/asterisk/info", AriUnauthorized), (500, CALL, AriError),
         (404, "/asterisk/info", AriError)],
        ids=["channel-gone", "unauthorized", "server-error", "404-not-on-a-channel"],
    )
    async def test_error_status_is_translated_by_whose_fault(self, status: int, path: str,
                                                            error: type[AriError]) -> None:
        with pytest.raises(AriError) as caught:
            await self.answer(status, '{"message": "Channel not found"}', path)

        assert type(caught.value) is error
        assert caught.value.status == status


class TestAriClientBody:
    async def test_body_is_sent_as_json_and_none_sends_no_body(self) -> None:
        client = AriClient("http://127.0.0.1:8088", "fairline", "secret", "fairline")
        session = CannedSession(204, "")
        client._session = session  # type: ignore[assignment]

        await client.request("PUT", "/applications/fairline/eventFilter", body={"allowed": [], "disallowed": []})
        assert session.sent == {"allowed": [], "disallowed": []}
        await client.request("POST", f"{CALL}/answer")
        assert session.sent is None


class TestAsteriskMajor:
    """The major version from ARI's system.version, to refuse an Asterisk older than 22."""

    @pytest.mark.parametrize(
        ("version", "major"),
        [("22.10.1+dfsg+~cs6.17.60671434-1", 22), ("22.0.0", 22), ("23.1.0-rc1", 23), ("20.5.2", 20),
         (" 22.1.0", 22), ("certified-22.8-cert4", 22), ("certified/18.9-cert4", 18)],
    )
    def test_major_is_read_from_the_version_string(self, version: str, major: int) -> None:
        assert asterisk_major(version) == major

    @pytest.mark.parametrize("version", ["", "garbage", "GIT-master-abc123", "22", "v22.1.0", "twenty-two.1",
                                         "certified-"])
    def test_unreadable_version_is_unsupported(self, version: str) -> None:
        with pytest.raises(UnsupportedAsterisk, match="cannot read Asterisk's version"):
            asterisk_major(version)


class TestBackoffDelays:
    """Reconnect delays (before jitter): doubling, capped at ten seconds."""

    def test_default_delays_double_from_half_a_second_up_to_ten(self) -> None:
        assert backoff_delays() == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]

    @pytest.mark.parametrize(
        ("first", "cap", "delays"),
        [(1.0, 10.0, [1.0, 2.0, 4.0, 8.0, 10.0]), (1.0, 8.0, [1.0, 2.0, 4.0, 8.0]), (10.0, 10.0, [10.0])],
        ids=["ends-on-cap", "cap-is-a-power", "first-is-cap"],
    )
    def test_delays_double_and_never_exceed_the_cap(self, first: float, cap: float, delays: list[float]) -> None:
        assert backoff_delays(first, cap) == delays

    @pytest.mark.parametrize(
        ("first", "cap"),
        [(0, 10.0), (-1.0, 10.0), (30.0, 10.0), (float("nan"), 10.0)],
        ids=["first-zero", "first-negative", "first-above-cap", "first-nan"],
    )
    def test_delays_that_would_never_grow_or_exceed_the_cap_are_refused(self, first: float, cap: float) -> None:
        """A zero first delay would double forever without reaching the cap (and reconnect in a busy loop)."""
        with pytest.raises(ValueError, match="expected 0 < first <= cap"):
            backoff_delays(first, cap)


class TestReleaseRetry:
    async def test_a_failed_hangup_is_retried_while_the_caller_is_still_there(self) -> None:
        """The caller must not stay in the app in silence because one DELETE failed."""
        delete = ("DELETE", CALL)
        ari = FakeAri(failures_once={delete: AriError("DELETE", CALL, 500, "boom")})
        app, submitted = app_with(ari)
        app.release_retry_delays = (0.0, 0.0)
        events = [line for line in recorded() if json.loads(line)["type"] != "StasisEnd"]
        feed(app, events)
        await turn_until(lambda: [r[:2] for r in ari.requests].count(delete) == 2, "the retried release")
        assert [r[:2] for r in ari.requests].count(delete) == 2
