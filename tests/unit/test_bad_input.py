"""Bad input at the unit level: each gets a clear error or a clean call outcome, never a crash (issue 7).

ARI events go through App with the fake ARI of test_runtime.py; configurations through `config.load`.
What a user would notice: a call left in silence or without its CDR, a CDR billing cannot store,
a traceback instead of `FILE:LINE: KEY: expected`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ari_app.ari import event_parser
from ari_app.core import events
from ari_app.config.yaml_loader import load
from ari_app.errors import ConfigError
from rating.core.cdr import Disposition, QueueOutcome, RatedCdr
from tests.unit.test_fuzz_events import ANNOUNCED, QUEUED, ROUTED, channel, config, event, queue_app, settle
from tests.unit.test_queue_runtime import Timers
from tests.unit.test_runtime import (
    ANSWER,
    CALL,
    CHANNEL,
    PLAY_HELLO,
    RELEASE_NORMAL,
    FakeAri,
    app_with,
    feed,
    recorded,
    turn_until,
    workers_done,
)

T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


def with_caller(messages: list[str], number: object) -> list[str]:
    """The recorded call's messages with the caller id number Asterisk reports set to `number`."""
    out = []
    for message in messages:
        data = json.loads(message)
        if "channel" in data:
            data["channel"]["caller"]["number"] = number
        out.append(json.dumps(data))
    return out


def with_field(message: str, **fields: Any) -> str:
    return json.dumps({**json.loads(message), **fields})


async def one_recorded_call(messages: list[str]) -> tuple[FakeAri, list[RatedCdr], list[MutableMapping[str, Any]]]:
    ari = FakeAri()
    with capture_logs() as logs:
        app, submitted = app_with(ari)
        feed(app, messages)
        await workers_done(app)
    return ari, submitted, logs


# ---- malformed and unknown ARI events


class TestMalformedEvents:
    async def test_deeply_nested_message_is_logged_and_skipped_and_the_call_goes_on(self) -> None:
        """JSON nested 100,000 deep overflowed Python's stack: that RecursionError escaped handle() and App.run."""
        start, *rest = recorded()
        ari, submitted, logs = await one_recorded_call([start, "[" * 100_000, '{"a":' * 50_000, *rest])

        assert [e["error"] for e in logs if e["event"] == "ari.bad_event"] == ["not JSON: nested too deeply"] * 2
        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        assert [c.call.disposition for c in submitted] == [Disposition.ANSWERED]

    async def test_unknown_and_malformed_events_between_a_calls_events_change_nothing(self) -> None:
        start, *rest = recorded()
        noise = [
            json.dumps({"type": "ChannelTalkingStarted", "channel": json.loads(start)["channel"]}),
            json.dumps({"type": "BridgeCreated", "bridge": {"id": "b1"}}),
            json.dumps({"type": None}),
            json.dumps({"type": "StasisEnd", "timestamp": "2026-11-25T13:17:15.9+0000", "channel": ["not", "a"]}),
            json.dumps({"type": "ChannelDestroyed", "timestamp": "soon", "channel": {"id": CHANNEL}}),
            json.dumps({"type": "PlaybackFinished", "playback": {"id": 7, "target_uri": f"channel:{CHANNEL}"}}),
            with_field(rest[-1], timestamp="2026-02-30T00:00:00+0000"),  # a StasisEnd on a day that does not exist
            "null", "", "\x00", "🙂",
        ]
        ari, submitted, logs = await one_recorded_call([start, *noise, *rest])

        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        assert [(c.call.call_id, c.call.disposition) for c in submitted] == [(CHANNEL, Disposition.ANSWERED)]
        assert not [e for e in logs if e["event"] in ("call.handler_crashed", "call.worker_crashed")]

    @pytest.mark.parametrize("timestamp", ["0001-01-01T00:30:00+0100", "9999-12-31T23:59:59-0100"])
    def test_timestamp_that_is_no_instant_in_utc_is_a_bad_event(self, timestamp: str) -> None:
        """An offset that pushes the instant outside what a datetime holds raised OverflowError downstream."""
        with pytest.raises(event_parser.BadEvent, match="timestamp out of range"):
            event_parser.parse(with_field(recorded(types=["StasisEnd"])[0], timestamp=timestamp))

    def test_timestamps_are_in_utc_whatever_offset_asterisk_wrote(self) -> None:
        parsed = event_parser.parse(with_field(recorded(types=["StasisEnd"])[0], timestamp="2026-11-25T02:17:16.308-1100"))

        assert parsed == events.CallLeft(CHANNEL, datetime(2026, 11, 25, 13, 17, 16, 308000, tzinfo=UTC))
        assert isinstance(parsed, events.CallLeft) and parsed.at.tzinfo is UTC

    @pytest.mark.parametrize(("cause", "stored"), [(17, 17), (0, 0), (127, 127), (128, None), (2**40, None),
                                                   (-1, None), (True, None), (16.0, None)],
                             ids=["busy", "zero", "127", "128", "2**40", "negative", "true", "float"])
    async def test_hangup_cause_outside_q850_is_stored_as_unknown(self, cause: object, stored: int | None) -> None:
        """The CDR column is an integer: 2**40 there made PostgreSQL refuse the whole CDR."""
        start, up, *_ = recorded(types=["StasisStart", "ChannelStateChange"])
        hangup = json.loads(recorded(types=["ChannelHangupRequest"])[0])
        del hangup["soft"]  # the caller's BYE
        end = recorded(types=["StasisEnd"])[0]
        _, submitted, _ = await one_recorded_call([start, up, json.dumps({**hangup, "cause": cause}), end])

        [cdr] = submitted
        assert cdr.call.hangup_cause == stored


