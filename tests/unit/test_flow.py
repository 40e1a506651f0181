"""The inbound call flow: a pure state machine from (call, event) to (next call, actions), and the CDR it ends with."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.config import yaml_loader
from ari_app.core.model import (
    AnswerConfirmation,
    Announce,
    Config,
    Customer,
    ForwardTo,
    Number,
    OpeningHours,
    Route,
    Strategy,
    Target,
    TargetKind,
    Window,
)
from ari_app.ari.event_parser import parse
from ari_app.core.events import (
    CallAnswered,
    CallDestroyed,
    CallLeft,
    CallStarted,
    DialReturned,
    HangupRequested,
    Ignored,
    PlaybackDone,
    TargetAnswered,
    TargetDialed,
)
from ari_app.core.flow import (
    Action,
    ActionFailed,
    Answer,
    Announcing,
    Call,
    CallData,
    Dial,
    Dialing,
    Ended,
    FlowEvent,
    Hangup,
    Phase,
    Play,
    MAX_HOPS,
    Progress,
    ReleaseReason,
    Releasing,
    WriteCdr,
    step,
)
from rating.core.cdr import CallRecord, Disposition
from rating.core.tariff import NumberType

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
    return yaml_loader.load(path)


# ---- events, as the parser produces them


def started(did: str, caller: str | None = CALLER) -> CallStarted:
    return CallStarted(CALL_ID, at(0.001), did, caller, started_at=at(0), state="Ring")


def answered(s: float = 0.1) -> CallAnswered:
    return CallAnswered(CALL_ID, at(s))


# The playback ids the flow gives its prompts; only these end the announcement.
ANNOUNCEMENT_ID = f"{CALL_ID}-announcement"
NOT_IN_SERVICE_ID = f"{CALL_ID}-noservice"
FAILURE_ID = f"{CALL_ID}-failure"  # the apology played when an action failed


def playback_done(failed: bool = False, s: float = 2.0, playback_id: str = ANNOUNCEMENT_ID) -> PlaybackDone:
    """The number's announcement finished."""
    return PlaybackDone(CALL_ID, at(s), playback_id, failed)


def noservice_done(failed: bool = False, s: float = 2.0) -> PlaybackDone:
    """The 'not in service' prompt finished."""
    return playback_done(failed, s, NOT_IN_SERVICE_ID)


def failure_done(failed: bool = False, s: float = 1.0) -> PlaybackDone:
    """The apology played after a failed action finished."""
    return playback_done(failed, s, FAILURE_ID)


def hangup_requested(cause: int | None, s: float = 2.1) -> HangupRequested:
    return HangupRequested(CALL_ID, at(s), cause)


def left(s: float = 2.2) -> CallLeft:
    return CallLeft(CALL_ID, at(s))


def action_failed(s: float = 0.05) -> ActionFailed:
    return ActionFailed(CALL_ID, at(s))


# ---- calls in each phase

NEW = Call(CALL_ID)
IN_SERVICE = CallData(CONFIGURED, CALLER, started_at=at(0), in_service=True)
# An announcement is released by its own playback, with the reason chosen when it started.
ANNOUNCING_IN_SERVICE = Call(CALL_ID, Announcing(ANNOUNCEMENT_ID, ReleaseReason.NORMAL), IN_SERVICE)
ANNOUNCING_NOT_IN_SERVICE = Call(CALL_ID, Announcing(NOT_IN_SERVICE_ID, ReleaseReason.UNALLOCATED),
                                 CallData(NOT_CONFIGURED, CALLER, started_at=at(0)))
# An action failed: the caller hears the apology as early media, then is released with failure.
APOLOGISING = Call(CALL_ID, Announcing(FAILURE_ID, ReleaseReason.FAILURE),
                   dataclasses.replace(IN_SERVICE, release_cause=38))
