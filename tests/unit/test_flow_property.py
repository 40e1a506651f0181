"""Whatever Asterisk and the caller do, every call ends once, with one CDR, and nothing stays in memory.

A small simulator answers the flow's actions the way Asterisk and the runtime do (a Play
finishes, a Dial() hands the channel over and returns with some DIALSTATUS, a queue
connects or overflows, timers fire), so every phase of every kind of route is really
reached; hypothesis picks which reply comes next, when the caller hangs up (ChannelHangupRequest
and StasisEnd in either order, ChannelDestroyed or not) and which actions fail.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.core.flow import (
    Action,
    ActionFailed,
    Adopted,
    AgentHungUp,
    Answer,
    AwaitDigit,
    AwaitRecording,
    Bridge,
    Call,
    Dial,
    DigitTimeout,
    FlowEvent,
    Found,
    Hangup,
    JoinQueue,
    Phase,
    Play,
    PositionDue,
    Progress,
    QueueConnected,
    QueueOverflowed,
    RecordingLost,
    RecordingStored,
    StartMoh,
    StartRecording,
    WriteCdr,
    step,
)
from ari_app.core.model import Config
from ari_app.core.consent import Mode
from ari_app.core.events import (
    CallAnswered,
    CallDestroyed,
    CallLeft,
    CallStarted,
    DialReturned,
    DtmfReceived,
    HangupRequested,
    PlaybackDone,
    TargetAnswered,
    TargetConfirmed,
    TargetDialed,
)
from tests.unit.test_flow import (
    CONFIGURED,
    FORWARDING,
    IN_TURN,
    NOT_CONFIGURED,
    OFFICE,
    RING_ALL,
    ROUTES,
    TO_ANNOUNCEMENT,
    TO_REMOVED,
)
from tests.unit.test_flow_queues import QUEUES, STRAIGHT, SUPPORT, TO_SALES
from tests.unit.test_flow_recording import BRITISH, CONFIG as RECORDING, DUTCH, FILE, GERMAN, RECORDED

ID = "c1"
CALLER = "+31612345678"
T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # a Wednesday afternoon: offices open
SATURDAY = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # offices closed: the outside-hours route
# What starts nothing new on the channel: after the caller hung up, none of these may be asked for.
STARTS = (Answer, Progress, Play, Dial, JoinQueue, StartMoh, Bridge, AwaitDigit, StartRecording)
# Requests on the caller's channel that fail with 404 once it is gone (the others forgive a 404).
CHANNEL_REQUESTS = (Answer, Progress, Play, Dial, StartMoh, Bridge, Hangup)


def started(did: str, caller: str = CALLER, t0: datetime = T0) -> Callable[[datetime], FlowEvent]:
    return lambda at: CallStarted(ID, at, did, caller, started_at=t0, state="Ring")


def adopted(where: Found, did: str = RING_ALL, recorded: bool = False) -> Callable[[datetime], FlowEvent]:
    answered = None if where is Found.DIALING else T0
    agent = "c1-agent-1" if where is Found.BRIDGED else None
    terms = (Mode.CONSENT, "caller pressed 1") if recorded else None
    return lambda at: Adopted(ID, at, did, CALLER, T0, answered, where, agent, terms)


def returned_unknown(status: str) -> Callable[[datetime], FlowEvent]:
    return lambda at: DialReturned(ID, at, status, RING_ALL, CALLER, T0, status == "ANSWER")


# (config, first event, where the channel is when the flow first hears of it)
SCENARIOS: dict[str, tuple[Config, Callable[[datetime], FlowEvent], str]] = {
    "forward-simultaneous": (ROUTES, started(RING_ALL), "app"),
    "sequential": (ROUTES, started(IN_TURN), "app"),
    "forward-to-another-number": (ROUTES, started(FORWARDING), "app"),
    "forward-to-an-announcement": (ROUTES, started(TO_ANNOUNCEMENT), "app"),
    "forward-to-a-removed-number": (ROUTES, started(TO_REMOVED), "app"),
    "out-of-hours": (ROUTES, started(OFFICE, t0=SATURDAY), "app"),
    "announcement-only": (ROUTES, started(CONFIGURED), "app"),
    "unknown-number": (ROUTES, started(NOT_CONFIGURED), "app"),
    "no-answer-queue": (QUEUES, started(SUPPORT), "app"),
    "queue-overflowing-to-a-number": (QUEUES, started(TO_SALES), "app"),
    "queue-only": (QUEUES, started(STRAIGHT), "app"),
    "consent": (RECORDING, started(RECORDED, GERMAN), "app"),
    "notice": (RECORDING, started(RECORDED, BRITISH), "app"),
    "one-party": (RECORDING, started(RECORDED, DUTCH), "app"),
    "adopted-dialing": (ROUTES, adopted(Found.DIALING), "dialplan"),
    "adopted-bridged": (QUEUES, adopted(Found.BRIDGED, SUPPORT, recorded=True), "app"),
    "adopted-held": (QUEUES, adopted(Found.HELD, SUPPORT), "app"),
    "returned-to-a-new-fairline": (ROUTES, returned_unknown("NOANSWER"), "app"),
    "returned-answered-to-a-new-fairline": (ROUTES, returned_unknown("ANSWER"), "app"),
}
DIALSTATUS = ["ANSWER", "BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "CANCEL"]


@dataclasses.dataclass
class Asterisk:
    """The channel and the runtime around the flow: what each action brings back, and when."""

    draw: st.DataObject
    config: Config
    where: str  # "app" (in Stasis), "dialplan" (in Dial()) or "gone" (hung up)
    call: Call = Call(ID)
    now: datetime = T0
    subscribed: bool = False
    # Each entry is a sequence of events that come in this order; entries interleave freely.
    pending: list[list[FlowEvent]] = dataclasses.field(default_factory=list)
    timers: list[FlowEvent] = dataclasses.field(default_factory=list)  # the runtime's: they always fire
    ended: int = 0
    cdrs: int = 0
    bye: FlowEvent | None = None  # the caller's HangupRequested, once they hung up
    flow_saw_bye: bool = False
    after_end: list[Action] = dataclasses.field(default_factory=list)
    started_after_hangup: list[Action] = dataclasses.field(default_factory=list)

    def at(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def feed(self, event: FlowEvent) -> None:
        was_ended = self.call.phase is Phase.ENDED
        self.call, actions = step(self.call, event, self.config)
        if was_ended:
            self.after_end.extend(actions)
        elif self.call.phase is Phase.ENDED:
            self.ended += 1
        self.flow_saw_bye = self.flow_saw_bye or event is self.bye
        if self.flow_saw_bye:
            self.started_after_hangup.extend(a for a in actions if isinstance(a, STARTS))
        for action in actions:
            if not self.execute(action):
                break  # the runtime gives up the rest of the actions once one failed

    def execute(self, action: Action) -> bool:
        """Carry `action` out; False if it failed."""
        if isinstance(action, WriteCdr):
            self.cdrs += 1
            return True
        if isinstance(action, AwaitRecording):
            stored = self.draw.draw(st.booleans(), label="recording stored")
            self.timers.append(RecordingStored(ID, self.at(), FILE) if stored
                               else RecordingLost(ID, self.at(), "not stored in time"))
            return True
        if self.where == "gone" and isinstance(action, CHANNEL_REQUESTS):
            # A request on a gone channel: 404 (ChannelGone: the runtime stops, feeds nothing), or, for a
            # subscription, 422 "Event source does not exist" (an ARI error: ActionFailed).
            if isinstance(action, Dial) and action.follow:
                self.pending.append([ActionFailed(ID, self.at())])
            return False
        if self.draw.draw(st.integers(0, 19), label="action fails") == 0:
            self.pending.append([ActionFailed(ID, self.at())])
            return False
        match action:
            case Play(playback_id=playback_id):
                self.pending.append([PlaybackDone(ID, self.at(), playback_id, self.draw.draw(st.booleans()))])
                if playback_id.endswith("-consent"):
                    self.pending.append([DtmfReceived(ID, self.at(), self.draw.draw(st.sampled_from("12")))])
            case Answer():
                self.pending.append([CallAnswered(ID, self.at())])
            case Dial(dial=dial, follow=follow):
                self.subscribed = self.subscribed or follow
                self.where = "dialplan"
                self.pending.append([CallLeft(ID, self.at()), *self.dial_outcome(dial)])
            case AwaitDigit():
                self.timers.append(DigitTimeout(ID, self.at()))
            case JoinQueue():
                self.pending.append([PositionDue(ID, self.at(), 2)])
                self.pending.append([self.draw.draw(st.sampled_from(
                    [QueueConnected(ID, self.at(), "+31612345690", "c1-agent-1"), QueueOverflowed(ID, self.at())]))])
            case Bridge():
                self.pending.append([AgentHungUp(ID, self.at())])
            case Hangup():  # fairline releases the channel, which is in the app
                self.where = "gone"
                self.pending.append([HangupRequested(ID, self.at(), None), CallLeft(ID, self.at()),
                                     *([CallDestroyed(ID, self.at(), 16)] if self.subscribed else [])])
        return True

    def dial_outcome(self, dial: str) -> list[FlowEvent]:
        """What comes back from Dial() after the hand-over: the legs' Dial events, then the channel itself."""
        status = self.draw.draw(st.sampled_from(DIALSTATUS), label="DIALSTATUS")
        phone = re.match(r"(PJSIP|Local)/(\+[0-9]+)[@-]", dial)
        assert phone is not None
        events: list[FlowEvent] = [TargetDialed(ID, self.at(), "leg-1", phone.group(2))]
        if phone.group(1) == "Local" and (status == "ANSWER" or self.draw.draw(st.booleans(), label="unconfirmed")):
            # A phone that must confirm: it pressed 1 before its leg answered, or answered and did not.
            events.append(TargetConfirmed(ID, self.at(), phone.group(2), confirmed=status == "ANSWER"))
        if status == "ANSWER":
            events += [TargetAnswered(ID, self.at(), "leg-1"), CallAnswered(ID, self.at())]
        return [*events, DialReturned(ID, self.at(), status)]

    def caller_hangs_up(self) -> None:
        """The caller's BYE: HangupRequested and StasisEnd (only if in the app) in either order; ChannelDestroyed
        follows (for a subscribed channel always, else it may get lost). Whatever was still to come from Dial() does not come any more."""
        in_app = self.where == "app"
        self.where = "gone"
        kept = ([e for e in seq if not isinstance(e, (DialReturned, TargetDialed, TargetAnswered, TargetConfirmed))]
                for seq in self.pending)
        self.pending = [seq for seq in kept if seq]
        self.bye = HangupRequested(ID, self.at(), 16)
        pair: list[FlowEvent] = [self.bye]
        if in_app:
            left: FlowEvent = CallLeft(ID, self.at())
            pair = [left, *pair] if self.draw.draw(st.booleans(), label="StasisEnd first") else [*pair, left]
        # Asterisk reports the destruction of a channel the app subscribed to; of another, maybe not.
        if self.subscribed or self.draw.draw(st.booleans(), label="ChannelDestroyed delivered"):
            pair.append(CallDestroyed(ID, self.at(), 16))
        self.pending.append(pair)

    def deliver(self, index: int) -> None:
        sequence = self.pending[index]
        event = sequence.pop(0)
        if not sequence:
            del self.pending[index]
        if isinstance(event, DialReturned):
            self.where = "app"
        self.feed(event)

    def drain(self) -> None:
        """Everything still on its way arrives, timers fire; a caller still there hangs up in the end."""
        for _ in range(200):
            self.pending = [seq for seq in self.pending if seq]
            if self.pending:
                self.deliver(0)
            elif self.timers:
                self.feed(self.timers.pop(0))
            elif self.where != "gone":
                self.caller_hangs_up()
            else:
                return


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(SCENARIOS)), st.data())
def test_every_call_ends_once_with_one_cdr_and_nothing_left(scenario: str, data: st.DataObject) -> None:
    """Hang-ups and failures at any point: one end, one CDR, nothing asked after it, nothing new started
    after the caller hung up, and the call ended once the channel's last events and timers came."""
    config, first, where = SCENARIOS[scenario]
    sim = Asterisk(data, config, where, subscribed=where == "dialplan")
    if where == "dialplan":  # the adopted call's Dial() goes on
        sim.pending.append(sim.dial_outcome("PJSIP/+31301234567@carrier-out,15"))
    sim.feed(first(sim.at()))
    for _ in range(data.draw(st.integers(0, 25), label="steps")):
        choices = len(sim.pending) + 3
        choice = data.draw(st.integers(0, choices - 1), label="next")
        if choice < len(sim.pending):
            sim.deliver(choice)
        elif choice == len(sim.pending) and sim.where != "gone":
            sim.caller_hangs_up()
        elif choice == len(sim.pending) + 1 and sim.call.phase is not Phase.ENDED:
            sim.pending.append([ActionFailed(ID, sim.at())])
        elif sim.timers:
            sim.feed(sim.timers.pop(0))
    sim.drain()

    assert sim.call.phase is Phase.ENDED
    assert (sim.ended, sim.cdrs) == (1, 1)
    assert sim.after_end == []
    assert sim.started_after_hangup == []