# ---- caller ids: garbage, overlong, withheld


class TestCallerIds:
    @pytest.mark.parametrize(("number", "stored"), [
        ("+31612345678", "+31612345678"),
        ("+3161234\x005678", "+31612345678"),  # a NUL: PostgreSQL refuses text with one, and the CDR with it
        ("+31612345678\r\n2026-11-25 [info] call.ended", "+316123456782026-11-25 [info] call.ended"),
        ("\u202e87654321316+", "87654321316+"),  # a right-to-left override makes it read as +31612345678
        ("\ud800+31612345678", "+31612345678"),  # a lone surrogate: not encodable as UTF-8
        ("9" * 10_000, "9" * event_parser.MAX_NUMBER_CHARS),
        ("  +31612345678  ", "+31612345678"),
        ("", None), (" Anonymous ", None), ("RESTRICTED", None), ("\x00", None),
        (31612345678, None), (None, None), (["+31612345678"], None),
    ], ids=["plain", "nul", "line-break", "bidi-override", "lone-surrogate", "overlong", "blanks", "empty",
            "anonymous", "restricted", "only-a-nul", "a-number", "null", "a-list"])
    async def test_call_is_served_and_billed_with_a_caller_id_the_database_takes(
            self, number: object, stored: str | None) -> None:
        ari, submitted, _ = await one_recorded_call(with_caller(recorded(), number))

        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        [cdr] = submitted
        assert cdr.call.caller == stored
        (cdr.call.caller or "").encode("utf-8")  # raises on a lone surrogate

    async def test_queue_agents_are_shown_the_cleaned_caller_id(self) -> None:
        ari = FakeAri()
        app, submitted = queue_app(ari, config())
        app.queues.schedule = Timers()
        app.handle(json.dumps(event("StasisStart", T0, args=[],
                                    channel=channel("q1", T0, QUEUED, "+3161234\n5678\x00", "Ring"))))
        await turn_until(lambda: any(p == "/channels/q1/continue" for _, p, _ in ari.requests), "the Dial()")
        app.handle(json.dumps(event("StasisEnd", T0 + timedelta(seconds=1), channel=channel("q1", T0))))
        app.handle(json.dumps(event("StasisStart", T0 + timedelta(seconds=21), args=["dialed", "NOANSWER", QUEUED],
                                    channel=channel("q1", T0, QUEUED, "+3161234\n5678\x00", "Ring"))))
        await turn_until(lambda: any(p == "/channels" for _, p, _ in ari.requests), "the agents rung")

        shown = {params["callerId"] for method, path, params in ari.requests if path == "/channels" and params}
        assert shown == {"+31612345678"}


# ---- DIDs that are not E.164