RELEASING = Call(CALL_ID, Releasing(), dataclasses.replace(IN_SERVICE, release_cause=16))
ENDED = Call(CALL_ID, Ended(), RELEASING.data)


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
APOLOGY = Play("sound:all-circuits-busy-now", FAILURE_ID)

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
    pytest.param(ANNOUNCING_IN_SERVICE, action_failed(), Phase.ANNOUNCING, [Progress(), APOLOGY],
                 id="failed-action-plays-the-apology-as-early-media"),
    pytest.param(ANNOUNCING_NOT_IN_SERVICE, action_failed(), Phase.ANNOUNCING, [Progress(), APOLOGY],
                 id="failed-action-on-unknown-number-plays-the-apology"),
    pytest.param(NEW, action_failed(), Phase.ANNOUNCING, [Progress(), APOLOGY],
                 id="failed-action-before-the-call-started-plays-the-apology"),
    pytest.param(APOLOGISING, failure_done(), Phase.RELEASING, [Hangup("failure")],
                 id="apology-done-releases-with-failure"),
    pytest.param(APOLOGISING, failure_done(failed=True), Phase.RELEASING, [Hangup("failure")],
                 id="failed-apology-still-releases-with-failure"),
    pytest.param(APOLOGISING, action_failed(), Phase.RELEASING, [Hangup("failure")],
                 id="failed-action-during-the-apology-releases-at-once"),
    pytest.param(APOLOGISING, playback_done(), Phase.ANNOUNCING, [],
                 id="the-interrupted-announcement-finishing-does-not-end-the-apology"),
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

        assert (after.data.did, after.caller, after.data.started_at, after.data.in_service) == (CONFIGURED, CALLER, at(0), True)

    def test_started_call_to_unknown_number_keeps_the_did_as_dialled(self, numbers: Config) -> None:
        after, _ = step(NEW, started("0123", caller=None), numbers)

        assert (after.data.did, after.caller, after.data.in_service) == ("0123", None, False)

    def test_answer_time_is_the_first_answer(self, numbers: Config) -> None:
        """A repeated Up does not move the answer time (billing starts at the first)."""
        call, _ = run([answered(0.1), answered(0.5)], numbers, ANNOUNCING_IN_SERVICE)

        assert call.data.answered_at == at(0.1)

    def test_hangup_cause_is_the_first_one_reported(self, numbers: Config) -> None:
        """Asterisk may report a cause more than once; the first is what ended the call."""
        call, _ = run([hangup_requested(16), hangup_requested(127)], numbers, ANNOUNCING_IN_SERVICE)

        assert call.data.hangup_cause == 16

    def test_hangup_request_without_cause_keeps_waiting_for_one(self, numbers: Config) -> None:
        call, _ = run([hangup_requested(None), hangup_requested(17)], numbers, ANNOUNCING_IN_SERVICE)

        assert call.data.hangup_cause == 17

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
        """The runtime could not answer: the caller hears the apology, fairline releases with failure, the CDR
        says so."""
        _, actions = run([started(CONFIGURED), action_failed(), failure_done(), left()], numbers)

        assert actions[2:5] == [Progress(), APOLOGY, Hangup("failure")]
        assert Hangup("failure") in actions
        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause) == (Disposition.FAILED, 38)

    def test_failed_action_on_an_unknown_number_is_failed_not_unallocated(self, numbers: Config) -> None:
        """The number was not in service, but the caller was released by fairline's failure, not with 404."""
        _, actions = run([started(NOT_CONFIGURED), action_failed(), failure_done(), left()], numbers)

        assert actions[2:5] == [Progress(), APOLOGY, Hangup("failure")]
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
     playback_done(failed=True), noservice_done(), playback_done(playback_id="p1"), failure_done(),
     failure_done(failed=True), hangup_requested(16), hangup_requested(None), left(), action_failed(),
     Ignored("ChannelVarset")]
)
# Everything but the caller hanging up and the channel leaving.
STILL_THERE = st.sampled_from(
    [started(CONFIGURED), answered(), playback_done(), noservice_done(), playback_done(playback_id="p1"),
     failure_done(), action_failed(), Ignored("ChannelVarset")]
)


def assert_failures_are_never_met_with_silence(events: list[FlowEvent], cfg: Config, failed: bool) -> None:
    """Feed `events`; after each failed action on a live call, the caller hears the apology or is released.

    A call whose caller hung up is not live: it hears nothing more (see test_flow_property.py).

    During the apology a failure releases at once; otherwise the apology starts, and its end (even failed)
    releases with failure. A call already being released or ended has nothing left to hear.
    """
    call = NEW
    for event in events:
        before = call
        call, actions = step(call, event, cfg)
        if not isinstance(event, ActionFailed) or before.phase in (Phase.RELEASING, Phase.ENDED) or before.data.hung_up:
            continue
        if isinstance(before.state, Dialing) and before.state.in_dialplan:  # in Dial(): the caller hears it ring
            # on; what failed may have been the subscription, so fairline no longer counts on ChannelDestroyed
            assert (call, actions) == (dataclasses.replace(before, data=dataclasses.replace(before.data, followed=False)), [])
            continue
        if isinstance(before.state, Announcing) and before.state.playing == FAILURE_ID:
            assert (call.phase, actions) == (Phase.RELEASING, [Hangup("failure")])
        else:
            assert (call.phase, call.state, actions) == (Phase.ANNOUNCING, Announcing(FAILURE_ID, ReleaseReason.FAILURE),
                                                           [Progress(), APOLOGY])
            after, released = step(call, failure_done(failed=failed), cfg)
            assert (after.phase, released) == (Phase.RELEASING, [Hangup("failure")])


