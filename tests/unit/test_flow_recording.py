"""Consent-aware recording in the call flow: what the caller hears first, when recording starts, what the CDR says.

The law's table is the shipped one (ari_app/config/jurisdictions.yaml): NL one_party, GB notify,
DE consent; overrides make IT forbidden here.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from ari_app.config.jurisdictions import shipped_law
from ari_app.core.model import Config, Customer, ForwardTo, Number, Recording, Route, Strategy, Target, TargetKind
from ari_app.core.consent import Mode, with_overrides
from ari_app.core.events import CallDestroyed, DtmfReceived, PlaybackDone
from ari_app.core.flow import (
    Action,
    Answer,
    AwaitDigit,
    AwaitRecording,
    Call,
    DigitTimeout,
    Dial,
    FlowEvent,
    Phase,
    Play,
    Progress,
    RecordingLost,
    RecordingStored,
    StartRecording,
    StopPlayback,
    WriteCdr,
    step,
)
from rating.core.cdr import CallRecord, RecordingFile
from rating.core.tariff import NumberType
from tests.unit.test_flow import (
    CALL_ID,
    answered,
    at,
    followed,
    returned,
    run,
    started,
    target_answered,
    target_dialed,
)

RECORDED = "+31201234590"  # rings the desk; recording on through its customer
FORWARDS_ABROAD = "+31201234591"  # rings the desk, then forwards to BELGIAN_DESK's number
BELGIAN_DESK = "+31201234592"  # international forwarding: rings a Belgian phone
NOT_RECORDED = "+31201234593"  # its number turns recording off
DESK = Target("+31301234567", TargetKind.FIXED, 15)
BRUSSELS = Target("+3225123456", TargetKind.FIXED, 15)

DUTCH, BRITISH, GERMAN, ITALIAN = "+31612345678", "+442071234567", "+4915123456789", "+393471234567"

NOTICE = "sound:conf-now-recording"
CONSENT_PROMPT = "sound:conf-now-recording,sound:if-correct-press,sound:digits/1"
RING_DESK = Dial("PJSIP/+31301234567@carrier-out,15", follow=False)
FILE = RecordingFile("/var/lib/fairline/recordings/c1.wav", "ab" * 32, at(30), at(60), Decimal("30.000"))


def number(e164: str, *targets: Target, **more: object) -> Number:
    return Number(e164, "acme", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, targets), **more)  # type: ignore[arg-type]


CONFIG = Config(
    customers={"acme": Customer("acme", "Acme BV", recording=True)},
    numbers={n.e164: n for n in [
        number(RECORDED, DESK),
        dataclasses.replace(number(FORWARDS_ABROAD, DESK), route=Route(Strategy.SIMULTANEOUS, (DESK,),
                                                                       ForwardTo(BELGIAN_DESK))),
        number(BELGIAN_DESK, BRUSSELS, international_forwarding=True),
        number(NOT_RECORDED, DESK, recording=False),
    ]},
    recording=Recording(law=with_overrides(shipped_law(), {"IT": Mode.FORBIDDEN})),
)


def call_from(caller: str | None, did: str = RECORDED) -> list[FlowEvent]:
    return [dataclasses.replace(started(did, caller))]


def done(playback_id: str, s: float, failed: bool = False) -> PlaybackDone:
    return PlaybackDone(CALL_ID, at(s), playback_id, failed)


def digit(d: str, s: float) -> DtmfReceived:
    return DtmfReceived(CALL_ID, at(s), d)


def answered_and_ended(s: float = 10) -> list[FlowEvent]:
    """The desk answers at s, the call ends 50 s later."""
    return [target_dialed(DESK, s - 5), target_answered(DESK, s), answered(s), CallDestroyed(CALL_ID, at(s + 50), 16)]


def the_cdr(actions: list[Action]) -> CallRecord:
    [write] = [a for a in actions if isinstance(a, WriteCdr)]
    return write.record


class TestWhatTheCallerHearsFirst:
    def test_a_dutch_caller_to_a_dutch_number_rings_at_once_and_is_recorded_silently(self) -> None:
        call, asked = run([*call_from(DUTCH), target_dialed(DESK, 0.5), target_answered(DESK, 5)], CONFIG)

        assert asked == [followed(RING_DESK), StartRecording()]
        assert call.record_mode is Mode.ONE_PARTY
        assert "recorded without notice: a participant may record" in call.record_evidence

    def test_a_british_caller_hears_the_notice_as_early_media_before_anything_rings(self) -> None:
        call, asked = run(call_from(BRITISH), CONFIG)

        assert asked == [Progress(), Play(NOTICE, f"{CALL_ID}-notice")]
        assert call.phase is Phase.NOTICE

    def test_recording_starts_only_after_the_notice_played_in_full(self) -> None:
        call, asked = run([*call_from(BRITISH), done(f"{CALL_ID}-notice", 3), target_dialed(DESK, 3.5),
                           target_answered(DESK, 8)], CONFIG)

        assert asked[2:] == [followed(RING_DESK), StartRecording()]
        assert f"notice played in full, ended {at(3).isoformat()}" in call.record_evidence

    def test_a_notice_that_could_not_be_played_means_no_recording_but_the_call_goes_on(self) -> None:
        call, asked = run([*call_from(BRITISH), done(f"{CALL_ID}-notice", 0.1, failed=True),
                           target_dialed(DESK, 0.5), target_answered(DESK, 5)], CONFIG)

        assert asked[2:] == [followed(RING_DESK)]
        assert "not recorded: the notice could not be played" in call.record_evidence

    def test_a_german_caller_is_answered_and_asked_to_agree(self) -> None:
        call, asked = run([*call_from(GERMAN), done(f"{CALL_ID}-consent", 6)], CONFIG)

        assert asked == [Answer(), Play(CONSENT_PROMPT, f"{CALL_ID}-consent"), AwaitDigit(5)]
        assert call.phase is Phase.CONSENT

    @pytest.mark.parametrize("caller", [None, "anonymous-garbage", "+999"], ids=["withheld", "garbage", "invalid"])
    def test_a_caller_whose_place_is_unknown_counts_as_the_strictest_in_the_table(self, caller: str | None) -> None:
        shipped = dataclasses.replace(CONFIG, recording=Recording(law=shipped_law()))
        call, asked = run(call_from(caller), shipped)
        assert asked[0] == Answer() and call.record_mode is Mode.CONSENT  # the shipped table's strictest

        call, asked = run(call_from(caller), CONFIG)  # where a country is forbidden, so is an unknown caller
        assert asked[:1] == [followed(RING_DESK)] and call.record_mode is Mode.FORBIDDEN

    def test_forbidden_by_law_the_call_is_connected_and_never_recorded(self) -> None:
        call, asked = run([*call_from(ITALIAN), *answered_and_ended()], CONFIG)

        assert StartRecording() not in asked and AwaitRecording() not in asked
        record = the_cdr(asked)
        assert (record.recording_mode, record.recorded, record.answered_target) == ("forbidden", False, DESK.e164)
        assert record.recording_evidence is not None and "not recorded: the law forbids it" in record.recording_evidence

    def test_a_number_with_recording_off_records_nothing_and_says_nothing(self) -> None:
        _, asked = run([*call_from(BRITISH, NOT_RECORDED), *answered_and_ended()], CONFIG)

        assert asked[:1] == [followed(RING_DESK)]
        record = the_cdr(asked)
        assert (record.recording_mode, record.recording_evidence, record.recorded) == (None, None, False)


class TestConsent:
    def consenting(self) -> Call:
        call, _ = run([*call_from(GERMAN), done(f"{CALL_ID}-consent", 6)], CONFIG)
        return call

    def test_pressing_1_connects_the_call_and_records_it_once_answered(self) -> None:
        call, asked = run([digit("1", 7), target_dialed(DESK, 7.5), target_answered(DESK, 12)], CONFIG,
                          self.consenting())

        assert asked == [followed(RING_DESK), StartRecording()]
        assert f"caller pressed 1 (agreed) at {at(7).isoformat()}" in call.record_evidence

    def test_pressing_1_during_the_prompt_stops_it(self) -> None:
        call, _ = run(call_from(GERMAN), CONFIG)

        _, asked = step(call, digit("1", 2), CONFIG)

        assert asked == [StopPlayback(f"{CALL_ID}-consent"), followed(RING_DESK)]

    @pytest.mark.parametrize("refusal", [digit("2", 7), DigitTimeout(CALL_ID, at(11))], ids=["pressed-2", "silence"])
    def test_refusal_or_silence_connects_the_call_unrecorded(self, refusal: FlowEvent) -> None:
        _, asked = run([refusal, *answered_and_ended()], CONFIG, self.consenting())

        assert asked[:1] == [followed(RING_DESK)]
        assert StartRecording() not in asked
        record = the_cdr(asked)
        assert (record.recorded, record.answered_target, record.recording_mode) == (False, DESK.e164, "consent")
        assert record.recording_evidence is not None and "not recorded:" in record.recording_evidence

    def test_other_digits_and_an_early_timeout_are_ignored(self) -> None:
        call, _ = run(call_from(GERMAN), CONFIG)

        call, asked = run([digit("5", 1), DigitTimeout(CALL_ID, at(2))], CONFIG, call)

        assert (asked, call.phase) == ([], Phase.CONSENT)

    def test_caller_hanging_up_while_asked_gets_a_cdr_without_recording(self) -> None:
        _, asked = run([CallDestroyed(CALL_ID, at(3), 16)], CONFIG, self.consenting())

        assert the_cdr(asked).recorded is False


class TestTheRecording:
    def recorded(self) -> Call:
        call, _ = run([*call_from(DUTCH), *answered_and_ended()], CONFIG)
        return call

    def test_the_cdr_waits_for_the_stored_recording(self) -> None:
        call, asked = run([*call_from(DUTCH), *answered_and_ended()], CONFIG)

        assert (call.phase, asked[-1]) == (Phase.FINISHING, AwaitRecording())
        assert not any(isinstance(a, WriteCdr) for a in asked)

    def test_the_stored_recording_goes_into_the_cdr_with_its_evidence(self) -> None:
        call, asked = step(self.recorded(), RecordingStored(CALL_ID, at(60.2), FILE), CONFIG)

        record = the_cdr(asked)
        assert (record.recording, record.recording_mode, record.ended_at) == (FILE, "one_party", at(60))
        assert call.phase is Phase.ENDED

    def test_a_lost_recording_still_gives_the_cdr_with_the_reason(self) -> None:
        _, asked = step(self.recorded(), RecordingLost(CALL_ID, at(70), "not stored within 10 s"), CONFIG)

        record = the_cdr(asked)
        assert record.recorded is False
        assert record.recording_evidence is not None and "recording lost: not stored within 10 s" in (
            record.recording_evidence)

    def test_events_other_than_the_recording_do_not_end_a_finishing_call(self) -> None:
        call = self.recorded()

        after, asked = run([CallDestroyed(CALL_ID, at(61), 16), done("x", 62)], CONFIG, call)

        assert (after, asked) == (call, [])

    def test_a_phone_abroad_answering_a_forwarded_call_needs_what_its_country_asks(self) -> None:
        # Dutch caller, Dutch number: silence would do; the call is forwarded and a Belgian phone answers.
        events: list[FlowEvent] = [*call_from(DUTCH, FORWARDS_ABROAD), returned("NOANSWER", 20),
                                   target_dialed(BRUSSELS, 20.5), target_answered(BRUSSELS, 25),
                                   CallDestroyed(CALL_ID, at(80), 16)]
        _, asked = run(events, CONFIG)

        assert StartRecording() not in asked
        record = the_cdr(asked)
        assert record.recording_mode == "consent" and record.recorded is False
        assert record.recording_evidence is not None and "the answering phone needs consent" in (
            record.recording_evidence)


def test_the_recording_is_asked_for_once_even_if_asterisk_repeats_the_answer() -> None:
    _, asked = run([*call_from(DUTCH), target_dialed(DESK, 1), target_answered(DESK, 5), target_answered(DESK, 5.1)],
                   CONFIG)

    assert asked.count(StartRecording()) == 1


def test_ended_at_is_the_calls_end_not_when_the_recording_was_stored() -> None:
    call, _ = run([*call_from(DUTCH), *answered_and_ended(10)], CONFIG)

    _, asked = step(call, RecordingStored(CALL_ID, at(60) + timedelta(seconds=3), FILE), CONFIG)

    assert the_cdr(asked).ended_at == at(60)