class TestDids:
    @pytest.mark.parametrize(("did", "stored"), [
        ("0201234567", "0201234567"), ("s", "s"), ("", ""), ("+999", "+999"), ("abc", "abc"),
        ("+31209999999", "+31209999999"), ("9" * 300, "9" * event_parser.MAX_NUMBER_CHARS),
        ("+31209999999\x00", "+31209999999"),
    ], ids=["national-format", "s", "empty", "too-short", "letters", "not-served", "overlong", "nul"])
    async def test_did_not_served_hears_not_in_service_unanswered_and_is_billed_unallocated(
            self, did: str, stored: str) -> None:
        messages = [m for m in recorded(did=did, playback="noservice") if json.loads(m)["type"] != "ChannelStateChange"]
        ari, submitted, _ = await one_recorded_call(messages)

        assert ari.requests == [
            ("POST", f"{CALL}/progress", None),
            ("POST", f"{CALL}/play", {"media": "sound:ss-noservice", "playbackId": f"{CHANNEL}-noservice"}),
            ("DELETE", CALL, {"reason": "unallocated"}),
        ]
        [cdr] = submitted
        assert (cdr.call.did, cdr.call.disposition, cdr.call.answered_at, cdr.price.billable_seconds) == (
            stored, Disposition.UNALLOCATED, None, 0)

    async def test_did_with_spaces_is_the_served_number(self) -> None:
        ari, submitted, _ = await one_recorded_call(recorded(did="+31 20 123 4567"))

        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        [cdr] = submitted
        assert (cdr.call.did, cdr.customer_id) == ("+31201234567", "acme")


# ---- floods and bursts


class TestFloods:
    async def test_dtmf_flood_during_an_announcement_changes_nothing_for_the_call(self) -> None:
        """Ten thousand key presses: no request, no warning, and the call ends as it would have."""
        start, up, *rest = recorded()
        digit = json.loads(start)
        digit.update(type="ChannelDtmfReceived", duration_ms=40, args=None)
        flood = [json.dumps({**digit, "digit": "0123456789*#"[i % 12],
                             "timestamp": f"2026-11-25T13:17:15.{863 + i % 100:03d}+0000"}) for i in range(10_000)]
        ari, submitted, logs = await one_recorded_call([start, up, *flood, *rest])

        assert ari.requests == [ANSWER, PLAY_HELLO, RELEASE_NORMAL]
        assert [c.call.disposition for c in submitted] == [Disposition.ANSWERED]
        assert not [e for e in logs if e["log_level"] in ("warning", "error")]

    async def test_five_hundred_callers_hanging_up_at_once_get_five_hundred_cdrs_each_once(self) -> None:
        """Announced, ringing and queued callers all hang up in one burst of events, in no particular order."""
        with capture_logs():  # 3,000 log lines, kept out of the test's output
            await self._five_hundred_callers_hang_up_at_once()

    async def _five_hundred_callers_hang_up_at_once(self) -> None:
        ari = FakeAri()
        app, submitted = queue_app(ari, config())
        app.queues.schedule = Timers()
        announced, ringing, queued = ([f"{kind}{i}" for i in range(n)] for kind, n in (("a", 200), ("r", 150),
                                                                                        ("q", 150)))
        did = {**dict.fromkeys(announced, ANNOUNCED), **dict.fromkeys(ringing, ROUTED),
               **dict.fromkeys(queued, QUEUED)}
        at = T0

        def send(kind: str, call_id: str, **fields: Any) -> None:
            app.handle(json.dumps(event(kind, at, channel=channel(call_id, T0, did[call_id]), **fields)))

        def asked(call_id: str, what: str) -> bool:
            return any(path == f"/channels/{call_id}/{what}" for _, path, _ in ari.requests)

        for call_id in did:
            app.handle(json.dumps(event("StasisStart", at, args=[],
                                        channel=channel(call_id, T0, did[call_id], "+31612345678", "Ring"))))
        await turn_until(lambda: all(asked(c, "play") for c in announced) and all(
            asked(c, "continue") for c in [*ringing, *queued]), "every call's first requests", turns=500)
        at += timedelta(seconds=1)
        for call_id in [*ringing, *queued]:
            send("StasisEnd", call_id)  # off to the dialplan's Dial()
        at += timedelta(seconds=20)
        for call_id in queued:  # nobody answered: into the queue
            app.handle(json.dumps(event("StasisStart", at, args=["dialed", "NOANSWER", QUEUED],
                                        channel=channel(call_id, T0, QUEUED, "+31612345678", "Ring"))))
        await turn_until(lambda: all(asked(c, "moh") for c in queued), "every queued caller's music", turns=500)
        for call_id in [*announced, *queued]:
            send("ChannelStateChange", call_id, **{})
        await asyncio.sleep(0)

        at += timedelta(seconds=5)
        burst = list(did)
        random.Random(7).shuffle(burst)
        for call_id in burst:
            send("ChannelHangupRequest", call_id, cause=16)
            if call_id not in ringing:
                send("StasisEnd", call_id)
            send("ChannelDestroyed", call_id, cause=16)
        for method, path, params in list(ari.requests):  # the agents rung for them, hung up by fairline
            if (method, path) == ("POST", "/channels") and params is not None:
                leg = channel(params["channelId"], T0)
                app.handle(json.dumps(event("ChannelDestroyed", at, cause=16, channel=leg)))
        await settle(app)

        assert Counter(c.call.call_id for c in submitted) == Counter(list(did))  # 500, each once
        outcome = {c.call.call_id: (c.call.disposition, tuple(v.outcome for v in c.call.queue_visits))
                   for c in submitted}
        assert Counter(outcome.values()) == {(Disposition.ANSWERED, ()): 200, (Disposition.ABANDONED, ()): 150,
                                             (Disposition.ANSWERED, (QueueOutcome.ABANDONED,)): 150}
        assert app.calls == {} and app.queues.legs == {}
        assert all(not state.waiting for state in app.queues.states.values())