class TestWhateverHappens:
    """Properties that hold for any order of events Asterisk and the runtime may produce."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(ANY_EVENT, max_size=12))
    def test_a_call_writes_one_cdr_exactly_when_it_left_and_acts_no_more(self, numbers: Config,
                                                                         events: list[FlowEvent]) -> None:
        """One CDR if and only if the channel left, or an action failed after the caller hung up; after that,
        nothing at all."""
        call, actions_after_end = NEW, []
        writes = 0
        for event in events:
            was_ended = call.phase is Phase.ENDED
            call, actions = step(call, event, numbers)
            writes += sum(isinstance(a, WriteCdr) for a in actions)
            if was_ended:
                actions_after_end.extend(actions)

        hung_up = [i for i, e in enumerate(events) if isinstance(e, HangupRequested)]
        failed_after = hung_up and any(isinstance(e, ActionFailed) for e in events[hung_up[0]:])
        assert writes == (1 if any(isinstance(e, CallLeft) for e in events) or failed_after else 0)
        assert actions_after_end == []

    @settings(max_examples=300, deadline=None)
    @given(st.lists(STILL_THERE, max_size=4), st.sampled_from([CONFIGURED, NOT_CONFIGURED, "0123"]),
           st.lists(STILL_THERE, max_size=4), st.booleans(), st.lists(STILL_THERE, max_size=4))
    def test_caller_is_never_left_in_silence_after_the_announcement(
        self, numbers: Config, before: list[FlowEvent], did: str, during: list[FlowEvent], failed: bool,
        after: list[FlowEvent],
    ) -> None:
        """Once the last playback fairline started has finished (even failed), fairline has asked to hang up.

        A failed action replaces the announcement with the apology: the apology's end is then the one awaited.
        """
        call, asked = run([*before, started(did), *during], numbers)
        # No Play when the call was already being released before it started (a failure during the apology).
        own = [a.playback_id for a in asked if isinstance(a, Play)] or ["none"]
        call, more = run([playback_done(failed=failed, playback_id=own[-1]), *after], numbers, call)
        asked += more

        assert call.phase is Phase.RELEASING
        assert any(isinstance(a, Hangup) for a in asked)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(ANY_EVENT, max_size=12), st.booleans())
    def test_caller_is_never_left_in_silence_after_a_failed_action(self, numbers: Config, events: list[FlowEvent],
                                                                   failed: bool) -> None:
        """A failed action on a live call plays the apology (whose end releases with failure) or, if the apology
        itself was what failed, releases with failure at once."""
        assert_failures_are_never_met_with_silence([*events, action_failed()], numbers, failed)


# ---- routed numbers: fairline decides whom to ring, the dialplan's Dial() rings them

DESK = Target("+31301234567", TargetKind.FIXED, 15)  # a landline in Utrecht
MOBILE = Target("+31612345601", TargetKind.MOBILE, 20)
SPARE = Target("+31612345602", TargetKind.MOBILE, 30)

RING_ALL = "+31201234501"  # desk and mobile at once for 25 s, then the default announcement
IN_TURN = "+31201234502"  # desk 15 s, mobile 20 s, spare 30 s, then its own announcement
ONE_PHONE = "+31201234503"  # the mobile alone, then the default announcement
FORWARDING = "+31201234504"  # the desk, then ONE_PHONE's route
LOOP_A = "+31201234505"  # the desk, then LOOP_B's route ...
LOOP_B = "+31201234506"  # ... the mobile, then LOOP_A's again
TO_ANNOUNCEMENT = "+31201234507"  # the desk, then CONFIGURED (announcement-only)
TO_REMOVED = "+31201234509"  # the desk, then REMOVED, which a reload took away
REMOVED = "+31201234510"
OFFICE = "+31201234511"  # the desk on weekdays 08:00-18:00 Amsterdam time, the spare outside them

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
WEEKDAYS_EIGHT_TO_SIX = OpeningHours(AMSTERDAM, tuple((Window(8 * 60, 18 * 60),) if day < 5 else ()
                                                      for day in range(7)))
SIMULTANEOUS, SEQUENTIAL = Strategy.SIMULTANEOUS, Strategy.SEQUENTIAL


def routed(e164: str, route: Route, **more: Any) -> Number:
    return Number(e164, "acme", NumberType.LOCAL, route=route, **more)


# Built directly, not loaded: the loader refuses the LOOP_A <-> LOOP_B loop and a forward to
# a number it does not know; the flow must still cope when a config gets past it or a reload.
ROUTES = Config(
    customers={"acme": Customer("acme", "Acme BV")},
    numbers={n.e164: n for n in [
        routed(RING_ALL, Route(SIMULTANEOUS, (dataclasses.replace(DESK, ring_seconds=25),
                                              dataclasses.replace(MOBILE, ring_seconds=25)))),
        routed(IN_TURN, Route(SEQUENTIAL, (DESK, MOBILE, SPARE), Announce("custom-sorry"))),
        routed(ONE_PHONE, Route(SIMULTANEOUS, (MOBILE,))),
        routed(FORWARDING, Route(SIMULTANEOUS, (DESK,), ForwardTo(ONE_PHONE))),
        routed(LOOP_A, Route(SIMULTANEOUS, (DESK,), ForwardTo(LOOP_B))),
        routed(LOOP_B, Route(SIMULTANEOUS, (MOBILE,), ForwardTo(LOOP_A))),
        routed(TO_ANNOUNCEMENT, Route(SIMULTANEOUS, (DESK,), ForwardTo(CONFIGURED))),
        Number(CONFIGURED, "acme", NumberType.LOCAL, "hello-world"),
        routed(TO_REMOVED, Route(SIMULTANEOUS, (DESK,), ForwardTo(REMOVED))),
        routed(OFFICE, Route(SIMULTANEOUS, (DESK,)), hours=WEEKDAYS_EIGHT_TO_SIX,
               outside_hours=Route(SIMULTANEOUS, (SPARE,))),
    ]},
    confirmation=AnswerConfirmation(mobiles=False),  # routing alone; answer confirmation: test_answer_confirmation.py
)

def followed(dial: Dial) -> Dial:
    """`dial`, subscribed to first: the call's first Dial()."""
    return dataclasses.replace(dial, follow=True)


