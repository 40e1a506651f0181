"""The inbound call flow: a pure state machine from (call, event) to (next call, actions), and the CDR it ends with."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app import config
from ari_app.config import Config
from ari_app.events import (
    CallAnswered,
    CallLeft,
    CallStarted,
    HangupRequested,
    Ignored,
    PlaybackDone,
    parse,
)
from ari_app.flow import (
    Action,
    ActionFailed,
    Answer,
    Call,
    FlowEvent,
    Hangup,
    Phase,
    Play,
    Progress,
    WriteCdr,
    step,
)
from rating.cdr import CallRecord, Disposition

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ari_answered_call.jsonl"

CONFIGURED = "+31201234567"  # announcement hello-world
BRUSSELS = "+3215123456"  # announcement beep
NOT_CONFIGURED = "+31209999999"
CALLER = "+31612345678"
CALL_ID = "c1"

T0 = datetime(2026, 11, 25, 13, 17, 15, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def numbers(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The flow's configuration, loaded the way `fairline run` loads it."""
    path = tmp_path_factory.mktemp("config") / "fairline.yaml"
    path.write_text(
        "customers:\n"
        "  - id: acme\n"
        "    name: Acme BV\n"
        "numbers:\n"
        f'  - number: "{CONFIGURED}"\n'
        "    customer: acme\n"
        "    type: local\n"
        "    announcement: hello-world\n"
        f'  - number: "{BRUSSELS}"\n'
        "    customer: acme\n"
        "    type: national\n"
        "    announcement: beep\n"
    )
    return config.load(path)


# ---- events, as the parser produces them


def started(did: str, caller: str | None = CALLER) -> CallStarted:
    return CallStarted(CALL_ID, at(0.001), did, caller, started_at=at(0), state="Ring")


def answered(s: float = 0.1) -> CallAnswered:
    return CallAnswered(CALL_ID, at(s))


# The playback ids the flow gives its prompts; only these end the announcement.
ANNOUNCEMENT_ID = f"{CALL_ID}-announcement"
NOT_IN_SERVICE_ID = f"{CALL_ID}-noservice"


def playback_done(failed: bool = False, s: float = 2.0, playback_id: str = ANNOUNCEMENT_ID) -> PlaybackDone:
    """The number's announcement finished."""
    return PlaybackDone(CALL_ID, at(s), playback_id, failed)


def noservice_done(failed: bool = False, s: float = 2.0) -> PlaybackDone:
    """The 'not in service' prompt finished."""
    return playback_done(failed, s, NOT_IN_SERVICE_ID)


def hangup_requested(cause: int | None, s: float = 2.1) -> HangupRequested:
    return HangupRequested(CALL_ID, at(s), cause)


def left(s: float = 2.2) -> CallLeft:
    return CallLeft(CALL_ID, at(s))


def action_failed(s: float = 0.05) -> ActionFailed:
    return ActionFailed(CALL_ID, at(s))


# ---- calls in each phase

NEW = Call(CALL_ID)
ANNOUNCING_IN_SERVICE = Call(CALL_ID, Phase.ANNOUNCING, CONFIGURED, CALLER, started_at=at(0), in_service=True)
ANNOUNCING_NOT_IN_SERVICE = Call(CALL_ID, Phase.ANNOUNCING, NOT_CONFIGURED, CALLER, started_at=at(0))
RELEASING = dataclasses.replace(ANNOUNCING_IN_SERVICE, phase=Phase.RELEASING, release_cause=16)
ENDED = dataclasses.replace(RELEASING, phase=Phase.ENDED)


def run(events: Iterable[FlowEvent], cfg: Config, call: Call = NEW) -> tuple[Call, list[Action]]:
    """Feed `events` to the flow in order; the last state and every action it asked for."""
    actions: list[Action] = []
    for event in events:
        call, more = step(call, event, cfg)
        actions.extend(more)
    return call, actions


def the_cdr(actions: list[Action]) -> CallRecord:
    [write] = [a for a in actions if isinstance(a, WriteCdr)]
    return write.record


def hello(record_id: str = CALL_ID) -> Play:
    return Play("sound:hello-world", f"{record_id}-announcement")


NOT_IN_SERVICE_PROMPT = Play("sound:ss-noservice", NOT_IN_SERVICE_ID)

