"""Event handling under fuzzing: no exception escapes `App.handle`, and no call is left without its one CDR.

Two kinds of input. Garbage: random and mutated ARI messages, which must be logged and skipped
(or, when they happen to be valid, handled) without a crash. And Asterisk's own behaviour, at
random: calls to announcement, routed and queued numbers, with callers who hang up at any moment,
targets and agents who answer or not, REST requests that fail, timers that fire, duplicates and
unknown events in between. Whatever the order, once Asterisk has destroyed a caller's channel,
billing has exactly one CDR for that call, and a CDR the database would take.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from functools import partial
import json
import tempfile
import typing
import unicodedata
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event as statistic, given, note, settings
from hypothesis import strategies as st
import structlog
from structlog.testing import capture_logs

from ari_app.ari import event_parser
from ari_app.core import events, flow
from ari_app.config.yaml_loader import load
from ari_app.core.model import Config
from ari_app.errors import AriError, ChannelGone
from ari_app.runtime.app import App
from rating.core.cdr import RatedCdr
from rating.core.tariff import DEFAULT_RATES
from tests.unit.test_queue_runtime import Timers
from tests.unit.test_runtime import FakeAri, recorded, turn_until

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANNOUNCED = "+31201234567"  # answered, hears hello-world, released
QUEUED = "+31201234568"  # rings a mobile, then waits in queue support
FORWARDS = "+31201234569"  # rings a mobile, then goes on with QUEUED's route
ROUTED = "+31201234570"  # rings two mobiles one after the other, then hears that nobody is available
TO_SALES = "+31201234571"  # rings a mobile, then waits in queue sales (whose agent also serves support)
DIDS = [ANNOUNCED, QUEUED, QUEUED, FORWARDS, ROUTED, TO_SALES, TO_SALES,  # the queued ones have the most to go through
        "+31209999999", "0201234567", "s", "", "+31 20 123 4567"]

CONFIG_YAML = f"""\
customers: [{{id: acme, name: Acme BV}}]
numbers:
  - {{number: "{ANNOUNCED}", customer: acme, type: local, announcement: hello-world}}
  - number: "{QUEUED}"
    customer: acme
    type: local
    route: {{targets: ["+31612345601"], no_answer: {{queue: support}}}}
  - number: "{FORWARDS}"
    customer: acme
    type: local
    route: {{targets: ["+31612345603"], no_answer: {{number: "{QUEUED}"}}}}
  - number: "{ROUTED}"
    customer: acme
    type: local
    route: {{strategy: sequential, targets: ["+31612345604", "+31612345602"]}}
  - number: "{TO_SALES}"
    customer: acme
    type: local
    route: {{targets: ["+31612345605"], no_answer: {{queue: sales}}}}
queues:
  - name: support
    customer: acme
    agents: ["+31612345690", "+31612345691"]
    max_wait_seconds: 45
    overflow: {{number: "{ANNOUNCED}"}}
  - name: sales
    customer: acme
    agents: ["+31612345690"]
    strategy: roundrobin
    wrapup_seconds: 0
"""

# What the log says when a bug of ours, not the input, ended the handling of an event or an action.
CRASHES = {"call.handler_crashed", "call.worker_crashed", "call.action_crashed", "queue.timer_crashed"}

T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


@functools.cache
def config() -> Config:
    """Loaded once, as `fairline run` loads it (not a fixture: hypothesis would print all of it on a failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fairline.yaml"
        path.write_text(CONFIG_YAML, encoding="utf-8")
        return load(path)


def stamp(at: datetime) -> str:
    """As Asterisk writes it: 2026-11-25T13:00:00.123+0000."""
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}+0000"


TEMPLATE = json.loads(recorded(types=["StasisStart"])[0])


def channel(channel_id: str, at: datetime, did: str = "s", caller: object = "+31612345678",
            state: str = "Up") -> dict[str, Any]:
    """A channel object as Asterisk 22 sends it (the recorded one, with another id, DID, caller and state)."""
    ch: dict[str, Any] = copy.deepcopy(TEMPLATE["channel"])
    ch.update(id=channel_id, state=state, creationtime=stamp(at))
    ch["caller"]["number"] = caller
    ch["dialplan"]["exten"] = did
    return ch


def event(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": stamp(at), **fields, "asterisk_id": "02:fc:00:00:00:01",
            "application": "fairline"}