RING_DESK = Dial("PJSIP/+31301234567@carrier-out,15", follow=False)
RING_MOBILE = Dial("PJSIP/+31612345601@carrier-out,20", follow=False)
RING_SPARE = Dial("PJSIP/+31612345602@carrier-out,30", follow=False)
NOBODY_AVAILABLE = "sound:vm-nobodyavail"

# ARI hang-up reason -> the Q.850 cause Asterisk releases the caller with.
Q850 = {"normal": 16, "unallocated": 1, "busy": 17, "no_answer": 19, "congestion": 34, "failure": 38}


def returned(status: str, s: float = 20.0) -> DialReturned:
    """Dial() ended with DIALSTATUS `status`; the call is back in the app."""
    return DialReturned(CALL_ID, at(s), status)


def leg(target: Target) -> str:
    """The id of the outbound channel Dial() creates to ring `target`."""
    return f"leg-{target.e164}"


def target_dialed(target: Target, s: float = 0.2) -> TargetDialed:
    return TargetDialed(CALL_ID, at(s), leg(target), target.e164)


def target_answered(target: Target, s: float = 5.0) -> TargetAnswered:
    """Asterisk 22's Dial event with dialstatus ANSWER names the answering leg, not the number."""
    return TargetAnswered(CALL_ID, at(s), leg(target))


def destroyed(cause: int | None, s: float = 60.0) -> CallDestroyed:
    return CallDestroyed(CALL_ID, at(s), cause)


def noanswer_done(hops: int = 0, s: float = 30.0) -> PlaybackDone:
    """The 'nobody answered' announcement played after `hops` forwards finished."""
    return playback_done(s=s, playback_id=f"{CALL_ID}-{hops}-noanswer")


def continued(s: float = 0.1) -> CallLeft:
    """StasisEnd as the channel leaves the app for the dialplan's Dial()."""
    return left(s)


def started_at(did: str, instant: datetime) -> CallStarted:
    return CallStarted(CALL_ID, instant, did, CALLER, started_at=instant, state="Ring")