# ---- bugs found by these tests elsewhere than in the parser (fixed)


class TestCdrEvenWhenPricingFails:
    async def test_call_whose_pricing_raises_is_still_submitted_unpriced(self) -> None:
        """'Whatever happens, the call ends with exactly one CDR': an exception while pricing loses it."""
        messages = []
        for message in recorded():
            data = json.loads(message)
            data["timestamp"] = "9999-12-31T23:59:59.000+0000"
            if "channel" in data:
                data["channel"]["creationtime"] = "9999-12-31T23:59:58.000+0000"
            messages.append(json.dumps(data))
        _, submitted, logs = await one_recorded_call(messages)

        assert [c.call.call_id for c in submitted] == [CHANNEL]
        assert not [e for e in logs if e["event"] == "call.action_crashed"]


# ---- configuration


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "fairline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path)
    return caught.value.problems


ACME = 'customers: [{id: acme, name: Acme BV}]\nnumbers: []\n'


class TestConfigAttacks:
    def test_yaml_that_multiplies_through_aliases_is_refused_at_once(self, tmp_path: Path) -> None:
        """'Billion laughs': nine levels of nine aliases; the loader never expands them."""
        levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"] + [
            f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
        found = problems_of(tmp_path, "\n".join(levels) + "\n" + ACME.replace("numbers: []", "numbers: *l8"))

        assert len(found) == 9 + 9  # nine unknown top-level keys, nine entries of numbers that are no mapping
        assert all(p.startswith(str(tmp_path)) for p in found)

    def test_python_tags_are_never_run_and_are_refused(self, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        found = problems_of(tmp_path, 'customers: [{id: acme, name: Acme BV}]\n'
                                      f'numbers: !!python/object/apply:os.system ["touch {marker}"]\n')

        assert not marker.exists()
        assert found == [f"{tmp_path / 'fairline.yaml'}:2: numbers[0]: expected a mapping with 'number', "
                         "'customer' and 'type'"]

    def test_deeply_nested_yaml_is_refused_with_a_problem_not_a_traceback(self, tmp_path: Path) -> None:
        text = ACME + "queues:\n" + "".join("  " * (i + 1) + "-\n" for i in range(1000))

        [problem] = problems_of(tmp_path, text)

        assert problem.startswith(f"{tmp_path / 'fairline.yaml'}:")

    def test_control_character_is_refused_on_its_line(self, tmp_path: Path) -> None:
        [problem] = problems_of(tmp_path, ACME + "queues: [\x07]\n")

        assert problem.startswith(f"{tmp_path / 'fairline.yaml'}:3: "), problem
        assert "\n" not in problem

    def test_unknown_key_with_a_line_break_is_one_line_of_the_report(self, tmp_path: Path) -> None:
        [problem] = problems_of(tmp_path, ACME + '"colour\\nfairline.yaml:1: customers": red\n')

        assert "\n" not in problem, problem

    def test_queue_wait_of_millions_of_seconds_cites_the_one_minute_policy(self, tmp_path: Path) -> None:
        text = ACME + ('queues:\n  - name: support\n    customer: acme\n    agents: ["+31612340071"]\n'
                       "    max_wait_seconds: 9999999\n")

        [problem] = problems_of(tmp_path, text)

        assert problem.startswith(f"{tmp_path / 'fairline.yaml'}:7: queues[0].max_wait_seconds: ")
        assert "more than one minute" in problem, problem