TRANSITIONS: list[Any] = [
    # A call arrives
    pytest.param(NEW, started(CONFIGURED), Phase.ANNOUNCING, [Answer(), hello()],
                 id="configured-number-is-answered-and-hears-its-announcement"),
    pytest.param(NEW, started("31201234567"), Phase.ANNOUNCING, [Answer(), hello()],
                 id="configured-number-dialled-without-plus-is-served"),
    pytest.param(NEW, started(BRUSSELS), Phase.ANNOUNCING, [Answer(), Play("sound:beep", ANNOUNCEMENT_ID)],
                 id="each-number-plays-its-own-announcement"),
    pytest.param(NEW, started(NOT_CONFIGURED), Phase.ANNOUNCING, [Progress(), NOT_IN_SERVICE_PROMPT],
                 id="unknown-number-hears-not-in-service-as-early-media"),
    pytest.param(NEW, started("0123"), Phase.ANNOUNCING, [Progress(), NOT_IN_SERVICE_PROMPT],
                 id="did-that-is-not-e164-hears-not-in-service"),
    pytest.param(NEW, started(""), Phase.ANNOUNCING, [Progress(), NOT_IN_SERVICE_PROMPT],
                 id="empty-did-hears-not-in-service"),
    # The announcement ends
    pytest.param(ANNOUNCING_IN_SERVICE, playback_done(), Phase.RELEASING, [Hangup("normal")],
                 id="announcement-done-releases-normally"),
    pytest.param(ANNOUNCING_NOT_IN_SERVICE, noservice_done(), Phase.RELEASING, [Hangup("unallocated")],
                 id="not-in-service-done-releases-unallocated"),
    pytest.param(ANNOUNCING_IN_SERVICE, playback_done(failed=True), Phase.RELEASING, [Hangup("normal")],
                 id="failed-announcement-still-releases-caller-not-left-in-silence"),
    pytest.param(ANNOUNCING_NOT_IN_SERVICE, noservice_done(failed=True), Phase.RELEASING, [Hangup("unallocated")],
                 id="failed-not-in-service-prompt-still-releases-unallocated"),
    # Another playback finishing: only the flow's own prompt ends the announcement
    pytest.param(ANNOUNCING_IN_SERVICE, playback_done(playback_id="p1"), Phase.ANNOUNCING, [],
                 id="playback-with-another-id-does-not-end-the-announcement"),
    pytest.param(ANNOUNCING_IN_SERVICE, playback_done(playback_id="c2-announcement"), Phase.ANNOUNCING, [],
                 id="another-calls-announcement-does-not-end-this-one"),
    pytest.param(ANNOUNCING_IN_SERVICE, noservice_done(), Phase.ANNOUNCING, [],
                 id="not-in-service-id-does-not-end-an-announcement"),
    pytest.param(ANNOUNCING_NOT_IN_SERVICE, playback_done(), Phase.ANNOUNCING, [],
                 id="announcement-id-does-not-end-the-not-in-service-prompt"),
    pytest.param(ANNOUNCING_NOT_IN_SERVICE, playback_done(playback_id="p1", failed=True), Phase.ANNOUNCING, [],
                 id="failed-playback-with-another-id-does-not-end-the-prompt"),
    # The runtime could not do what the flow asked
    pytest.param(ANNOUNCING_IN_SERVICE, action_failed(), Phase.RELEASING, [Hangup("failure")],
                 id="failed-action-releases-with-failure"),
    pytest.param(ANNOUNCING_NOT_IN_SERVICE, action_failed(), Phase.RELEASING, [Hangup("failure")],
                 id="failed-action-on-unknown-number-releases-with-failure"),
    pytest.param(RELEASING, action_failed(), Phase.RELEASING, [],
                 id="failed-hangup-while-releasing-does-not-hang-up-again"),
    # Events that change no phase and ask for nothing
    pytest.param(ANNOUNCING_IN_SERVICE, answered(), Phase.ANNOUNCING, [], id="answer-confirmation-asks-nothing"),
    pytest.param(ANNOUNCING_IN_SERVICE, hangup_requested(16), Phase.ANNOUNCING, [],
                 id="hangup-request-waits-for-the-channel-to-leave"),
    pytest.param(ANNOUNCING_IN_SERVICE, started(CONFIGURED), Phase.ANNOUNCING, [],
                 id="second-stasis-start-does-not-answer-twice"),
    pytest.param(ANNOUNCING_IN_SERVICE, Ignored("ChannelVarset"), Phase.ANNOUNCING, [],
                 id="ignored-event-asks-nothing"),
    pytest.param(RELEASING, playback_done(), Phase.RELEASING, [], id="late-playback-done-while-releasing-asks-nothing"),
    pytest.param(NEW, playback_done(), Phase.NEW, [], id="playback-done-before-the-call-started-asks-nothing"),
    pytest.param(NEW, answered(), Phase.NEW, [], id="answer-before-the-call-started-asks-nothing"),
]