ROUTED: list[Any] = [
    # Whom the first Dial() rings
    pytest.param(RING_ALL, [], [followed(Dial("PJSIP/+31301234567@carrier-out&PJSIP/+31612345601@carrier-out,25", follow=False))],
                 id="simultaneous-route-rings-every-target-in-one-dial-for-the-routes-ring-time"),
    pytest.param(IN_TURN, [], [followed(RING_DESK)], id="sequential-route-rings-its-first-target-for-its-own-time"),
    pytest.param(ONE_PHONE, [continued()], [followed(RING_MOBILE)],
                 id="stasis-end-as-the-call-leaves-for-dial-changes-nothing"),
    # Sequential: the next target, each for its own ring time, subscribed once
    pytest.param(IN_TURN, [returned("NOANSWER")], [followed(RING_DESK), RING_MOBILE],
                 id="sequential-route-rings-the-next-target-when-one-rings-out"),
    pytest.param(IN_TURN, [returned("BUSY"), returned("CHANUNAVAIL")], [followed(RING_DESK), RING_MOBILE, RING_SPARE],
                 id="sequential-route-goes-down-the-list-to-the-last-target"),
    # Nobody answered the last step
    pytest.param(ONE_PHONE, [returned("NOANSWER")],
                 [followed(RING_MOBILE), Progress(), Play(NOBODY_AVAILABLE, f"{CALL_ID}-0-noanswer")],
                 id="last-step-unanswered-hears-the-default-announcement-as-early-media"),
    pytest.param(IN_TURN, [returned("NOANSWER"), returned("BUSY"), returned("NOANSWER")],
                 [followed(RING_DESK), RING_MOBILE, RING_SPARE, Progress(),
                  Play("sound:custom-sorry", f"{CALL_ID}-0-noanswer")],
                 id="last-step-unanswered-hears-the-routes-own-announcement"),
    pytest.param(ONE_PHONE, [returned("BUSY"), noanswer_done()],
                 [followed(RING_MOBILE), Progress(), Play(NOBODY_AVAILABLE, f"{CALL_ID}-0-noanswer"), Hangup("busy")],
                 id="announcement-done-releases-with-the-last-outcome"),
    pytest.param(ONE_PHONE, [returned("BUSY"), playback_done()],
                 [followed(RING_MOBILE), Progress(), Play(NOBODY_AVAILABLE, f"{CALL_ID}-0-noanswer")],
                 id="another-playback-does-not-end-the-no-answer-announcement"),
    # Forwarded to another of the customer's numbers
    pytest.param(FORWARDING, [returned("NOANSWER")], [followed(RING_DESK), RING_MOBILE],
                 id="forward-rings-the-other-numbers-route-without-subscribing-again"),
    pytest.param(FORWARDING, [returned("NOANSWER"), returned("BUSY")],
                 [followed(RING_DESK), RING_MOBILE, Progress(), Play(NOBODY_AVAILABLE, f"{CALL_ID}-1-noanswer")],
                 id="forwarded-route-unanswered-hears-its-announcement-named-by-hop"),
    pytest.param(TO_ANNOUNCEMENT, [returned("NOANSWER")],
                 [followed(RING_DESK), Answer(), Play("sound:hello-world", f"{CALL_ID}-1-announcement")],
                 id="forward-to-an-announcement-only-number-answers-and-plays-it"),
    pytest.param(TO_ANNOUNCEMENT, [returned("NOANSWER"), playback_done(playback_id=f"{CALL_ID}-1-announcement")],
                 [followed(RING_DESK), Answer(), Play("sound:hello-world", f"{CALL_ID}-1-announcement"),
                  Hangup("normal")],
                 id="forwarded-announcement-done-releases-normally"),
    # Dial() ended otherwise
    pytest.param(RING_ALL, [target_dialed(DESK), target_dialed(MOBILE), target_answered(DESK), answered(5.0),
                            returned("ANSWER", 90.0)],
                 [followed(Dial("PJSIP/+31301234567@carrier-out&PJSIP/+31612345601@carrier-out,25", follow=False)),
                  Hangup("normal")],
                 id="connected-call-whose-target-hung-up-releases-the-caller-normally"),
    pytest.param(ONE_PHONE, [returned("CANCEL")], [followed(RING_MOBILE), Hangup("failure")],
                 id="dial-cancelled-releases-with-failure"),
    pytest.param(ONE_PHONE, [returned("NOANSWER"), returned("NOANSWER")],
                 [followed(RING_MOBILE), Progress(), Play(NOBODY_AVAILABLE, f"{CALL_ID}-0-noanswer")],
                 id="second-dial-return-while-announcing-asks-nothing"),
    pytest.param(IN_TURN, [hangup_requested(16, s=5.0)], [followed(RING_DESK)],
                 id="caller-hanging-up-while-dialing-asks-nothing"),
    # The runtime could not subscribe or hand the call to Dial(): the apology, then a release with failure
    pytest.param(ONE_PHONE, [action_failed(), failure_done()], [followed(RING_MOBILE), Progress(), APOLOGY,
                                                                Hangup("failure")],
                 id="failed-hand-over-to-dial-plays-the-apology-then-releases-with-failure"),
    pytest.param(IN_TURN, [returned("BUSY"), action_failed(), failure_done()],
                 [followed(RING_DESK), RING_MOBILE, Progress(), APOLOGY, Hangup("failure")],
                 id="failed-next-step-plays-the-apology-then-releases-with-failure"),
]