# ---- garbage: random JSON, and real events with parts removed, replaced or added


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)

KINDS = ["StasisStart", "StasisEnd", "ChannelStateChange", "ChannelHangupRequest", "ChannelDestroyed",
         "PlaybackFinished", "Dial", "ChannelDtmfReceived", "RecordingFinished", "RecordingFailed", "ChannelVarset",
         "BridgeCreated", "ApplicationReplaced"]


def templates(channel_id: str) -> list[dict[str, Any]]:
    """One well-formed message of each type fairline reads, about `channel_id`."""
    at = T0
    ch = channel(channel_id, at, did=ANNOUNCED, state="Ring")
    return [
        event("StasisStart", at, args=[], channel=ch),
        event("StasisStart", at, args=["dialed", "NOANSWER", QUEUED], channel=ch),
        event("StasisStart", at, args=["queue-agent"], channel=ch),
        event("ChannelStateChange", at, channel={**ch, "state": "Up"}),
        event("ChannelHangupRequest", at, cause=16, channel=ch),
        event("ChannelHangupRequest", at, cause=32, soft=True, channel=ch),
        event("StasisEnd", at, channel=ch),
        event("ChannelDestroyed", at, cause=16, cause_txt="Normal Clearing", channel=ch),
        event("PlaybackFinished", at, playback={"id": f"{channel_id}-announcement", "media_uri": "sound:x",
                                                "target_uri": f"channel:{channel_id}", "state": "done"}),
        event("Dial", at, dialstatus="", dialstring="+31612345601@carrier-out", caller=ch,
              peer={**ch, "id": f"{channel_id}-peer"}),
        event("Dial", at, dialstatus="ANSWER", dialstring="", caller=ch, peer={**ch, "id": f"{channel_id}-peer"}),
        event("ChannelDtmfReceived", at, digit="5", duration_ms=100, channel=ch),
        event("StasisStart", at, args=["recording"], channel={**ch, "id": f"{channel_id}-snoop"}),
        event("RecordingFinished", at, recording={"name": channel_id, "format": "wav", "state": "done"}),
        event("RecordingFailed", at, recording={"name": channel_id, "format": "wav", "state": "failed",
                                                "cause": "disk full"}),
    ]


@st.composite
def mutated(draw: st.DrawFn, channel_ids: list[str]) -> str:
    """A real message with one to three parts removed, replaced by any JSON, or added."""
    message = draw(st.sampled_from(templates(draw(st.sampled_from(channel_ids)))))
    for _ in range(draw(st.integers(1, 3))):
        node, path = message, []
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
            path.append(key)
            if not isinstance(node[key], dict):
                break
            node = node[key]
        parent = message
        for key in path[:-1]:
            parent = parent[key]
        if not path:
            message[draw(st.text(max_size=6))] = draw(JSON)
        elif draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(st.one_of(JSON, st.sampled_from(KINDS)))
    return json.dumps(message)


def garbage(channel_ids: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        JSON.map(json.dumps),
        st.builds(lambda kind, rest: json.dumps({"type": kind, **rest}), st.sampled_from(KINDS),
                  st.dictionaries(st.sampled_from(["channel", "timestamp", "args", "playback", "cause", "peer"]),
                                  JSON, max_size=4)),
        mutated(channel_ids),
        st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
        st.just('{"type": "StasisEnd", "channel": ' * 200 + "{}" + "}" * 200),
    )


GHOST_GARBAGE = garbage(["ghost"])  # built once: building it per draw costs more than the rest of a test
PARSED = typing.get_args(events.AriEvent)  # every kind of event the parser returns