class TestStep:
    """One step of the flow, as a table: (phase, event) -> (next phase, actions)."""

    @pytest.mark.parametrize(("call", "event", "phase", "actions"), TRANSITIONS)
    def test_transition(self, numbers: Config, call: Call, event: FlowEvent, phase: Phase,
                        actions: list[Action]) -> None:
        after, asked = step(call, event, numbers)

        assert (after.phase, asked) == (phase, actions)

    @pytest.mark.parametrize("call", [NEW, ANNOUNCING_IN_SERVICE, ANNOUNCING_NOT_IN_SERVICE, RELEASING],
                             ids=["new", "announcing", "announcing-not-in-service", "releasing"])
    def test_call_left_ends_the_call_with_exactly_one_cdr(self, numbers: Config, call: Call) -> None:
        """StasisEnd in any live phase ends the call and asks for one CDR write, nothing else."""
        after, asked = step(call, left(), numbers)

        assert after.phase is Phase.ENDED
        assert [type(a) for a in asked] == [WriteCdr]

    @pytest.mark.parametrize(
        "event",
        [started(CONFIGURED), answered(), playback_done(), hangup_requested(16), left(), action_failed(),
         Ignored("StasisEnd")],
        ids=lambda e: type(e).__name__,
    )
    def test_events_after_the_call_ended_do_nothing(self, numbers: Config, event: FlowEvent) -> None:
        """An ended call stays as it is: no second CDR, no action on a channel that is gone."""
        assert step(ENDED, event, numbers) == (ENDED, [])

    def test_started_call_keeps_did_in_e164_caller_and_creation_time(self, numbers: Config) -> None:
        """The DID is stored as configured (E.164) whatever form Asterisk sent it in."""
        after, _ = step(NEW, started("31201234567"), numbers)

        assert (after.did, after.caller, after.started_at, after.in_service) == (CONFIGURED, CALLER, at(0), True)

    def test_started_call_to_unknown_number_keeps_the_did_as_dialled(self, numbers: Config) -> None:
        after, _ = step(NEW, started("0123", caller=None), numbers)

        assert (after.did, after.caller, after.in_service) == ("0123", None, False)

    def test_answer_time_is_the_first_answer(self, numbers: Config) -> None:
        """A repeated Up does not move the answer time (billing starts at the first)."""
        call, _ = run([answered(0.1), answered(0.5)], numbers, ANNOUNCING_IN_SERVICE)

        assert call.answered_at == at(0.1)

    def test_hangup_cause_is_the_first_one_reported(self, numbers: Config) -> None:
        """Asterisk may report a cause more than once; the first is what ended the call."""
        call, _ = run([hangup_requested(16), hangup_requested(127)], numbers, ANNOUNCING_IN_SERVICE)

        assert call.hangup_cause == 16

    def test_hangup_request_without_cause_keeps_waiting_for_one(self, numbers: Config) -> None:
        call, _ = run([hangup_requested(None), hangup_requested(17)], numbers, ANNOUNCING_IN_SERVICE)

        assert call.hangup_cause == 17

    @pytest.mark.parametrize("did", [CONFIGURED, NOT_CONFIGURED, "0123"])
    def test_the_playback_the_flow_starts_is_the_one_that_ends_it(self, numbers: Config, did: str) -> None:
        """The id in Play comes back in PlaybackFinished: that, and only that, releases the caller."""
        call, asked = step(NEW, started(did), numbers)
        [play] = [a for a in asked if isinstance(a, Play)]

        after, released = step(call, playback_done(playback_id=play.playback_id), numbers)

        assert after.phase is Phase.RELEASING
        assert [type(a) for a in released] == [Hangup]

    def test_step_leaves_the_given_call_unchanged(self, numbers: Config) -> None:
        """Calls are frozen values: step returns a new one."""
        before = dataclasses.replace(NEW)

        step(NEW, started(CONFIGURED), numbers)

        assert NEW == before


RECORDED_CALL = "1795612635.0"