class TestRouting:
    """Routed numbers, as whole sequences of events: every action the flow asks for, in order."""

    @pytest.mark.parametrize(("did", "events", "actions"), ROUTED)
    def test_routed_call(self, did: str, events: list[FlowEvent], actions: list[Action]) -> None:
        _, asked = run([started(did), *events], ROUTES)

        assert asked == actions

    @pytest.mark.parametrize("status", ["BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL"])
    def test_sequential_route_goes_on_after_each_unanswered_outcome(self, status: str) -> None:
        call, asked = run([started(IN_TURN), returned(status)], ROUTES)

        assert (call.phase, call.state.step_index, asked[-1]) == (Phase.DIALING, 1, RING_MOBILE)

    @pytest.mark.parametrize(
        ("status", "reason", "cause", "disposition"),
        [("BUSY", "busy", 17, Disposition.BUSY), ("NOANSWER", "no_answer", 19, Disposition.NO_ANSWER),
         ("CONGESTION", "congestion", 34, Disposition.UNREACHABLE),
         ("CHANUNAVAIL", "congestion", 34, Disposition.UNREACHABLE)],
    )
    def test_unanswered_call_is_released_with_the_outcome_and_recorded_as_it(
            self, status: str, reason: str, cause: int, disposition: Disposition) -> None:
        """Early media, never answered (nobody pays), released with the outcome's cause; billing reads it back.

        Released from the app, the channel's StasisEnd is its end (no hand-over is awaited)."""
        _, asked = run([started(ONE_PHONE), continued(), returned(status), noanswer_done(),
                        hangup_requested(None, s=30.1), continued(30.2), destroyed(cause, s=30.3)], ROUTES)

        assert Answer() not in asked
        assert [a for a in asked if isinstance(a, Hangup)] == [Hangup(reason)]
        record = the_cdr(asked)
        assert (record.disposition, record.hangup_cause, record.answered_at, record.ended_at) == (
            disposition, cause, None, at(30.3))

    def test_last_of_several_steps_decides_the_outcome(self) -> None:
        """Busy, then no answer, then unreachable: the caller is released as unreachable."""
        _, asked = run([started(IN_TURN), returned("BUSY"), returned("NOANSWER"), returned("CONGESTION"),
                        noanswer_done(), destroyed(34)], ROUTES)

        assert Hangup("congestion") in asked
        assert (the_cdr(asked).disposition, the_cdr(asked).hangup_cause) == (Disposition.UNREACHABLE, 34)

    @pytest.mark.parametrize("status", ["CANCEL", "DONTCALL", "TORTURE", "INVALIDARGS", ""])
    def test_dial_status_that_is_no_outcome_of_ringing_is_a_failure(self, status: str) -> None:
        _, asked = run([started(ONE_PHONE), returned(status), destroyed(38)], ROUTES)

        assert [a for a in asked if isinstance(a, Hangup)] == [Hangup("failure")]
        assert (the_cdr(asked).disposition, the_cdr(asked).hangup_cause) == (Disposition.FAILED, 38)

    def test_forwarding_loop_is_cut_after_max_hops(self) -> None:
        """LOOP_A and LOOP_B forward to each other: MAX_HOPS forwards, then the announcement and release."""
        call, asked = run([started(LOOP_A), *[returned("NOANSWER")] * (MAX_HOPS + 1)], ROUTES)

        assert [a for a in asked if isinstance(a, Dial)] == [followed(RING_DESK)] + [[RING_DESK, RING_MOBILE][hop % 2]
                                                                                 for hop in range(1, MAX_HOPS + 1)]
        assert asked[-2:] == [Progress(), Play(NOBODY_AVAILABLE, f"{CALL_ID}-{MAX_HOPS}-noanswer")]
        assert (call.phase, call.data.hops) == (Phase.ANNOUNCING, MAX_HOPS)

        _, released = run([noanswer_done(MAX_HOPS), destroyed(19)], ROUTES, call)
        assert released[0] == Hangup("no_answer")
        assert the_cdr(released).disposition is Disposition.NO_ANSWER

    @pytest.mark.parametrize(
        ("instant", "dial"),
        [(datetime(2026, 11, 25, 13, 17, tzinfo=UTC), RING_DESK),  # Wednesday 14:17 CET
         (datetime(2026, 11, 25, 7, 0, tzinfo=UTC), RING_DESK),  # opens at 08:00 CET
         (datetime(2026, 11, 25, 6, 59, tzinfo=UTC), RING_SPARE),
         (datetime(2026, 11, 25, 17, 0, tzinfo=UTC), RING_SPARE),  # closed from 18:00 CET
         (datetime(2026, 11, 28, 12, 0, tzinfo=UTC), RING_SPARE),  # Saturday
         (datetime(2026, 7, 1, 6, 30, tzinfo=UTC), RING_DESK)],  # Wednesday 08:30 CEST
        ids=["weekday-afternoon", "at-opening", "before-opening", "at-closing", "saturday", "summer-time-morning"],
    )
    def test_opening_hours_choose_the_route_when_the_call_starts(self, instant: datetime, dial: Dial) -> None:
        _, asked = step(NEW, started_at(OFFICE, instant), ROUTES)

        assert asked == [followed(dial)]

    def test_forward_to_a_removed_number_records_the_cause_it_released_with(self) -> None:
        _, asked = run([started(TO_REMOVED), returned("BUSY"), noanswer_done(hops=1), destroyed(19)], ROUTES)

        [hangup] = [a for a in asked if isinstance(a, Hangup)]
        assert the_cdr(asked).hangup_cause == Q850[hangup.reason]


