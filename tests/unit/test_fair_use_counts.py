"""What fair use counts (decision 0028): handled calls, and never a call answered abroad as eligible.

`handled` is tested on CDRs written by hand for every way a call ends, then on CDRs the
call flow itself writes, so the rule and what the flow records cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ari_app.core.events import CallDestroyed
from rating.core.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit, RecordingFile, rate_record
from rating.core.handled import handled
from rating.core.tariff import DEFAULT_RATES, NumberType
from tests.unit import test_flow_queues as queues
from tests.unit import test_flow_recording as recording
from tests.unit.test_flow import (CALL_ID, answered, at, destroyed, returned, run, target_answered, target_dialed,
                                  the_cdr)

START = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # Tuesday 10:00 in Amsterdam
NUMBER = "+31201234567"
PHONE = "+31612345601"  # a Dutch mobile: a target or an agent
PHONE_ABROAD = "+32470123456"  # a Belgian mobile
SOURCES = ("live", "import", "asterisk")


def visit(outcome: QueueOutcome, queue: str = "support", after: float = 1) -> QueueVisit:
    return QueueVisit(queue, START + timedelta(seconds=after), Decimal("20"), outcome)


def cdr(disposition: Disposition = Disposition.ANSWERED, *, target: str | None = None,
        visits: tuple[QueueVisit, ...] = (), did: str = NUMBER) -> CallRecord:
    """A call of 90 s, answered 1 s after it started when its disposition says so."""
    answer = START + timedelta(seconds=1) if disposition is Disposition.ANSWERED else None
    return CallRecord("c1", did, "+31612345678", START, answer, START + timedelta(seconds=90), disposition, 16,
                      answered_target=target, target_kind="mobile" if target else None, queue_visits=visits)


OVERFLOWED = visit(QueueOutcome.OVERFLOWED)
HANDLED_CALLS = [
    pytest.param(cdr(target=PHONE), id="a-target-answered"),
    pytest.param(cdr(target=PHONE_ABROAD), id="a-target-abroad-answered"),
    pytest.param(cdr(target=PHONE, visits=(visit(QueueOutcome.ANSWERED),)), id="a-queue-agent-answered"),
    # An agent whose phone billing cannot type (answered_target unknown): the queue says an agent took it.
    pytest.param(cdr(visits=(visit(QueueOutcome.ANSWERED),)), id="a-queue-agent-of-unknown-kind-answered"),
    pytest.param(cdr(target=PHONE, visits=(OVERFLOWED,)), id="overflowed-to-a-phone-that-answered"),
    pytest.param(cdr(target=PHONE, visits=(OVERFLOWED, visit(QueueOutcome.ANSWERED, "desk", 70))),
                 id="overflowed-into-a-second-queue-whose-agent-answered"),
]
NOT_HANDLED_CALLS = [
    # fairline answered the caller itself, and nobody of the customer's came on:
    pytest.param(cdr(visits=(visit(QueueOutcome.ABANDONED),)), id="gave-up-waiting-in-a-queue"),
    pytest.param(cdr(visits=(visit(QueueOutcome.QUEUE_TIMEOUT),)), id="queue-wait-cap-reached-then-released"),
    pytest.param(cdr(visits=(OVERFLOWED, visit(QueueOutcome.ABANDONED, "desk", 70))),
                 id="gave-up-in-the-queue-it-overflowed-into"),
    pytest.param(cdr(visits=(OVERFLOWED,)), id="overflowed-to-a-number-nobody-answered"),
    pytest.param(cdr(), id="answered-only-for-a-consent-prompt-or-an-announcement"),
    # never answered:
    *(pytest.param(cdr(d), id=f"{d.value}") for d in Disposition if d is not Disposition.ANSWERED),
    pytest.param(cdr(Disposition.ABANDONED, visits=()), id="abandoned-while-ringing"),
]


class TestHandled:
    @pytest.mark.parametrize("call", HANDLED_CALLS)
    def test_a_call_a_person_of_the_customers_took_counts(self, call: CallRecord) -> None:
        assert handled(call, "live") is True

    @pytest.mark.parametrize("call", NOT_HANDLED_CALLS)
    def test_a_call_nobody_of_the_customers_took_does_not_count(self, call: CallRecord) -> None:
        assert handled(call, "live") is False

    @pytest.mark.parametrize("source", ["import", "asterisk"])
    def test_a_record_that_does_not_say_who_answered_counts_when_answered(self, source: str) -> None:
        """An imported line or Asterisk's own record carries no target and no queue: answered is all it tells."""
        assert handled(cdr(), source) is True
        assert handled(cdr(Disposition.ABANDONED), source) is False

    def test_a_voicemail_message_left_counts_hearing_the_greeting_and_hanging_up_does_not(self) -> None:
        """Decision 0028: the caller's request reached the customer. A message is a stored file on the CDR."""
        message = RecordingFile("/recordings/c1-voicemail.wav", "0" * 64, START + timedelta(seconds=8),
                                START + timedelta(seconds=20), Decimal("12.000"))
        assert handled(dataclasses.replace(cdr(), voicemail=message), "live") is True
        assert handled(cdr(), "live") is False  # answered for the greeting only: no message

    def test_every_combination_follows_the_rule(self) -> None:
        """Exhaustive over disposition x answering phone x queue history x source."""
        histories: list[tuple[QueueVisit, ...]] = [
            (), *((visit(o),) for o in QueueOutcome),
            *((OVERFLOWED, visit(o, "desk", 70)) for o in QueueOutcome),
        ]
        for disposition, target, visits, source in itertools.product(
                Disposition, (None, PHONE), histories, SOURCES):
            call = cdr(disposition, target=target, visits=visits)
            agent_took_it = bool(visits) and visits[-1].outcome is QueueOutcome.ANSWERED
            expected = (call.answered_at is not None
                        and (source != "live" or target is not None or agent_took_it))
            assert handled(call, source) is expected, (disposition, target, visits, source)