class TestGarbage:
    @settings(FUZZ, max_examples=150)
    @given(garbage(["c1", "1795612635.0", ""]))
    def test_parse_returns_an_event_or_raises_bad_event(self, message: str) -> None:
        try:
            parsed = event_parser.parse(message)
        except event_parser.BadEvent:
            return
        assert isinstance(parsed, PARSED)

    @FUZZ
    @given(st.lists(garbage(["c1", "c2", "c1-agent-1"]), max_size=12))
    def test_handle_takes_any_messages_and_every_call_it_opened_ends_with_one_cdr(self, messages: list[str]) -> None:
        """Garbage is logged and skipped; what parses as a call is a call, ended by its channel's destruction."""
        async def scenario() -> tuple[Counter[str], list[RatedCdr], list[MutableMapping[str, Any]], App]:
            app, submitted = queue_app(FakeAri(), config())
            with capture_logs() as logs:
                for message in messages:
                    app.handle(message)
                await asyncio.sleep(0)
                for call_id in list(app.calls):  # Asterisk ends every channel sooner or later
                    app.handle(json.dumps(event("ChannelDestroyed", T0 + timedelta(hours=1), cause=16,
                                                channel=channel(call_id, T0))))
                await settle(app)
            opened = Counter(e["call_id"] for e in logs if e["event"] == "call.started")
            return opened, submitted, logs, app

        opened, submitted, logs, app = asyncio.run(scenario())

        assert [e["event"] for e in logs if e["event"] in CRASHES] == []
        assert Counter(c.call.call_id for c in submitted) == opened
        assert app.calls == {}


    def test_a_caller_whose_channel_id_looks_like_an_agent_leg_still_gets_its_cdr(self) -> None:
        """Found by the test above: caller `c1-agent-1` arrives, then caller `c1` goes into the support queue,
        whose first agent leg would be `c1-agent-1` too; that channel's destruction ends the caller's call."""
        async def scenario() -> tuple[list[RatedCdr], App]:
            app, submitted = queue_app(FakeAri(), config())
            app.handle(json.dumps(event("StasisStart", T0, args=[],
                                        channel=channel("c1-agent-1", T0, ANNOUNCED, state="Ring"))))
            app.handle(json.dumps(event("StasisStart", T0, args=["dialed", "NOANSWER", "+31201234568"],
                                        channel=channel("c1", T0, ANNOUNCED, state="Ring"))))
            await asyncio.sleep(0)
            for call_id in ("c1-agent-1", "c1"):
                app.handle(json.dumps(event("ChannelDestroyed", T0 + timedelta(hours=1), cause=16,
                                            channel=channel(call_id, T0))))
            await settle(app)
            return submitted, app

        submitted, app = asyncio.run(scenario())
        assert sorted(c.call.call_id for c in submitted) == ["c1", "c1-agent-1"]
        assert app.calls == {}


# ---- Asterisk at random: real calls, every ordering Asterisk could produce


@dataclass
class CallModel:
    """What Asterisk knows of one caller's channel, to send only events it could send."""

    channel_id: str
    did: str
    caller: object
    started: bool = False
    in_stasis: bool = False  # in the app (else in the dialplan's Dial(), once fairline sent it there)
    up: bool = False
    destroyed: bool = False
    dial_returns: int = 0  # Dial() outcomes sent back, one per /continue fairline asked for
    finished: set[str] = field(default_factory=set)  # playbacks whose PlaybackFinished was sent
    peers: list[str] = field(default_factory=list)  # outbound legs of the current Dial()


@dataclass
class LegModel:
    channel_id: str
    up: bool = False
    destroyed: bool = False


ERRORS: list[Callable[[str, str], Exception]] = [
    lambda method, path: AriError(method, path, 500, "Internal Server Error"),
    lambda method, path: AriError(method, path, None, "TimeoutError: "),  # what the client raises on a timeout
    lambda method, path: ChannelGone(method, path, 404, "Channel not found"),
]