def recorded_events(playback_id: str | None = f"{RECORDED_CALL}-announcement") -> list[FlowEvent]:
    """The real Asterisk 22 capture, parsed. Its PlaybackFinished carries the recorder's id "p1"; it is
    rewritten in memory to `playback_id` (the flow's own by default), or kept as recorded for None."""
    events: list[FlowEvent] = []
    for event in map(parse, FIXTURE.read_text().splitlines()):
        if isinstance(event, Ignored):
            continue
        if isinstance(event, PlaybackDone) and playback_id is not None:
            event = dataclasses.replace(event, playback_id=playback_id)
        events.append(event)
    return events


class TestCallRecord:
    """Whole calls through the flow, and the one CDR each ends with."""

    def test_recorded_answered_call_is_answered_with_normal_clearing(self, numbers: Config) -> None:
        """The real Asterisk 22 capture: answered, announced, released by fairline with cause 16."""
        call, actions = run(recorded_events(), numbers, Call(RECORDED_CALL))

        assert call.phase is Phase.ENDED
        assert Hangup("normal") in actions
        assert the_cdr(actions) == CallRecord(
            call_id=RECORDED_CALL,
            did=CONFIGURED,
            caller=CALLER,
            started_at=datetime(2026, 11, 25, 13, 17, 15, 861000, tzinfo=UTC),
            answered_at=datetime(2026, 11, 25, 13, 17, 15, 863000, tzinfo=UTC),
            ended_at=datetime(2026, 11, 25, 13, 17, 16, 308000, tzinfo=UTC),
            disposition=Disposition.ANSWERED,
            hangup_cause=16,
        )

    def test_recorded_call_with_a_foreign_playback_is_not_released_by_fairline(self, numbers: Config) -> None:
        """As recorded (playback "p1", not fairline's): no hang-up is sent; the call ends when the channel leaves.

        The recorded hang-up request is a soft one, which carries no Q.850 cause, so the CDR has none.
        """
        call, actions = run(recorded_events(playback_id=None), numbers, Call(RECORDED_CALL))

        assert call.phase is Phase.ENDED
        assert not [a for a in actions if isinstance(a, Hangup)]
        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause) == (Disposition.ANSWERED, None)

    def test_caller_hanging_up_before_answer_is_abandoned_with_their_cause(self, numbers: Config) -> None:
        """On a configured number, the caller gave up before Up: abandoned, cause 16 from the caller."""
        _, actions = run([started(CONFIGURED), hangup_requested(16, s=0.05), left(0.06)], numbers)

        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause, record.answered_at) == (Disposition.ABANDONED, 16, None)

    def test_caller_hanging_up_during_the_announcement_is_answered_with_their_cause(self, numbers: Config) -> None:
        _, actions = run([started(CONFIGURED), answered(0.1), hangup_requested(16, s=0.8), left(0.9)], numbers)

        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause, record.answered_at) == (Disposition.ANSWERED, 16, at(0.1))

    def test_unknown_number_is_unallocated_unanswered_with_cause_1(self, numbers: Config) -> None:
        _, actions = run([started(NOT_CONFIGURED), noservice_done(), left()], numbers)

        record = the_cdr(actions)
        assert (record.did, record.disposition, record.answered_at, record.hangup_cause) == (
            NOT_CONFIGURED, Disposition.UNALLOCATED, None, 1)

    def test_did_that_is_not_e164_is_recorded_as_dialled_and_unallocated(self, numbers: Config) -> None:
        _, actions = run([started("0123"), noservice_done(), left()], numbers)

        record = the_cdr(actions)
        assert (record.did, record.disposition) == ("0123", Disposition.UNALLOCATED)

    def test_failed_answer_is_failed_with_cause_38(self, numbers: Config) -> None:
        """The runtime could not answer: fairline released with failure, the CDR says so."""
        _, actions = run([started(CONFIGURED), action_failed(), left()], numbers)

        assert Hangup("failure") in actions
        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause) == (Disposition.FAILED, 38)

    def test_failed_action_on_an_unknown_number_is_failed_not_unallocated(self, numbers: Config) -> None:
        """The number was not in service, but the caller was released by fairline's failure, not with 404."""
        _, actions = run([started(NOT_CONFIGURED), action_failed(), left()], numbers)

        assert Hangup("failure") in actions
        record = the_cdr(actions)
        assert (record.did, record.disposition, record.hangup_cause) == (NOT_CONFIGURED, Disposition.FAILED, 38)

    def test_caller_hanging_up_on_an_unknown_number_is_unallocated_with_their_cause(self, numbers: Config) -> None:
        """The caller gave up during 'not in service': still unallocated (nothing to bill), with the caller's cause."""
        _, actions = run([started(NOT_CONFIGURED), hangup_requested(16, s=0.5), left(0.6)], numbers)

        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause) == (Disposition.UNALLOCATED, 16)

    def test_record_times_come_from_the_events(self, numbers: Config) -> None:
        """Started at channel creation, answered at Up, ended at StasisEnd: all aware."""
        _, actions = run([started(CONFIGURED), answered(0.1), playback_done(s=2.0), left(2.2)], numbers)

        record = the_cdr(actions)
        assert (record.started_at, record.answered_at, record.ended_at) == (at(0), at(0.1), at(2.2))

    def test_withheld_caller_is_recorded_as_none(self, numbers: Config) -> None:
        _, actions = run([started(CONFIGURED, caller=None), left()], numbers)

        assert the_cdr(actions).caller is None

    def test_channel_leaving_before_its_start_was_seen_still_gets_a_cdr(self, numbers: Config) -> None:
        """No event is lost from billing: a start time is needed, the end time stands in for it."""
        _, actions = run([left(3.0)], numbers)

        record = the_cdr(actions)
        assert (record.started_at, record.ended_at, record.disposition) == (at(3.0), at(3.0), Disposition.ABANDONED)