class TestWhatTheFlowWrites:
    """The flow's own CDRs, from recorded event sequences (tests/unit/test_flow_*.py), counted by the rule."""

    def test_a_caller_who_gave_up_waiting_in_a_queue_was_answered_but_not_handled(self) -> None:
        _, asked = queues.after_queued([destroyed(16, 47.25)])
        record = the_cdr(asked)
        assert record.answered_at is not None and handled(record, "live") is False

    def test_a_caller_connected_to_a_queue_agent_was_handled(self) -> None:
        _, asked = queues.after_queued([queues.connected(31.5), destroyed(16, 90)])
        assert handled(the_cdr(asked), "live") is True

    def test_a_caller_answered_for_the_consent_prompt_whom_nobody_then_answered_was_not_handled(self) -> None:
        consenting, _ = run([*recording.call_from(recording.GERMAN), answered(0.5),
                                       recording.done(f"{CALL_ID}-consent", 6)], recording.CONFIG)
        _, asked = run([recording.digit("2", 7), returned("NOANSWER", 22),
                                  CallDestroyed(CALL_ID, at(25), 16)], recording.CONFIG, consenting)
        record = the_cdr(asked)
        assert (record.disposition, record.answered_target) == (Disposition.ANSWERED, None)
        assert handled(record, "live") is False

    def test_a_caller_answered_for_the_consent_prompt_then_by_the_desk_was_handled(self) -> None:
        consenting, _ = run([*recording.call_from(recording.GERMAN), answered(0.5),
                                       recording.done(f"{CALL_ID}-consent", 6)], recording.CONFIG)
        _, asked = run([recording.digit("2", 7), *recording.answered_and_ended()], recording.CONFIG,
                                 consenting)
        assert handled(the_cdr(asked), "live") is True


class TestAnsweredAbroad:
    """The same-country rule (rating/core/cdr.py rate_record): a call answered in another country than the
    number's (international_forwarding) is never fair-use eligible, priced or not."""

    @pytest.mark.parametrize("number_type", [NumberType.LOCAL, NumberType.NATIONAL])
    def test_an_eligible_number_answered_abroad_is_not_eligible(self, number_type: NumberType) -> None:
        rated = rate_record(cdr(target=PHONE_ABROAD), "acme", number_type, DEFAULT_RATES)
        assert rated.price.fair_use_eligible is False
        assert rated.price.list_price_eur == Decimal("0.1438")  # priced as any call: 0.04 + 89 s at peak

    def test_the_same_call_answered_at_home_is_eligible(self) -> None:
        assert rate_record(cdr(target=PHONE), "acme", NumberType.LOCAL, DEFAULT_RATES).price.fair_use_eligible

    def test_a_queue_agent_abroad_makes_it_ineligible_too(self) -> None:
        call = cdr(target=PHONE_ABROAD, visits=(visit(QueueOutcome.ANSWERED),))
        assert rate_record(call, "acme", NumberType.LOCAL, DEFAULT_RATES).price.fair_use_eligible is False

    def test_a_call_answered_abroad_that_could_not_be_priced_is_not_eligible_either(self) -> None:
        """Before the first tariff version: kept unpriced, and still not eligible."""
        early = dataclasses.replace(cdr(target=PHONE_ABROAD), started_at=datetime(1999, 6, 1, 12, tzinfo=UTC),
                                    answered_at=datetime(1999, 6, 1, 12, 0, 1, tzinfo=UTC),
                                    ended_at=datetime(1999, 6, 1, 12, 1, tzinfo=UTC))
        rated = rate_record(early, "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert rated.rating_error is not None
        assert rated.price.fair_use_eligible is False

    def test_a_number_that_is_never_eligible_stays_so_at_home(self) -> None:
        assert not rate_record(cdr(target=PHONE), "acme", NumberType.TOLLFREE, DEFAULT_RATES).price.fair_use_eligible

    def test_unanswered_there_is_no_country_to_compare(self) -> None:
        rated = rate_record(cdr(Disposition.NO_ANSWER), "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert rated.price.fair_use_eligible is True and rated.price.list_price_eur == 0

    def test_the_flows_cdr_of_a_call_forwarded_to_a_phone_abroad_is_not_eligible(self) -> None:
        """The desk does not answer; the route forwards to the Belgian desk's number, whose phone in Brussels
        answers (tests/unit/test_flow_recording.py's configuration)."""
        events = [*recording.call_from(recording.DUTCH, recording.FORWARDS_ABROAD), returned("NOANSWER", 15),
                  target_dialed(recording.BRUSSELS, 16), target_answered(recording.BRUSSELS, 20), answered(20),
                  CallDestroyed(CALL_ID, at(60), 16)]
        _, asked = run(events, recording.CONFIG)
        record = the_cdr(asked)
        assert record.answered_target == recording.BRUSSELS.e164
        rated = rate_record(record, "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert rated.price.fair_use_eligible is False and handled(record, "live") is True