class Asterisk:
    """Plays Asterisk's part for an App with a fake ARI: sends what Asterisk would, given what fairline asked for."""

    def __init__(self, app: App, ari: FakeAri, timers: Timers, data: st.DataObject) -> None:
        self.app, self.ari, self.timers, self.data = app, ari, timers, data
        self.now = T0
        self.calls: dict[str, CallModel] = {}
        self.legs: dict[str, LegModel] = {}
        app.queues.clock = lambda: self.now

    def later(self) -> datetime:
        """The time of the next event: Asterisk's clock only goes forward (by a fixed step: fewer draws, faster)."""
        self.now += timedelta(milliseconds=700)
        return self.now

    def send(self, message: dict[str, Any]) -> None:
        self.app.handle(json.dumps(message))

    def asked(self, method: str, path: str) -> list[dict[str, str] | None]:
        """The parameters of each request fairline made for (method, path) that Asterisk carried out."""
        if (method, path) in self.ari.failures:
            return []
        return [p for m, q, p in self.ari.requests if (m, q) == (method, path)]

    # ---- what can happen next

    def moves(self) -> list[tuple[str, Callable[[], None]]]:
        """What could happen next; what takes a call further is listed thrice, so that calls get far."""
        out: list[tuple[str, Callable[[], None]]] = []
        for call in self.calls.values():
            if call.destroyed:
                continue
            if not call.started:
                out += [(f"start {call.channel_id}", partial(self.start, call))] * 3
                continue
            path = f"/channels/{call.channel_id}"
            out.append((f"caller hangs up {call.channel_id}", partial(self.hang_up, call, soft=False)))
            out.append((f"dtmf {call.channel_id}", partial(self.dtmf, call)))
            if self.asked("DELETE", path):
                out += [(f"release carried out {call.channel_id}", partial(self.hang_up, call, soft=True))] * 3
            if call.in_stasis:
                for params in self.asked("POST", f"{path}/play"):
                    if params is not None and params["playbackId"] not in call.finished:
                        out += [(f"playback finished {params['playbackId']}",
                                 partial(self.playback_finished, call, params["playbackId"]))] * 3
                if len(self.asked("POST", f"{path}/continue")) > call.dial_returns:
                    out += [(f"to Dial() {call.channel_id}", partial(self.leave_for_dial, call))] * 3
            else:
                out.append((f"target rings {call.channel_id}", partial(self.target_rings, call)))
                if call.peers:
                    out.append((f"target answers {call.channel_id}", partial(self.target_answers, call)))
                out += [(f"Dial() returns {call.channel_id}", partial(self.dial_returns, call))] * 3
        for leg in self.legs.values():
            if leg.destroyed:
                continue
            if not leg.up:
                out += [(f"agent answers {leg.channel_id}", partial(self.agent_answers, leg))] * 3
            out.append((f"agent leg ends {leg.channel_id}", partial(self.leg_ends, leg)))
        for timer in self.timers.all:
            if not timer.cancelled:
                out.append(("timer fires", partial(self.fire, timer)))
        out.append(("garbage", lambda: self.app.handle(self.data.draw(GHOST_GARBAGE, label="garbage"))))
        return out

    def catch_up(self) -> None:
        """What Asterisk does at once for what fairline asked: a channel it answered is up."""
        for call in self.calls.values():
            if call.started and not call.destroyed and not call.up and self.asked(
                    "POST", f"/channels/{call.channel_id}/answer"):
                self.answer(call)
        self.originated()

    def originated(self) -> None:
        """Agent legs fairline asked for (and Asterisk created)."""
        for params in self.asked("POST", "/channels"):
            if params is not None and params["channelId"] not in self.legs:
                self.legs[params["channelId"]] = LegModel(params["channelId"])

    # ---- what Asterisk sends

    def start(self, call: CallModel) -> None:
        at = self.later()
        call.started = call.in_stasis = True
        self.send(event("StasisStart", at, args=[],
                        channel=channel(call.channel_id, at - timedelta(milliseconds=1), call.did, call.caller,
                                        state="Ring")))

    def dtmf(self, call: CallModel) -> None:
        self.send(event("ChannelDtmfReceived", self.later(), digit=self.data.draw(st.sampled_from("0123456789*#")),
                        duration_ms=80, channel=channel(call.channel_id, T0)))

    def answer(self, call: CallModel) -> None:
        call.up = True
        self.send(event("ChannelStateChange", self.later(), channel=channel(call.channel_id, T0, state="Up")))

    def playback_finished(self, call: CallModel, playback_id: str) -> None:
        call.finished.add(playback_id)
        state = self.data.draw(st.sampled_from(["done", "failed"]), label="playback state")
        self.send(event("PlaybackFinished", self.later(), playback={
            "id": playback_id, "media_uri": "sound:x", "target_uri": f"channel:{call.channel_id}", "state": state}))

    def leave_for_dial(self, call: CallModel) -> None:
        call.in_stasis, call.peers = False, []
        self.send(event("StasisEnd", self.later(), channel=channel(call.channel_id, T0)))

    def target_rings(self, call: CallModel) -> None:
        peer = f"{call.channel_id}-out-{len(call.peers)}"
        call.peers.append(peer)
        dial = [p for p in self.asked("POST", f"/channels/{call.channel_id}/variable") if p is not None]
        target = dial[-1]["value"].split("/", 1)[1].split("@", 1)[0] if dial else "+31612345601"
        ch = channel(call.channel_id, T0)
        self.send(event("Dial", self.later(), dialstatus="", dialstring=f"{target}@carrier-out", caller=ch,
                        peer={**ch, "id": peer}))

    def target_answers(self, call: CallModel) -> None:
        ch = channel(call.channel_id, T0)
        self.send(event("Dial", self.later(), dialstatus="ANSWER", dialstring="", caller=ch,
                        peer={**ch, "id": self.data.draw(st.sampled_from(call.peers), label="peer")}))
        self.answer(call)

    def dial_returns(self, call: CallModel) -> None:
        status = "ANSWER" if call.up else self.data.draw(
            st.sampled_from(["NOANSWER", "NOANSWER", "BUSY", "CONGESTION", "CHANUNAVAIL", "CANCEL", ""]),
            label="DIALSTATUS")
        call.in_stasis, call.dial_returns = True, call.dial_returns + 1
        at = self.later()
        self.send(event("StasisStart", at, args=["dialed", status, call.did],
                        channel={**channel(call.channel_id, T0, call.did, call.caller, "Up" if call.up else "Ring"),
                                 "dialplan": {"context": "fairline-dial", "exten": "s", "priority": 2,
                                              "app_name": "Stasis", "app_data": f"fairline,dialed,{status}"}}))

    def hang_up(self, call: CallModel, *, soft: bool) -> None:
        """The caller hangs up (or Asterisk carries out fairline's release): the channel leaves and is destroyed."""
        ch = channel(call.channel_id, T0)
        cause = 16 if soft else self.data.draw(st.sampled_from([16, 17, 19, 21, 31, 127, 0]), label="cause")
        self.send(event("ChannelHangupRequest", self.later(), cause=32 if soft else cause, soft=soft, channel=ch))
        if call.in_stasis:
            self.send(event("StasisEnd", self.later(), channel=ch))
        self.send(event("ChannelDestroyed", self.later(), cause=cause, cause_txt="", channel=ch))
        call.destroyed = True

    def agent_answers(self, leg: LegModel) -> None:
        leg.up = True
        self.send(event("StasisStart", self.later(), args=["queue-agent"],
                        channel=channel(leg.channel_id, self.now, "s", "+31201234568", "Up")))

    def leg_ends(self, leg: LegModel) -> None:
        ch = channel(leg.channel_id, T0)
        if leg.up:
            self.send(event("StasisEnd", self.later(), channel=ch))
        cause = 16 if leg.up else self.data.draw(st.sampled_from([17, 19, 21, 34]), label="agent cause")
        self.send(event("ChannelDestroyed", self.later(), cause=cause, channel=ch))
        leg.destroyed = True

    def fire(self, timer: Any) -> None:
        self.later()
        timer.cancelled = True
        timer.fire()

    def end_everything(self) -> None:
        """Every caller and every agent leg still there hangs up, in one burst."""
        for call in self.calls.values():
            if call.started and not call.destroyed:
                self.hang_up(call, soft=False)
        self.originated()
        for leg in self.legs.values():
            if not leg.destroyed:
                self.leg_ends(leg)