class TestDialExtension:
    """A dial goes to fairline-dial as its extension when Asterisk can hold it; else in FAIRLINE_DIAL."""

    @pytest.mark.parametrize("dial", [
        "PJSIP/+31612345601@carrier-out,20",
        "PJSIP/+31612345601@carrier-out&PJSIP/+31301234567@carrier-out,120",
    ])
    def test_one_or_two_phones_on_the_trunk_are_their_own_extension(self, dial: str) -> None:
        assert Dial(dial, follow=False).extension == dial

    @pytest.mark.parametrize("dial", [
        # three phones: 95 characters, and Asterisk truncates an extension after 79
        "PJSIP/+31612345601@carrier-out&PJSIP/+31612345602@carrier-out&PJSIP/+31612345603@carrier-out,20",
        "PJSIP/+31612345601@other-trunk,20",  # only the trunk [fairline-dial] is written for
        "PJSIP/+31612345601@carrier-out,20,m",  # no options: nothing but phones and a ring time
        "PJSIP/31612345601@carrier-out,20",
    ])
    def test_anything_else_needs_the_variable(self, dial: str) -> None:
        assert Dial(dial, follow=False).extension is None


class TestRoutedCallRecord:
    """The one CDR of a routed call: who answered, or why nobody did."""

    @pytest.mark.parametrize(
        ("did", "before", "legs", "target"),
        [(RING_ALL, [], [DESK, MOBILE], DESK), (RING_ALL, [], [DESK, MOBILE], MOBILE),
         (IN_TURN, [target_dialed(DESK), returned("BUSY"), continued()], [MOBILE], MOBILE),
         (FORWARDING, [target_dialed(DESK), returned("NOANSWER"), continued()], [MOBILE], MOBILE)],
        ids=["simultaneous-landline", "simultaneous-mobile", "sequential-second", "after-a-forward"],
    )
    def test_answered_call_records_the_target_that_answered_and_its_kind(
            self, did: str, before: list[FlowEvent], legs: list[Target], target: Target) -> None:
        """The answering leg is matched to the target its Dial event rang (Asterisk 22 names only the leg).

        The caller hangs up in Dial(), out of the app: that ends the call, whether ChannelDestroyed comes or not."""
        _, asked = run([started(did), continued(), *before, *map(target_dialed, legs), target_answered(target, 25.0),
                        answered(25.0), hangup_requested(16, s=90.0), destroyed(16, s=90.1)], ROUTES)

        record = the_cdr(asked)
        assert (record.disposition, record.answered_at, record.ended_at, record.hangup_cause) == (
            Disposition.ANSWERED, at(25.0), at(90.1), 16)
        assert (record.answered_target, record.target_kind) == (target.e164, target.kind.value)

    def test_a_hang_up_that_beats_the_subscription_ends_the_call_once_with_its_cdr(self) -> None:
        """The caller hangs up as fairline hands the call to Dial(): the StasisEnd comes first and looks like
        the hand-over, then the subscription fails (the channel is gone). No ChannelDestroyed will come for
        a channel nobody follows, so the hang-up ends the call instead of leaving it in memory for ever."""
        call, asked = run([started(ONE_PHONE), left(1.0), action_failed(1.1), hangup_requested(16, s=1.2)], ROUTES)

        assert call.phase is Phase.ENDED
        record = the_cdr(asked)
        assert (record.disposition, record.ended_at, record.hangup_cause) == (Disposition.ABANDONED, at(1.2), 16)

    def test_a_failure_in_dial_after_the_hand_over_lets_the_call_ring_on(self) -> None:
        """Out of the app's reach, a failed request changes nothing for the caller: the call goes on."""
        call, asked = run([started(ONE_PHONE), left(1.0), action_failed(1.1)], ROUTES)

        assert call.phase is Phase.DIALING and not [a for a in asked if isinstance(a, WriteCdr)]

    def test_connected_call_released_by_fairline_is_answered_with_normal_clearing(self) -> None:
        _, asked = run([started(ONE_PHONE), target_dialed(MOBILE), target_answered(MOBILE), answered(5.0),
                        returned("ANSWER", 90.0), destroyed(16, 90.1)], ROUTES)

        record = the_cdr(asked)
        assert (record.disposition, record.hangup_cause, record.answered_target, record.target_kind) == (
            Disposition.ANSWERED, 16, MOBILE.e164, "mobile")

    def test_unanswered_call_records_no_target(self) -> None:
        """Billing charges the forwarded leg by the target's kind: none when nobody answered."""
        _, asked = run([started(ONE_PHONE), returned("NOANSWER"), noanswer_done(), destroyed(19)], ROUTES)

        record = the_cdr(asked)
        assert (record.answered_target, record.target_kind) == (None, None)

    @pytest.mark.parametrize(
        "before", [[], [returned("BUSY"), continued()],
                   [returned("NOANSWER"), continued(), returned("CONGESTION"), continued()]],
        ids=["first-step", "after-a-busy-step", "after-two-steps"],
    )
    def test_caller_hanging_up_while_targets_ring_is_abandoned_with_their_cause(
            self, before: list[FlowEvent]) -> None:
        """No release by fairline: the outcome of an earlier step does not make the call busy or unanswered."""
        _, asked = run([started(IN_TURN), continued(), *before, hangup_requested(16, s=50.0),
                        destroyed(16, s=50.1)], ROUTES)

        assert not [a for a in asked if isinstance(a, Hangup)]
        record = the_cdr(asked)
        assert (record.disposition, record.hangup_cause, record.answered_at, record.ended_at) == (
            Disposition.ABANDONED, 16, None, at(50.1))

    def test_followed_call_ignores_stasis_end_and_ends_with_the_channel(self) -> None:
        """Every Dial() takes the channel out of the app (StasisEnd), and fairline subscribed to it: only
        ChannelDestroyed, which Asterisk always sends for it and which carries the cause, ends the call."""
        call, asked = run([started(ONE_PHONE), continued(0.1), returned("BUSY"), noanswer_done(),
                           hangup_requested(None, s=30.1), continued(30.2)], ROUTES)

        assert (call.phase, call.data.followed) == (Phase.RELEASING, True)
        assert not [a for a in asked if isinstance(a, WriteCdr)]

        ended, more = run([destroyed(17, s=30.3), left(30.4), destroyed(17, s=30.5)], ROUTES, call)

        assert ended.phase is Phase.ENDED
        assert [type(a) for a in more] == [WriteCdr]
        assert the_cdr(more).ended_at == at(30.3)

    def test_failed_hand_over_to_dial_is_failed_and_ends_with_stasis_end(self) -> None:
        """The channel never left the app: its StasisEnd after the apology ends the call, recorded failed."""
        _, asked = run([started(ONE_PHONE), action_failed(), failure_done(), hangup_requested(38, s=1.1),
                        left(1.2)], ROUTES)

        record = the_cdr(asked)
        assert (record.disposition, record.hangup_cause, record.answered_at, record.ended_at) == (
            Disposition.FAILED, 38, None, at(1.2))

    def test_channel_destroyed_without_a_hangup_request_keeps_asterisks_cause(self) -> None:
        _, asked = run([started(IN_TURN), destroyed(127, s=4.0)], ROUTES)

        assert (the_cdr(asked).disposition, the_cdr(asked).hangup_cause) == (Disposition.ABANDONED, 127)


