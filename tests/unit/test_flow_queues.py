"""The call flow of a caller in a queue: joined, told their position, connected, overflowed, abandoned.

The queue itself (who is rung, when the cap is reached) is ari_app/core/queueing.py; here the flow's
side: what the caller hears and what the CDR says.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from ari_app.core.model import Announce, Config, Customer, ForwardTo, Queue, Route, Strategy, Target, TargetKind, ToQueue
from ari_app.core.flow import (
    MAX_HOPS,
    Action,
    AgentHungUp,
    Answer,
    Bridge,
    Call,
    DestroyBridge,
    Dial,
    FlowEvent,
    Hangup,
    JoinQueue,
    Phase,
    Play,
    PositionDue,
    Progress,
    QueueConnected,
    QueueOverflowed,
    StartMoh,
    StopMoh,
    StopPlayback,
    step,
)
from ari_app.core.queueing import QueueSpec, RingStrategy
from rating.core.cdr import Disposition, QueueOutcome, QueueVisit
from tests.unit.test_flow import (
    CALL_ID,
    DESK,
    MOBILE,
    answered,
    at,
    destroyed,
    followed,
    playback_done,
    returned,
    routed,
    run,
    started,
    the_cdr,
)

AGENT = "+31612345690"  # a mobile
AGENT_CHANNEL = "c1-agent-1"
SUPPORT = "+31201234580"  # rings the desk, then queue support, which overflows to OVERFLOW_TO
OVERFLOW_TO = "+31201234581"  # rings the mobile
NO_OVERFLOW = "+31201234582"  # rings the desk, then queue plain (no overflow configured)
TO_SALES = "+31201234583"  # rings the desk, then queue sales, which overflows to SALES_BACKUP
SALES_BACKUP = "+31201234584"  # rings the desk, then queue support
GONE_QUEUE = "+31201234585"  # rings the desk, then a queue a reload removed
STRAIGHT = "+31201234586"  # a queue-only route: straight into queue support


def spec(name: str) -> QueueSpec:
    return QueueSpec(name, (AGENT,), RingStrategy.RINGALL, ring_seconds=15, wrapup_seconds=5)


QUEUES = Config(
    customers={"acme": Customer("acme", "Acme BV")},
    numbers={n.e164: n for n in [
        routed(SUPPORT, Route(Strategy.SIMULTANEOUS, (DESK,), ToQueue("support"))),
        routed(OVERFLOW_TO, Route(Strategy.SIMULTANEOUS, (MOBILE,))),
        routed(NO_OVERFLOW, Route(Strategy.SIMULTANEOUS, (DESK,), ToQueue("plain"))),
        routed(TO_SALES, Route(Strategy.SIMULTANEOUS, (DESK,), ToQueue("sales"))),
        routed(SALES_BACKUP, Route(Strategy.SIMULTANEOUS, (DESK,), ToQueue("support"))),
        routed(GONE_QUEUE, Route(Strategy.SIMULTANEOUS, (DESK,), ToQueue("gone"))),
        routed(STRAIGHT, Route(Strategy.SIMULTANEOUS, (), ToQueue("support"))),
    ]},
    queues={
        "support": Queue("acme", spec("support"), ForwardTo(OVERFLOW_TO)),
        "plain": Queue("acme", spec("plain")),
        "sales": Queue("acme", spec("sales"), ForwardTo(SALES_BACKUP)),
    },
)

RING_DESK = Dial("PJSIP/+31301234567@carrier-out,15", follow=False)
# A mobile must press 1 before it takes the call (decision 0031): rung through fairline-confirm, for 30 s more.
RING_MOBILE = Dial("Local/+31612345601-20@fairline-confirm/n,50", follow=False)
JOINED = 20.0  # the desk rang out at 20 s: the caller joins the queue then


def connected(s: float) -> QueueConnected:
    return QueueConnected(CALL_ID, at(s), AGENT, AGENT_CHANNEL)


def overflowed(s: float) -> QueueOverflowed:
    return QueueOverflowed(CALL_ID, at(s))


def position(n: int, s: float) -> PositionDue:
    return PositionDue(CALL_ID, at(s), n)


def queued(did: str = SUPPORT) -> list[FlowEvent]:
    """The caller of `did` rang the desk for 20 s and is now waiting in the queue, answered."""
    return [started(did), returned("NOANSWER", JOINED), answered(JOINED + 0.05)]


def position_id(s: float, visits: int = 0) -> str:
    return f"{CALL_ID}-position-{visits}-{at(s).timestamp():.0f}"


def visit(queue: str, waited: str, outcome: QueueOutcome, entered: float = JOINED) -> QueueVisit:
    return QueueVisit(queue, at(entered), Decimal(waited), outcome)


def after_queued(events: list[FlowEvent], did: str = SUPPORT) -> tuple[Call, list[Action]]:
    """The state and the actions asked for after the caller was queued."""
    call, _ = run(queued(did), QUEUES)
    return run(events, QUEUES, call)


class TestJoining:
    def test_unanswered_route_ending_in_a_queue_joins_it_then_answers_with_music_on_hold(self) -> None:
        call, asked = run(queued(), QUEUES)

        assert asked == [followed(RING_DESK), JoinQueue("support"), Answer(), StartMoh()]
        assert (call.phase, call.state.queue, call.state.entered_at) == (Phase.QUEUED, "support", at(JOINED))

    def test_queue_only_route_puts_the_caller_in_line_at_once_without_ringing_anyone_first(self) -> None:
        call, asked = run([started(STRAIGHT)], QUEUES)

        assert asked == [JoinQueue("support"), Answer(), StartMoh()]
        assert (call.phase, call.state.queue, call.state.entered_at, call.data.followed) == (
            Phase.QUEUED, "support", at(0.001), False)

    def test_queue_only_caller_connected_to_an_agent_is_billed_as_an_answered_queue_call(self) -> None:
        _, asked = run([started(STRAIGHT), answered(0.05), connected(12.501), AgentHungUp(CALL_ID, at(72.5)),
                        destroyed(16, 72.6)], QUEUES)

        cdr = the_cdr(asked)
        assert (cdr.disposition, cdr.answered_target, cdr.queue_visits) == (
            Disposition.ANSWERED, AGENT, (visit("support", "12.500", QueueOutcome.ANSWERED, entered=0.001),))

    def test_a_queue_a_reload_removed_ends_with_the_no_answer_announcement_unanswered(self) -> None:
        call, asked = run([started(GONE_QUEUE), returned("NOANSWER", JOINED)], QUEUES)

        assert asked == [followed(RING_DESK), Progress(), Play("sound:vm-nobodyavail", f"{CALL_ID}-0-noanswer")]
        assert call.phase is Phase.ANNOUNCING


class TestWaiting:
    def test_position_is_announced_without_music_then_the_music_resumes(self) -> None:
        call, asked = after_queued([position(2, 40), playback_done(s=45, playback_id=position_id(40))])

        assert asked == [StopMoh(), Play("sound:queue-thereare,number:2,sound:queue-callswaiting", position_id(40)),
                         StartMoh()]
        assert (call.phase, call.state.playing) == (Phase.QUEUED, None)

    def test_next_in_line_hears_so(self) -> None:
        _, asked = after_queued([position(1, 40)])

        assert asked == [StopMoh(), Play("sound:queue-youarenext", position_id(40))]

    def test_a_position_due_while_one_plays_is_skipped(self) -> None:
        _, asked = after_queued([position(2, 40), position(1, 41)])

        assert [a for a in asked if isinstance(a, Play)] == [
            Play("sound:queue-thereare,number:2,sound:queue-callswaiting", position_id(40))]

    def test_another_playback_ending_does_not_restart_the_music(self) -> None:
        _, asked = after_queued([position(2, 40), playback_done(s=41, playback_id="someone-else")])

        assert StartMoh() not in asked


class TestConnected:
    def test_agent_answering_stops_the_music_and_bridges_the_caller_with_the_agent(self) -> None:
        call, asked = after_queued([connected(31.5)])

        assert asked == [StopMoh(), Bridge(AGENT_CHANNEL)]
        assert (call.phase, call.state.agent_channel) == (Phase.CONNECTED, AGENT_CHANNEL)
        assert call.data.visits == (visit("support", "11.500", QueueOutcome.ANSWERED),)

    def test_agent_answering_during_the_position_announcement_cuts_it_short(self) -> None:
        _, asked = after_queued([position(2, 40), connected(41)])

        assert asked[-3:] == [StopPlayback(position_id(40)), StopMoh(), Bridge(AGENT_CHANNEL)]

    def test_agent_hanging_up_releases_the_caller_and_the_cdr_names_the_agent(self) -> None:
        _, asked = after_queued([connected(31.5), AgentHungUp(CALL_ID, at(90)), destroyed(16, 90.1)])

        assert asked[2] == Hangup("normal")
        assert asked[4] == DestroyBridge()  # after the CDR: a failure to remove it must not lose the CDR
        record = the_cdr(asked)
        assert (record.disposition, record.answered_target, record.target_kind) == (
            Disposition.ANSWERED, AGENT, "mobile")
        assert (record.queue, record.queue_wait_seconds, record.queue_disposition, record.queue_overflows) == (
            "support", Decimal("11.500"), QueueOutcome.ANSWERED, 0)

    def test_caller_hanging_up_while_connected_removes_the_bridge_and_writes_the_cdr(self) -> None:
        call, asked = after_queued([connected(31.5), destroyed(16, 90)])

        assert asked[-1] == DestroyBridge()
        assert the_cdr(asked).ended_at == at(90)
        assert call.phase is Phase.ENDED


class TestAbandoned:
    def test_caller_hanging_up_while_waiting_is_recorded_abandoned_with_the_time_waited(self) -> None:
        _, asked = after_queued([destroyed(16, 47.25)])

        record = the_cdr(asked)
        assert record.queue_visits == (visit("support", "27.250", QueueOutcome.ABANDONED),)
        assert record.queue_disposition is QueueOutcome.ABANDONED
        assert DestroyBridge() not in asked  # never bridged
        # Answered when queued: the line was open (and billable) while the caller waited.
        assert (record.disposition, record.answered_at, record.answered_target) == (
            Disposition.ANSWERED, at(JOINED + 0.05), None)


class TestCapReached:
    def test_overflow_to_a_number_announces_then_rings_that_numbers_route(self) -> None:
        call, asked = after_queued([overflowed(80), playback_done(s=82, playback_id=f"{CALL_ID}-0-overflow")])

        assert asked == [StopMoh(), Play("sound:pls-hold-while-try", f"{CALL_ID}-0-overflow"), RING_MOBILE]
        assert (call.phase, call.data.hops, call.state.number) == (Phase.DIALING, 1, OVERFLOW_TO)
        assert call.data.visits == (visit("support", "60.000", QueueOutcome.OVERFLOWED),)

    def test_overflowed_call_answered_at_the_other_number_records_both(self) -> None:
        _, asked = after_queued([overflowed(80), playback_done(s=82, playback_id=f"{CALL_ID}-0-overflow"),
                                 returned("ANSWER", 120), destroyed(16, 120.1)])

        record = the_cdr(asked)
        assert (record.disposition, record.queue_disposition, record.queue_overflows, record.queue_wait_seconds) == (
            Disposition.ANSWERED, QueueOutcome.OVERFLOWED, 1, Decimal("60.000"))

    def test_no_overflow_configured_the_caller_hears_the_message_and_the_call_ends_normally(self) -> None:
        call, asked = after_queued([overflowed(80), playback_done(s=83, playback_id=f"{CALL_ID}-0-queue-timeout"),
                                    destroyed(16, 83.1)], did=NO_OVERFLOW)

        assert asked[:3] == [StopMoh(), Play("sound:vm-nobodyavail", f"{CALL_ID}-0-queue-timeout"), Hangup("normal")]
        record = the_cdr(asked)
        assert (record.queue, record.queue_disposition, record.hangup_cause) == ("plain", QueueOutcome.QUEUE_TIMEOUT, 16)

    def test_cap_reached_during_the_position_announcement_stops_it_first(self) -> None:
        _, asked = after_queued([position(2, 79), overflowed(80)])

        assert asked[2:5] == [StopPlayback(position_id(79)), StopMoh(),
                              Play("sound:pls-hold-while-try", f"{CALL_ID}-0-overflow")]

    def test_overflow_into_another_queue_adds_up_the_waits(self) -> None:
        # sales from 20 s to 80 s, "please hold", the backup's desk rings 15 s: the minute ran out at 80 s, so the
        # second queue is joined with nothing left (-17 s) and its runtime sends the caller on at once.
        events: list[Any] = [overflowed(80), playback_done(s=82, playback_id=f"{CALL_ID}-0-overflow"),
                             returned("NOANSWER", 97), overflowed(97.01),
                             playback_done(s=99, playback_id=f"{CALL_ID}-1-overflow"),
                             returned("NOANSWER", 119), destroyed(16, 130)]
        call, asked = after_queued(events, did=TO_SALES)

        record = the_cdr(asked)
        assert [(v.queue, v.outcome) for v in record.queue_visits] == [
            ("sales", QueueOutcome.OVERFLOWED), ("support", QueueOutcome.OVERFLOWED)]
        assert (record.queue, record.queue_overflows, record.queue_wait_seconds) == ("sales", 2, Decimal("60.010"))
        assert JoinQueue("support", -17.0) in asked and StartMoh() in asked
        assert Answer() not in asked  # answered once, when first queued

    def test_no_overflow_beyond_the_hop_limit(self) -> None:
        call, _ = run(queued(), QUEUES)
        call, asked = step(dataclasses.replace(call, data=dataclasses.replace(call.data, hops=MAX_HOPS)), overflowed(80),
                           QUEUES)

        assert asked == [StopMoh(), Play("sound:vm-nobodyavail", f"{CALL_ID}-{MAX_HOPS}-queue-timeout")]
        assert call.data.visits[-1].outcome is QueueOutcome.QUEUE_TIMEOUT

    @pytest.mark.parametrize("late", [connected(81), position(1, 81), overflowed(81)],
                             ids=["connected", "position", "overflowed"])
    def test_queue_events_after_the_overflow_change_nothing(self, late: FlowEvent) -> None:
        before, _ = after_queued([overflowed(80)])

        after, asked = step(before, late, QUEUES)

        assert (after, asked) == (before, [])


def test_an_overflow_to_a_phone_rings_it_then_plays_the_default_announcement() -> None:
    phone = Target("+31612345699", TargetKind.MOBILE, 20)
    cfg = Config(customers=QUEUES.customers, numbers=QUEUES.numbers,
                 queues={**QUEUES.queues, "plain": Queue("acme", spec("plain"), phone)})

    call, asked = run([*queued(NO_OVERFLOW), overflowed(80), playback_done(s=82, playback_id=f"{CALL_ID}-0-overflow"),
                       returned("NOANSWER", 102)], cfg)

    assert asked[-4:] == [Play("sound:pls-hold-while-try", f"{CALL_ID}-0-overflow"),
                          Dial("Local/+31612345699-20@fairline-confirm/n,50", follow=False), Progress(),
                          Play("sound:vm-nobodyavail", f"{CALL_ID}-1-noanswer")]
    assert call.data.visits[-1].outcome is QueueOutcome.OVERFLOWED


def test_an_announce_overflow_uses_its_own_sound() -> None:
    cfg = Config(customers=QUEUES.customers, numbers=QUEUES.numbers,
                 queues={**QUEUES.queues, "plain": Queue("acme", spec("plain"), Announce("custom-closed"))})
    call, _ = run(queued(NO_OVERFLOW), cfg)

    _, asked = step(call, overflowed(80), cfg)

    assert asked[-1] == Play("sound:custom-closed", f"{CALL_ID}-0-queue-timeout")