def queue_app(ari: FakeAri, config: Config) -> tuple[App, list[RatedCdr]]:
    """An App on `ari` with `config`, and the list of the CDRs it submits."""
    submitted: list[RatedCdr] = []
    app = App(ari, config, DEFAULT_RATES, submitted.append)  # type: ignore[arg-type]
    app.release_retry_delays = (0.0, 0.0)  # retried at once: tests never wait on the clock
    return app, submitted


async def settle(app: App) -> None:
    """Every call's worker has ended (so has its call) and every request of the queues is done."""
    await turn_until(lambda: not app._workers and not app.queues._tasks, "the calls' and queues' requests",
                     turns=1000)


async def _turn(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


CALLERS = st.one_of(st.sampled_from(["+31612345678", "", "anonymous", "Restricted", None, 31612345678,
                                     "+3161234\x005678", "+31 6 1234\n5678", "\u202e8765", "9" * 500]),
                    st.text(max_size=20))

FAILING = ["answer", "play", "progress", "moh", "continue", "variable", ""]


class TestAsteriskAtRandom:
    @FUZZ
    @given(st.data())
    def test_every_call_whose_channel_is_destroyed_has_exactly_one_cdr_the_database_takes(
            self, data: st.DataObject) -> None:
        calls = data.draw(st.lists(st.tuples(st.sampled_from(DIDS), CALLERS), min_size=1, max_size=4), label="calls")
        ari = FakeAri()
        for i in range(len(calls)):
            for what in data.draw(st.lists(st.sampled_from(FAILING), max_size=2, unique=True)
                                  | st.just([]) | st.just([]), label=f"c{i} fails"):
                path = f"/channels/c{i}" + (f"/{what}" if what else "")
                for method in (["POST", "DELETE"] if what == "moh" else ["DELETE" if not what else "POST"]):
                    ari.failures[(method, path)] = data.draw(st.sampled_from(ERRORS))(method, path)
        for shared in data.draw(st.sampled_from([[], [], [], [], [("POST", "/channels")], [("POST", "/bridges")],
                                                 [("POST", "/applications/fairline/subscription")]]),
                                label="shared failures"):
            ari.failures[shared] = AriError(*shared, 500, "Internal Server Error")

        async def scenario() -> tuple[list[RatedCdr], list[MutableMapping[str, Any]], App, Asterisk]:
            app, submitted = queue_app(ari, config())
            timers = Timers()
            app.queues.schedule = timers
            asterisk = Asterisk(app, ari, timers, data)
            for i, (did, caller) in enumerate(calls):
                asterisk.calls[f"c{i}"] = CallModel(f"c{i}", did, caller)
            with capture_logs() as logs:
                for _ in range(data.draw(st.integers(0, 60), label="steps")):
                    asterisk.catch_up()
                    moves = asterisk.moves()
                    name, move = moves[data.draw(st.integers(0, len(moves) - 1), label="move")]
                    note(name)
                    move()
                    await _turn(data.draw(st.integers(0, 4), label="turns"))
                await _turn(50)  # fairline does what the last events asked for
                asterisk.end_everything()
                await _turn(50)
                asterisk.end_everything()  # legs rung while the others were ending
                for ghost in list(app.calls):  # a call the garbage opened (a valid message, by chance)
                    asterisk.send(event("ChannelDestroyed", asterisk.later(), cause=16, channel=channel(ghost, T0)))
                await settle(app)
            return submitted, logs, app, asterisk

        submitted, logs, app, asterisk = asyncio.run(scenario())

        started = {c.channel_id for c in asterisk.calls.values() if c.started}
        opened = Counter(e["call_id"] for e in logs if e["event"] == "call.started")
        assert [e["event"] for e in logs if e["event"] in CRASHES] == []
        assert {call_id: opened[call_id] for call_id in started} == dict.fromkeys(started, 1)
        assert Counter(c.call.call_id for c in submitted) == opened  # one CDR each time a call was taken
        for cdr in submitted:
            call = cdr.call
            assert call.started_at <= call.ended_at, cdr  # CHECK (ended_at >= started_at)
            assert call.answered_at is None or call.started_at <= call.answered_at <= call.ended_at, cdr
            assert call.hangup_cause is None or 0 <= call.hangup_cause <= 127, cdr
            for text in (call.caller or "", call.did):  # what PostgreSQL takes, and logs show on one line
                assert len(text) <= event_parser.MAX_NUMBER_CHARS, cdr
                assert not {unicodedata.category(c) for c in text} & {"Cc", "Cf", "Cs", "Zl", "Zp"}, cdr
        assert app.calls == {}
        assert app.queues.legs == {}, "an agent leg outlived its caller"
        for cdr in submitted:  # what the examples reached: `pytest --hypothesis-show-statistics`
            statistic(f"{cdr.call.disposition.value}{', queued' if cdr.call.queue_visits else ''}")
            for visit in cdr.call.queue_visits:
                statistic(f"queue visit {visit.outcome.value}")
        assert all(not state.waiting for state in app.queues.states.values()), "a caller is still queued"


def test_a_queue_join_for_a_call_that_ended_meanwhile_queues_nobody() -> None:
    """The worker runs a call's actions after the flow asked for them: by then the caller may be gone."""
    async def scenario() -> App:
        app, _ = queue_app(FakeAri(), config())
        await app.executor.execute("gone", flow.JoinQueue("support"), structlog.get_logger("test"))
        return app

    app = asyncio.run(scenario())
    assert all(not state.waiting for state in app.queues.states.values())