ROUTED_EVENT = st.sampled_from(
    [started(did) for did in (RING_ALL, IN_TURN, FORWARDING, LOOP_A, TO_ANNOUNCEMENT, TO_REMOVED, OFFICE,
                              NOT_CONFIGURED)]
    + [returned(status) for status in ("ANSWER", "BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "CANCEL", "")]
    + [target_dialed(t) for t in (DESK, MOBILE, SPARE)]
    + [target_answered(t) for t in (DESK, MOBILE, SPARE)]
    + [noanswer_done(hops) for hops in range(3)]
    + [playback_done(), playback_done(playback_id=f"{CALL_ID}-1-announcement"), noservice_done(), answered(),
       hangup_requested(16), hangup_requested(None), left(), destroyed(16), destroyed(None), action_failed(),
       failure_done(), Ignored("Dial")]
)


class TestWhateverHappensToARoutedCall:
    @settings(max_examples=500, deadline=None)
    @given(st.lists(ROUTED_EVENT, max_size=30))
    def test_any_events_write_at_most_one_cdr_and_nothing_after_it(self, events: list[FlowEvent]) -> None:
        """Never raises; at most one CDR, exactly one once the channel is destroyed; nothing after the end."""
        call, writes, after_end = NEW, 0, []
        for event in events:
            was_ended = call.phase is Phase.ENDED
            call, actions = step(call, event, ROUTES)
            writes += sum(isinstance(a, WriteCdr) for a in actions)
            if was_ended:
                after_end.extend(actions)

        assert writes <= 1
        if any(isinstance(e, CallDestroyed) for e in events):
            assert writes == 1
        assert after_end == []

    @settings(max_examples=500, deadline=None)
    @given(st.lists(ROUTED_EVENT, max_size=30), st.booleans())
    def test_failed_action_is_never_met_with_silence(self, events: list[FlowEvent], failed: bool) -> None:
        """Whether ringing, announcing or forwarded: a failure plays the apology, or releases during it."""
        assert_failures_are_never_met_with_silence([*events, action_failed()], ROUTES, failed)


class TestPurity:
    """The flow is the functional core: no I/O library behind it."""

    def test_flow_imports_no_io_library(self) -> None:
        """The functional core imports no asyncio, aiohttp or asyncpg (checked in a fresh interpreter)."""
        code = (
            "import sys, ari_app.core.flow\n"
            "loaded = sorted({'asyncio', 'aiohttp', 'asyncpg'} & set(sys.modules))\n"
            "print(','.join(loaded))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])

        assert out.stdout.strip() == ""