ANY_EVENT = st.sampled_from(
    [started(CONFIGURED), started(NOT_CONFIGURED), started("0123"), answered(), playback_done(),
     playback_done(failed=True), noservice_done(), playback_done(playback_id="p1"), hangup_requested(16),
     hangup_requested(None), left(), action_failed(), Ignored("ChannelVarset")]
)
# Everything but the channel leaving.
STILL_THERE = st.sampled_from(
    [started(CONFIGURED), answered(), playback_done(), noservice_done(), playback_done(playback_id="p1"),
     hangup_requested(16), hangup_requested(None), action_failed(), Ignored("ChannelVarset")]
)


class TestWhateverHappens:
    """Properties that hold for any order of events Asterisk and the runtime may produce."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(ANY_EVENT, max_size=12))
    def test_a_call_writes_one_cdr_exactly_when_it_left_and_acts_no_more(self, numbers: Config,
                                                                         events: list[FlowEvent]) -> None:
        """One CDR if and only if the channel left; after that, nothing at all."""
        call, actions_after_end = NEW, []
        writes = 0
        for event in events:
            was_ended = call.phase is Phase.ENDED
            call, actions = step(call, event, numbers)
            writes += sum(isinstance(a, WriteCdr) for a in actions)
            if was_ended:
                actions_after_end.extend(actions)

        assert writes == (1 if any(isinstance(e, CallLeft) for e in events) else 0)
        assert actions_after_end == []

    @settings(max_examples=300, deadline=None)
    @given(st.lists(STILL_THERE, max_size=4), st.sampled_from([CONFIGURED, NOT_CONFIGURED, "0123"]),
           st.lists(STILL_THERE, max_size=4), st.booleans(), st.lists(STILL_THERE, max_size=4))
    def test_caller_is_never_left_in_silence_after_the_announcement(
        self, numbers: Config, before: list[FlowEvent], did: str, during: list[FlowEvent], failed: bool,
        after: list[FlowEvent],
    ) -> None:
        """Once the playback fairline started has finished (even failed), fairline has asked to hang up."""
        call, asked = run([*before, started(did), *during], numbers)
        # No Play when the call was already being released before it started (a failed action).
        own = [a.playback_id for a in asked if isinstance(a, Play)] or ["none"]
        call, more = run([playback_done(failed=failed, playback_id=own[0]), *after], numbers, call)
        asked += more

        assert call.phase is Phase.RELEASING
        assert any(isinstance(a, Hangup) for a in asked)


class TestPurity:
    """The flow is the functional core: no I/O library behind it."""

    def test_flow_imports_no_io_library(self) -> None:
        """The functional core imports no asyncio, aiohttp or asyncpg (checked in a fresh interpreter)."""
        code = (
            "import sys, ari_app.flow\n"
            "loaded = sorted({'asyncio', 'aiohttp', 'asyncpg'} & set(sys.modules))\n"
            "print(','.join(loaded))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])

        assert out.stdout.strip() == ""
