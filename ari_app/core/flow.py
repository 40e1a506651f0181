"""The inbound call flow as a pure state machine: events in, next state and actions out.

No I/O here. The runtime feeds ARI events in and executes the actions it gets back.

- A routed number: fairline decides whom to ring and hands the call to a dialplan
  `Dial()` (decision 0008: Asterisk connects the legs itself, at the cost of a
  plain dialplan), then gets the outcome back and decides the next step: the next
  target of a sequential route, another of the customer's numbers, or an
  announcement and release. The caller is never answered before a target answers.
- A route may end in a queue: fairline answers the caller, plays music on hold and
  holds the call itself; the queue (ari_app/queueing.py, driven by the runtime)
  reports when an agent answered, when it is the caller's turn to hear their
  position, and when the wait cap is reached, and the flow connects, announces or
  overflows.
- An announcement-only number: answer, play, release.
- Any other number: early media "not in service", released as unallocated (404).
- Once the caller hung up, nothing new starts on the channel, and the call ends as
  soon as the channel is out of the app (see `_CALLER_GONE`).
- Whatever happens, the call ends with exactly one CDR (`WriteCdr`).

A call is its id, the data of the whole call (`CallData`) and one state value per
phase (`Dialing`, `Announcing`...). `TRANSITIONS` maps (state type, event type) to
the handler that takes the call on; an event a phase has no entry for changes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Union, assert_never

from ari_app.core.model import (
    CONFIRM_SECONDS,
    Announce,
    Config,
    ForwardTo,
    NoAnswer,
    Number,
    Route,
    Strategy,
    Target,
    ToQueue,
    ToVoicemail,
    target_kind,
)
from ari_app.core.events import (
    AriEvent,
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
from ari_app.core import blocking, recording_rules, voicemail, wait_budget
from ari_app.core.consent import Mode
from rating.core.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit, RecordingFile

NOT_IN_SERVICE = "ss-noservice"
NO_ROUTE_LEFT = "vm-nobodyavail"
SORRY = "all-circuits-busy-now"  # when fairline or Asterisk cannot serve the call
OVERFLOWING = "pls-hold-while-try"  # the wait cap is reached and the caller is sent on: "please hold while I try..."
MAX_HOPS = 5  # forwards from number to number within one call; a loop the config missed ends here
TRUNK = "carrier-out"  # the PJSIP endpoint that reaches landline and mobile targets
CONFIRM = "fairline-confirm"  # the dialplan context that rings a phone which must press 1 (decision 0031)
# A dial of phones on the trunk, straight or through CONFIRM, the only kind fairline makes;
# dialplan/extensions.conf's [fairline-dial] dials such an extension as it is. Asterisk truncates
# extensions past 79 characters (AST_MAX_EXTENSION).
_LEG = rf"(?:PJSIP/\+[0-9]+@{TRUNK}|Local/\+[0-9]+-[0-9]+@{CONFIRM}/n)"
_TRUNK_DIAL = re.compile(rf"{_LEG}(?:&{_LEG})*,[0-9]+")
MAX_EXTENSION = 79

# Q.850 causes fairline releases calls with.
CAUSE_NORMAL = 16
CAUSE_UNALLOCATED = 1
CAUSE_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_CONGESTION = 34
CAUSE_FAILURE = 38


class ReleaseReason(enum.StrEnum):
    """ARI's hang-up reason (a string on the wire), each with the Q.850 cause Asterisk sends."""

    NORMAL = "normal"
    UNALLOCATED = "unallocated"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILURE = "failure"


_CAUSES = {
    ReleaseReason.NORMAL: CAUSE_NORMAL,
    ReleaseReason.UNALLOCATED: CAUSE_UNALLOCATED,
    ReleaseReason.BUSY: CAUSE_BUSY,
    ReleaseReason.NO_ANSWER: CAUSE_NO_ANSWER,
    ReleaseReason.CONGESTION: CAUSE_CONGESTION,
    ReleaseReason.FAILURE: CAUSE_FAILURE,
}

# Dial()'s DIALSTATUS -> what the caller's carrier hears, what billing reads.
_OUTCOMES: dict[str, tuple[ReleaseReason, Disposition]] = {
    "BUSY": (ReleaseReason.BUSY, Disposition.BUSY),
    "NOANSWER": (ReleaseReason.NO_ANSWER, Disposition.NO_ANSWER),
    "CONGESTION": (ReleaseReason.CONGESTION, Disposition.UNREACHABLE),
    "CHANUNAVAIL": (ReleaseReason.CONGESTION, Disposition.UNREACHABLE),
}


class Found(enum.StrEnum):
    """Where a restarted fairline finds a call it adopts (decision 0015)."""

    DIALING = "dialing"  # in the dialplan's Dial(), now subscribed to
    BRIDGED = "bridged"  # in fairline's bridge with a queue agent
    HELD = "held"  # answered and in the app: queued, asked for consent or announcing; what it waited for is lost


class Phase(enum.Enum):
    NEW = "new"
    DIALING = "dialing"  # in the dialplan's Dial(); targets ring or a target is connected
    NOTICE = "notice"  # the recording notice plays as early media, before anything rings
    CONSENT = "consent"  # answered: the notice and "press 1 to agree" play, then a digit is awaited
    QUEUED = "queued"  # answered, waiting in a queue with music on hold (and position announcements)
    CONNECTED = "connected"  # bridged by fairline with the queue agent who answered
    ANNOUNCING = "announcing"  # playing an announcement (answered or as early media)
    RELEASING = "releasing"  # hang-up sent, waiting for the channel to go
    VOICEMAIL = "voicemail"  # answered: the greeting plays, then the caller's message is recorded (after a beep)
    FINISHING = "finishing"  # the call is over; its recording is being stored before the CDR is written
    ENDED = "ended"


# ---- actions the runtime executes


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    """183 Session Progress: early media without answering."""


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    media: str  # e.g. "sound:hello-world"
    playback_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup:
    reason: ReleaseReason


@dataclasses.dataclass(frozen=True, slots=True)
class Dial:
    """Hand the channel to the dialplan's Dial(): `dial` is its argument, e.g. "PJSIP/+316...@carrier-out,20".

    `follow`: subscribe to the channel first, so its events (its end above all) still come once it
    has left the app; once per call is enough.
    """

    dial: str
    follow: bool

    @property
    def extension(self) -> str | None:
        """The extension of context fairline-dial that dials this without a channel variable set first
        (the dial itself), or None when it is too long for an extension."""
        if len(self.dial) > MAX_EXTENSION or _TRUNK_DIAL.fullmatch(self.dial) is None:
            return None
        return self.dial


@dataclasses.dataclass(frozen=True, slots=True)
class StopPlayback:
    playback_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class StartMoh:
    """Music on hold on the caller's channel."""


@dataclasses.dataclass(frozen=True, slots=True)
class StopMoh:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class JoinQueue:
    """Put the caller in line in the queue `name` (the runtime's queues take it from there)."""

    name: str
    within: float | None = None  # what is left of the caller's minute after earlier queues (decision 0029)


@dataclasses.dataclass(frozen=True, slots=True)
class Bridge:
    """Connect the caller with the agent's channel that answered, in a bridge of fairline's."""

    agent_channel: str


@dataclasses.dataclass(frozen=True, slots=True)
class DestroyBridge:
    """The call is over: remove its bridge (Asterisk keeps bridges made over ARI until told)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitDigit:
    """The consent prompt ended: report DigitTimeout if no digit comes within `seconds`."""

    seconds: int


@dataclasses.dataclass(frozen=True, slots=True)
class StartRecording:
    """Record both parties of the connected call from now until it ends (a snoop on the caller's channel)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitRecording:
    """The call ended while recorded: report RecordingStored, or RecordingLost if it does not come soon."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlayGreeting:
    """Play a voicemail box's greeting (the customer's own file is first put where Asterisk plays it from)."""

    greeting: voicemail.Greeting
    playback_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class RecordMessage:
    """Record the caller's message after a beep, until they hang up, press # or speak `max_seconds`;
    the stored file is reported as MessageStored (or MessageLost)."""

    max_seconds: int


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitMessage:
    """The call ended while its message was recorded: report MessageLost if MessageStored does not come soon."""


@dataclasses.dataclass(frozen=True, slots=True)
class WriteCdr:
    record: CallRecord


Action = Union[Answer, Progress, Play, Hangup, Dial, StopPlayback, StartMoh, StopMoh, JoinQueue, Bridge,
               DestroyBridge, AwaitDigit, StartRecording, AwaitRecording, PlayGreeting, RecordMessage, AwaitMessage,
               WriteCdr]


# ---- the flow's own events (from the runtime, its queues and timers)


@dataclasses.dataclass(frozen=True, slots=True)
class ActionFailed:
    """The runtime could not execute an action (ARI error other than 'channel gone')."""

    channel_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class QueueConnected:
    """The queue connected the caller with an agent, whose channel is up and in the app."""

    channel_id: str
    at: datetime
    agent: str
    agent_channel: str


@dataclasses.dataclass(frozen=True, slots=True)
class PositionDue:
    """Time to tell the waiting caller their place in line (1: next), and the wait ahead when it is known."""

    channel_id: str
    at: datetime
    position: int
    expected_seconds: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class QueueOverflowed:
    """The caller reached the queue's wait cap."""

    channel_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class AgentHungUp:
    """The agent the caller was connected with hung up."""

    channel_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class DigitTimeout:
    channel_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingStored:
    channel_id: str
    at: datetime
    file: RecordingFile


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingLost:
    """The recording did not make it to the recordings directory (Asterisk failed, disk full...)."""

    channel_id: str
    at: datetime
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class MessageStored:
    """The caller's voicemail message is in the recordings directory."""

    channel_id: str
    at: datetime
    file: RecordingFile


@dataclasses.dataclass(frozen=True, slots=True)
class MessageLost:
    """The message could not be recorded or stored (Asterisk refused, the file is missing, disk full...)."""

    channel_id: str
    at: datetime
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Adopted:
    """A restarted fairline found this call still in Asterisk (decision 0015), `where` it is;
    `agent_channel` when bridged."""

    channel_id: str
    at: datetime
    did: str
    caller: str | None
    started_at: datetime
    answered_at: datetime | None  # Asterisk's own answer time (CDR(answer)), so billing stays exact
    where: Found
    agent_channel: str | None = None
    recording: tuple[Mode, str] | None = None  # being recorded: the mode and evidence it started under


QueueEvent = Union[QueueConnected, PositionDue, QueueOverflowed, AgentHungUp]
RecordingEvent = Union[DigitTimeout, RecordingStored, RecordingLost, MessageStored, MessageLost]
FlowEvent = Union[AriEvent, ActionFailed, QueueEvent, RecordingEvent, Adopted]


# ---- the state of one call: what the whole call keeps, and what each phase holds


@dataclasses.dataclass(frozen=True, slots=True)
class Terms:
    """Whether and why the call is recorded, and what became of the recording."""

    mode: Mode | None = None  # recording is on for the number: the mode the law asks for; None: off
    done: Mode | None = None  # what the caller went through (silence, notice, agreement); None: no recording
    evidence: str = ""  # why the call is recorded, or why not
    asked: bool = False  # StartRecording was sent: the CDR waits for the file
    file: RecordingFile | None = None
    lost: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """The voicemail message the caller leaves, if any."""

    asked: bool = False  # RecordMessage was sent: the CDR waits for the stored message
    file: RecordingFile | None = None
    lost: str | None = None

    @property
    def pending(self) -> bool:
        return self.asked and self.file is None and self.lost is None


@dataclasses.dataclass(frozen=True, slots=True)
class CallData:
    """What the call keeps from its start to its CDR, whatever phase it is in."""

    did: str = ""
    caller: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    in_service: bool = False
    followed: bool = False  # subscribed: the channel's events still come when it is out of the app
    hung_up: bool = False  # the caller hung up: nothing new starts, the call ends when the channel is out
    hops: int = 0  # forwards so far
    outcome: str | None = None  # DIALSTATUS of the last unanswered step
    answered_target: Target | None = None
    answer_confirmed: bool | None = None  # the phone that took the call pressed 1 first; None: not asked
    unconfirmed: int = 0  # phones (or their voicemail) that answered and did not press 1
    visits: tuple[QueueVisit, ...] = ()  # queues waited in, each with how it ended
    bridged: bool = False  # in a bridge of fairline's, to remove when the call ends
    terms: Terms = Terms()
    release_cause: int | None = None  # what we released with
    hangup_cause: int | None = None  # what Asterisk reported
    end_estimated: bool = False  # the channel ended unseen, at a time fairline could only estimate
    blocked: bool = False  # the caller is on the number's or its customer's list: refused before anything rang
    message: Message = Message()  # voicemail


@dataclasses.dataclass(frozen=True, slots=True)
class New:
    phase: ClassVar[Phase] = Phase.NEW


@dataclasses.dataclass(frozen=True, slots=True)
class Dialing:
    """One step of a route rings in the dialplan's Dial()."""

    phase: ClassVar[Phase] = Phase.DIALING
    number: str  # the number whose route runs (changes when forwarded)
    steps: tuple[tuple[Target, ...], ...]  # what each Dial() rings, in order
    step_index: int = 0
    no_answer: NoAnswer | None = None
    in_dialplan: bool = False  # the channel left the app for Dial(): its StasisEnd was the hand-over
    dialed: tuple[tuple[str, str], ...] = ()  # (outbound channel id, target E.164) of this step
    confirming: frozenset[str] = frozenset()  # the targets of this step that must press 1 (E.164)


@dataclasses.dataclass(frozen=True, slots=True)
class Notice:
    phase: ClassVar[Phase] = Phase.NOTICE
    playing: str


@dataclasses.dataclass(frozen=True, slots=True)
class Consent:
    phase: ClassVar[Phase] = Phase.CONSENT
    playing: str | None  # None: the prompt is over, a digit is awaited


@dataclasses.dataclass(frozen=True, slots=True)
class Queued:
    phase: ClassVar[Phase] = Phase.QUEUED
    queue: str
    entered_at: datetime
    playing: str | None = None  # a position announcement plays instead of the music


@dataclasses.dataclass(frozen=True, slots=True)
class Connected:
    phase: ClassVar[Phase] = Phase.CONNECTED
    agent_channel: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Announcing:
    """`playing` ends with a release for `reason`, or sends the caller on (an overflow) to a number or a phone."""

    phase: ClassVar[Phase] = Phase.ANNOUNCING
    playing: str
    reason: ReleaseReason
    then_number: str | None = None
    then_target: Target | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Voicemail:
    """The greeting plays (`playing`), then the message is recorded (`playing` None), for at most `max_seconds`."""

    phase: ClassVar[Phase] = Phase.VOICEMAIL
    playing: str | None
    max_seconds: int


@dataclasses.dataclass(frozen=True, slots=True)
class Releasing:
    phase: ClassVar[Phase] = Phase.RELEASING


@dataclasses.dataclass(frozen=True, slots=True)
class Finishing:
    phase: ClassVar[Phase] = Phase.FINISHING
    ended_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Ended:
    phase: ClassVar[Phase] = Phase.ENDED


State = Union[New, Dialing, Notice, Consent, Queued, Connected, Announcing, Voicemail, Releasing, Finishing, Ended]


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    state: State = New()
    data: CallData = CallData()

    @property
    def phase(self) -> Phase:
        return self.state.phase

    @property
    def caller(self) -> str | None:
        return self.data.caller

    @property
    def record_mode(self) -> Mode | None:
        return self.data.terms.mode

    @property
    def record_evidence(self) -> str:
        return self.data.terms.evidence


Step = tuple[Call, list[Action]]


def _with(call: Call, state: State | None = None, **data: Any) -> Call:
    """`call` in `state` (unchanged if None), with `data` changed."""
    return Call(call.call_id, call.state if state is None else state,
                dataclasses.replace(call.data, **data) if data else call.data)


def step(call: Call, event: FlowEvent, config: Config) -> Step:
    """The next state of `call` after `event`, and what to do about it.

    Events that do not apply in the current phase change nothing (Asterisk may send
    a late PlaybackFinished after a hang-up, for instance); nothing here raises.
    """
    gone = call.data.hung_up and call.phase not in (Phase.FINISHING, Phase.ENDED)
    handler = (_CALLER_GONE if gone else TRANSITIONS[call.phase]).get(type(event))
    return (call, []) if handler is None else handler(call, call.state, event, config)


# ---- whatever the phase


def _answered(call: Call, _: State, event: CallAnswered, __: Config) -> Step:
    return (_with(call, answered_at=event.at), []) if call.data.answered_at is None else (call, [])


def _hangup_requested(call: Call, state: State, event: HangupRequested, _: Config) -> Step:
    """The caller hangs up (or fairline's own release reaches the channel): from now on nothing new starts.

    A channel out of the app that fairline does not follow (its subscription failed, see _failed) reports
    nothing after this: the hang-up is its end."""
    cause = _cause(call, event.cause) if call.data.hangup_cause is None else call.data.hangup_cause
    hung = _with(call, hangup_cause=cause, hung_up=True)
    if isinstance(state, Dialing) and state.in_dialplan and not call.data.followed:
        return _end(hung, event.at)
    return hung, []


def _left(call: Call, state: State, event: CallLeft, _: Config) -> Step:
    """StasisEnd: the hand-over to Dial() the flow asked for, or else the channel's end in the app."""
    if isinstance(state, Dialing) and not state.in_dialplan:
        return _with(call, dataclasses.replace(state, in_dialplan=True)), []
    # A channel fairline subscribed to ends with its ChannelDestroyed, which carries the cause.
    return (call, []) if call.data.followed else _end(call, event.at)


def _destroyed(call: Call, _: State, event: CallDestroyed, __: Config) -> Step:
    cause = _cause(call, event.cause) if call.data.hangup_cause is None else call.data.hangup_cause
    return _end(_with(call, hangup_cause=cause, end_estimated=event.estimated), event.at)


def _ended_by(call: Call, _: State, event: CallLeft | ActionFailed, __: Config) -> Step:
    """The caller hung up and the channel is out of the app, or an action on it failed: nothing more will come."""
    return _end(call, event.at)


def _left_after_hangup(call: Call, state: State, event: CallLeft, config: Config) -> Step:
    """StasisEnd after the hang-up: the end, unless fairline subscribed to the channel, whose destruction
    Asterisk then always reports, with the cause the CDR keeps."""
    return (call, []) if call.data.followed else _ended_by(call, state, event, config)


def _failed(call: Call, state: State, _: ActionFailed, __: Config) -> Step:
    if isinstance(state, Dialing) and state.in_dialplan:
        # In Dial(), out of the app's reach: let it ring on. But what failed may have been the subscription,
        # racing the caller's hang-up, whose StasisEnd came first and looked like the hand-over: then no
        # ChannelDestroyed will come, and the channel's HangupRequested, if any, is its end.
        return _with(call, followed=False), []
    # A failed subscribe/continue leaves the channel in the app: its StasisEnd is its end.
    failed = _with(call, followed=False, release_cause=CAUSE_FAILURE)
    if isinstance(state, Announcing) and state.reason is ReleaseReason.FAILURE:  # even the apology failed
        return _release(failed, ReleaseReason.FAILURE)
    # The caller hears why before the release, never silence (early media: nobody pays).
    return _announce(failed, SORRY, ReleaseReason.FAILURE, answer=False, name="failure")


def _recording_result(call: Call, _: State, event: RecordingStored | RecordingLost, __: Config) -> Step:
    return _with(call, terms=_recorded(call.data.terms, event)), []


def _recorded(terms: Terms, event: RecordingStored | RecordingLost) -> Terms:
    if isinstance(event, RecordingStored):
        return dataclasses.replace(terms, file=event.file)
    return dataclasses.replace(terms, lost=event.reason, evidence=f"{terms.evidence}; recording lost: {event.reason}")


# ---- a new call


def _start(call: Call, _: New, event: CallStarted, config: Config) -> Step:
    number = config.number(event.did)
    started = _with(call, did=number.e164 if number else event.did, caller=event.caller,
                    started_at=event.started_at, in_service=number is not None)
    if number is None:
        return _announce(started, NOT_IN_SERVICE, ReleaseReason.UNALLOCATED, answer=False, name="noservice")
    refusal = config.refusal(number, event.caller)
    if refusal is not None:  # before anything else: no notice, no prompt, nothing rings
        return _refuse(_with(started, blocked=True), refusal)
    if number.route is not None and config.records(number):
        return _recording_first(started, number, event.at, config)
    return _enter(started, number.e164, event.at, config)


def _refuse(call: Call, refusal: blocking.Refusal) -> Step:
    """A blocked caller: busy at once, or the announcement as early media and then busy; never answered."""
    if refusal.announcement is None:
        return _release(call, ReleaseReason.BUSY)
    return _announce(call, refusal.announcement, ReleaseReason.BUSY, answer=False, name="blocked")


def _adopt(call: Call, _: New, event: DialReturned, config: Config) -> Step:
    """A call comes back from Dial() to a fairline that did not send it there (it restarted).

    What the route would do next is not known any more; the caller must not be left in
    silence: an answered call is released, an unanswered one hears why and is released.
    Its answer time is lost, so it is recorded as answered when it comes back.
    """
    number = config.number(event.did)
    adopted = _with(call, did=number.e164 if number else event.did, caller=event.caller,
                    started_at=event.started_at, in_service=True, answered_at=event.at if event.answered else None)
    dialing = Dialing("", ((),), no_answer=number.route.no_answer if number and number.route else None)
    return _dial_returned(_with(adopted, dialing), dialing, event, config)


def _adopt_found(call: Call, _: New, event: Adopted, config: Config) -> Step:
    """Take over a call a previous fairline left in Asterisk: let it go on where that is possible."""
    number = config.number(event.did)
    found = _with(call, did=number.e164 if number else event.did, caller=event.caller, started_at=event.started_at,
                  in_service=number is not None, answered_at=event.answered_at)
    if event.recording is not None:
        mode, evidence = event.recording
        found = _with(found, terms=Terms(mode, mode, evidence, asked=True))
    match event.where:
        case Found.DIALING:  # Dial() goes on; its outcome comes back as for any adopted call
            no_answer = number.route.no_answer if number and number.route else None
            # The adoption subscribed to it (it is out of the app): its events, its destruction above all, come.
            return _with(found, Dialing("", ((),), no_answer=no_answer, in_dialplan=True), followed=True), []
        case Found.BRIDGED:  # talking with a queue agent: nothing to do until one hangs up
            return _with(found, Connected(event.agent_channel), bridged=event.agent_channel is not None), []
        case Found.HELD:
            # What it waited for is lost: the caller hears why and is released, never left in silence.
            held = _with(found, release_cause=CAUSE_FAILURE)
            announcing, actions = _announce(held, SORRY, ReleaseReason.FAILURE, answer=event.answered_at is not None,
                                            name="failure")
            return announcing, [StopMoh(), *actions]
        case _:
            assert_never(event.where)


# ---- recording first: notice or consent before anything rings


def _recording_first(call: Call, number: Number, at: datetime, config: Config) -> Step:
    """Recording is on: what the law asks for the places involved, before anything rings."""
    decision = recording_rules.decide(config, number, call.caller, at)
    call = _with(call, terms=Terms(decision.mode, evidence=decision.evidence))
    if decision.mode is Mode.FORBIDDEN:
        return _enter(_evidence(call, "not recorded: the law forbids it"), number.e164, at, config)
    if decision.mode is Mode.ONE_PARTY:
        done = _evidence(_agreed(call, Mode.ONE_PARTY), "recorded without notice: a participant may record")
        return _enter(done, number.e164, at, config)
    notice = config.recording.notice
    if decision.mode is Mode.NOTIFY:  # as early media: the caller pays nothing for being told
        playback_id = f"{call.call_id}-notice"
        return _with(call, Notice(playback_id)), [Progress(), Play(recording_rules.media(notice), playback_id)]
    playback_id = f"{call.call_id}-consent"  # consent: a digit needs an answered call
    return (_with(call, Consent(playback_id)),
            [Answer(), Play(recording_rules.media((*notice, *config.recording.consent_prompt)), playback_id)])


def _notice_done(call: Call, state: Notice, event: PlaybackDone, config: Config) -> Step:
    if event.playback_id != state.playing:
        return call, []
    if event.failed:
        told = _evidence(call, "not recorded: the notice could not be played")
    else:
        told = _evidence(_agreed(call, Mode.NOTIFY), f"notice played in full, ended {event.at.isoformat()}")
    return _enter(told, call.data.did, event.at, config)


def _consent_prompt_done(call: Call, state: Consent, event: PlaybackDone, config: Config) -> Step:
    if event.playback_id != state.playing:
        return call, []
    if event.failed:
        told = _evidence(call, "not recorded: the consent prompt could not be played")
        return _enter(told, call.data.did, event.at, config)
    return _with(call, Consent(None)), [AwaitDigit(config.recording.consent_seconds)]


def _consent_digit(call: Call, state: Consent, event: DtmfReceived, config: Config) -> Step:
    """1 agrees, 2 refuses (the prompt may still be playing); other keys mean nothing."""
    if event.digit == "1":
        answered = _evidence(_agreed(call, Mode.CONSENT), f"caller pressed 1 (agreed) at {event.at.isoformat()}")
    elif event.digit == "2":
        answered = _evidence(call, f"not recorded: caller pressed 2 (refused) at {event.at.isoformat()}")
    else:
        return call, []
    entered, actions = _enter(answered, call.data.did, event.at, config)
    return entered, [*([StopPlayback(state.playing)] if state.playing else []), *actions]


def _consent_timeout(call: Call, state: Consent, event: DigitTimeout, config: Config) -> Step:
    if state.playing is not None:  # no digit is awaited before the prompt ends
        return call, []
    silent = _evidence(call, f"not recorded: no digit within {config.recording.consent_seconds} s of the prompt")
    return _enter(silent, call.data.did, event.at, config)


def _agreed(call: Call, mode: Mode) -> Call:
    return _with(call, terms=dataclasses.replace(call.data.terms, done=mode))


def _evidence(call: Call, what: str) -> Call:
    terms = call.data.terms
    return _with(call, terms=dataclasses.replace(terms, evidence=f"{terms.evidence}; {what}" if terms.evidence
                                                 else what))


def _record_if_allowed(call: Call, phone: str | None, config: Config) -> Step:
    """A phone answered: record if what the caller went through covers what that phone's place asks for."""
    terms = call.data.terms
    if terms.mode is None or terms.done is None or terms.asked or phone is None:
        return call, []
    needed = recording_rules.at_answer(config, call.data.did, call.caller, phone)
    if not recording_rules.covers(terms.done, needed.mode):
        refused = _with(call, terms=dataclasses.replace(terms, done=None, mode=needed.mode))
        return _evidence(refused, f"not recorded: the answering phone needs {needed.mode} ({needed.evidence})"), []
    return _with(call, terms=dataclasses.replace(terms, asked=True)), [StartRecording()]


# ---- routes: ringing in the dialplan's Dial()


def _enter(call: Call, e164: str, at: datetime, config: Config) -> Step:
    """Run the route of number `e164` (the dialled one, or one forwarded to)."""
    number = config.numbers.get(e164)
    if number is None:  # forwarded to a number a reload removed
        return _announce(_with(call, outcome="NOANSWER"), NO_ROUTE_LEFT, ReleaseReason.NO_ANSWER, answer=False,
                         name=f"{call.data.hops}-noanswer")
    route = number.route_at(at)
    if route is None:
        hops = call.data.hops
        return _announce(call, number.announcement_at(at) or NO_ROUTE_LEFT, ReleaseReason.NORMAL, answer=True,
                         name="announcement" if hops == 0 else f"{hops}-announcement")
    if (queue := route.queue_only) is not None:  # in line at once
        return _join_queue(call, queue, at, config)
    if route.voicemail_only:
        return _voicemail(call, config)
    return _dial(call, Dialing(e164, _steps(route), no_answer=route.no_answer), config)


def _steps(route: Route) -> tuple[tuple[Target, ...], ...]:
    if route.strategy is Strategy.SIMULTANEOUS:
        return (route.targets,)
    return tuple((t,) for t in route.targets)


def _dial(call: Call, dialing: Dialing, config: Config) -> Step:
    """Ring the step `dialing` is at: the channel goes to the dialplan, subscribed to first if it is not yet.

    A phone that must confirm is rung through the CONFIRM context: its leg answers only once the
    person pressed 1, so Dial() waits longer for it than its ring time."""
    targets = dialing.steps[dialing.step_index]
    ring = max(t.ring_seconds for t in targets)
    confirming = frozenset(t.e164 for t in targets if config.confirms(t))
    legs = (f"Local/{t.e164}-{ring}@{CONFIRM}/n" if t.e164 in confirming else f"PJSIP/{t.e164}@{TRUNK}"
            for t in targets)
    dial = "&".join(legs) + f",{ring + CONFIRM_SECONDS if confirming else ring}"
    ringing = dataclasses.replace(dialing, dialed=(), in_dialplan=False, confirming=confirming)
    return _with(call, ringing, followed=True), [Dial(dial, follow=not call.data.followed)]


def _target_dialed(call: Call, state: Dialing, event: TargetDialed, _: Config) -> Step:
    return _with(call, dataclasses.replace(state, dialed=(*state.dialed, (event.peer_id, event.target)))), []


def _target_answered(call: Call, state: Dialing, event: TargetAnswered, config: Config) -> Step:
    number = dict(state.dialed).get(event.peer_id)
    targets = state.steps[state.step_index] if state.steps else ()
    answered = _with(call, answered_target=next((t for t in targets if t.e164 == number), None),
                     answer_confirmed=True if number in state.confirming else None)
    return _record_if_allowed(answered, number, config)


def _target_confirmed(call: Call, _: State, event: TargetConfirmed, __: Config) -> Step:
    """The dialplan says an answering phone pressed 1, or did not (its voicemail, say)."""
    return (call, []) if event.confirmed else (_with(call, unconfirmed=call.data.unconfirmed + 1), [])


def _dial_returned(call: Call, state: Dialing, event: DialReturned, config: Config) -> Step:
    if event.status == "ANSWER":  # connected, and the target hung up: release the caller too
        return _release(call, ReleaseReason.NORMAL)
    if event.status not in _OUTCOMES:  # CANCEL (caller gone), DONTCALL, INVALIDARGS...
        return _release(_with(call, outcome=event.status or None), ReleaseReason.FAILURE)
    call = _with(call, outcome=event.status)
    reason = _OUTCOMES[event.status][0]
    if state.step_index + 1 < len(state.steps):
        return _dial(call, dataclasses.replace(state, step_index=state.step_index + 1), config)
    hops = call.data.hops
    if isinstance(state.no_answer, ForwardTo):
        if hops + 1 > MAX_HOPS:
            return _announce(call, NO_ROUTE_LEFT, reason, answer=False, name=f"{hops}-noanswer")
        return _enter(_with(call, hops=hops + 1), state.no_answer.number, event.at, config)
    if isinstance(state.no_answer, ToQueue):
        return _join_queue(call, state.no_answer.name, event.at, config)
    if isinstance(state.no_answer, ToVoicemail):
        return _voicemail(call, config)
    sound = state.no_answer.sound if isinstance(state.no_answer, Announce) else NO_ROUTE_LEFT
    return _announce(call, sound, reason, answer=False, name=f"{hops}-noanswer")


# ---- queues: fairline holds the caller


def _join_queue(call: Call, name: str, at: datetime, config: Config) -> Step:
    """Answer the caller and put them in line, with music on hold (Asterisk's Queue() answers too)."""
    if name not in config.queues:  # a reload removed the queue
        return _announce(call, NO_ROUTE_LEFT, _OUTCOMES[call.data.outcome or "NOANSWER"][0], answer=False,
                         name=f"{call.data.hops}-noanswer")
    answer: list[Action] = [] if call.data.answered_at is not None else [Answer()]
    # One minute per caller, in total: a caller who waited in a queue before brings what is left of it.
    within = wait_budget.remaining(call.data.visits, at) if call.data.visits else None
    return _with(call, Queued(name, at)), [JoinQueue(name, within), *answer, StartMoh()]  # in line first


def _queue_connected(call: Call, state: Queued, event: QueueConnected, config: Config) -> Step:
    kind = target_kind(event.agent)
    connected = _with(_close_visit(call, state, event.at, QueueOutcome.ANSWERED), Connected(event.agent_channel),
                      bridged=True, answered_target=Target(event.agent, kind, 0) if kind else None,
                      answer_confirmed=True if config.agent_confirms(state.queue, event.agent) else None)
    connected, record = _record_if_allowed(connected, event.agent, config)
    return connected, [*_stop(state), StopMoh(), Bridge(event.agent_channel), *record]


def _position_due(call: Call, state: Queued, event: PositionDue, _: Config) -> Step:
    if state.playing is not None:  # still telling the last one
        return call, []
    playback_id = f"{call.call_id}-position-{len(call.data.visits)}-{event.at.timestamp():.0f}"
    return (_with(call, dataclasses.replace(state, playing=playback_id)),
            [StopMoh(), Play(_position_media(event.position) + _expected_media(event.expected_seconds), playback_id)])


def _position_told(call: Call, state: Queued, event: PlaybackDone, _: Config) -> Step:
    if event.playback_id != state.playing:
        return call, []
    return _with(call, dataclasses.replace(state, playing=None)), [StartMoh()]


def _queue_overflowed(call: Call, state: Queued, event: QueueOverflowed, config: Config) -> Step:
    """The wait cap is reached: send the caller on to the queue's overflow, or announce and release."""
    queue = config.queues.get(state.queue)
    overflow = queue.overflow if queue is not None else Announce(NO_ROUTE_LEFT)
    hops = call.data.hops
    if isinstance(overflow, (ForwardTo, Target)) and hops + 1 <= MAX_HOPS:
        sent_on = _with(_close_visit(call, state, event.at, QueueOutcome.OVERFLOWED), hops=hops + 1)
        return _queue_announce(sent_on, state, OVERFLOWING, name=f"{hops}-overflow",
                               then_number=overflow.number if isinstance(overflow, ForwardTo) else None,
                               then_target=overflow if isinstance(overflow, Target) else None)
    if isinstance(overflow, ToVoicemail):
        taken, actions = _voicemail(_close_visit(call, state, event.at, QueueOutcome.OVERFLOWED), config)
        return taken, [*_stop(state), StopMoh(), *actions]
    sound = overflow.sound if isinstance(overflow, Announce) else NO_ROUTE_LEFT
    timed_out = _close_visit(call, state, event.at, QueueOutcome.QUEUE_TIMEOUT)
    return _queue_announce(timed_out, state, sound, name=f"{hops}-queue-timeout")


def _position_media(position: int) -> str:
    if position == 1:
        return "sound:queue-youarenext"
    # "You are currently caller number" N "waiting to speak to a representative" (Asterisk's Queue() prompts)
    return f"sound:queue-thereare,number:{position},sound:queue-callswaiting"


def _expected_media(seconds: int | None) -> str:
    """ "The estimated hold time is currently" N "seconds" (Asterisk's Queue() prompts); nothing when not known."""
    return "" if seconds is None else f",sound:queue-holdtime,number:{seconds},sound:queue-seconds"


def _stop(state: Queued) -> list[Action]:
    return [StopPlayback(state.playing)] if state.playing else []


def _queue_announce(call: Call, state: Queued, sound: str, *, name: str, then_number: str | None = None,
                    then_target: Target | None = None) -> Step:
    """Leave the music for an announcement; the caller is answered already."""
    playback_id = f"{call.call_id}-{name}"
    announcing = Announcing(playback_id, ReleaseReason.NORMAL, then_number, then_target)
    return _with(call, announcing), [*_stop(state), StopMoh(), Play(f"sound:{sound}", playback_id)]


def _close_visit(call: Call, state: Queued, at: datetime, outcome: QueueOutcome) -> Call:
    """The caller leaves the queue: record how long they waited there and how it ended."""
    waited = Decimal(max(0.0, (at - state.entered_at).total_seconds())).quantize(Decimal("0.001"))
    return _with(call, visits=(*call.data.visits, QueueVisit(state.queue, state.entered_at, waited, outcome)))


def _agent_hung_up(call: Call, _: Connected, __: AgentHungUp, ___: Config) -> Step:
    return _release(call, ReleaseReason.NORMAL)


# ---- voicemail: the greeting, a beep, the message


def _voicemail(call: Call, config: Config) -> Step:
    """Take the caller's message for the box of the dialled number's customer (forwards and queues stay within
    one customer); answered first, as the greeting and the recording need."""
    number = config.number(call.data.did)
    customer = config.customers.get(number.customer_id) if number is not None else None
    box = customer.voicemail if customer is not None else None
    hops = call.data.hops
    if box is None:  # a reload removed the box
        return _announce(_with(call, outcome=call.data.outcome or "NOANSWER"), NO_ROUTE_LEFT, ReleaseReason.NO_ANSWER,
                         answer=False, name=f"{hops}-noanswer")
    playback_id = f"{call.call_id}-{hops}-greeting"
    answer: list[Action] = [] if call.data.answered_at is not None else [Answer()]
    return _with(call, Voicemail(playback_id, box.max_seconds)), [*answer, PlayGreeting(box.greeting, playback_id)]


def _greeting_done(call: Call, state: Voicemail, event: PlaybackDone, _: Config) -> Step:
    """The greeting ended (or could not be played: the beep still tells the caller to speak): record."""
    if event.playback_id != state.playing:
        return call, []
    recording = _with(call, dataclasses.replace(state, playing=None), message=Message(asked=True))
    return recording, [RecordMessage(state.max_seconds)]


def _message_done(call: Call, state: Voicemail, event: MessageStored | MessageLost, _: Config) -> Step:
    """The message ended with # or its length, the caller still on the line: say it is saved (or sorry), release."""
    if state.playing is not None:  # no message is being recorded
        return call, []
    kept = _with(call, message=_kept(call.data.message, event))
    sound = voicemail.SAVED if isinstance(event, MessageStored) else SORRY
    playback_id = f"{call.call_id}-{call.data.hops}-message-{'saved' if sound == voicemail.SAVED else 'lost'}"
    return _with(kept, Announcing(playback_id, ReleaseReason.NORMAL)), [Play(f"sound:{sound}", playback_id)]


def _message_result(call: Call, _: State, event: MessageStored | MessageLost, __: Config) -> Step:
    return _with(call, message=_kept(call.data.message, event)), []


def _kept(message: Message, event: MessageStored | MessageLost) -> Message:
    if isinstance(event, MessageStored):
        return dataclasses.replace(message, file=event.file)
    return dataclasses.replace(message, lost=event.reason)


# ---- announcements and the end


def _announce(call: Call, sound: str, then: ReleaseReason, *, answer: bool, name: str) -> Step:
    """Play `sound` (after answer, or as early media so nobody pays), then release with reason `then`.

    The playback id is `<call id>-<name>`: its PlaybackFinished, and no other, ends the announcement.
    """
    playback_id = f"{call.call_id}-{name}"
    return _with(call, Announcing(playback_id, then)), [Answer() if answer else Progress(),
                                                        Play(f"sound:{sound}", playback_id)]


def _announcement_done(call: Call, state: Announcing, event: PlaybackDone, config: Config) -> Step:
    if event.playback_id != state.playing:
        return call, []
    if state.then_number is not None:
        return _enter(call, state.then_number, event.at, config)
    if state.then_target is not None:  # ring the overflow's phone; unanswered, the default announcement
        return _dial(call, Dialing("", ((state.then_target,),)), config)
    return _release(call, state.reason)


def _release(call: Call, reason: ReleaseReason) -> Step:
    return _with(call, Releasing(), release_cause=_CAUSES[reason]), [Hangup(reason)]


def _end(call: Call, at: datetime) -> Step:
    if isinstance(call.state, Queued):  # the caller hung up while waiting
        call = _close_visit(call, call.state, at, QueueOutcome.ABANDONED)
    # The bridge's removal comes last: the runtime drops the actions after one that fails, and
    # the CDR (or the timer it waits on) must not be among them.
    bridge: list[Action] = [DestroyBridge()] if call.data.bridged else []
    terms = call.data.terms
    # Asterisk closes the files as the call goes: its CDR waits for the stored recording and message.
    waits: list[Action] = [*([AwaitRecording()] if terms.asked and terms.file is None and terms.lost is None else []),
                           *([AwaitMessage()] if call.data.message.pending else [])]
    if waits:
        return _with(call, Finishing(at)), [*waits, *bridge]
    return _with(call, Ended()), [WriteCdr(record(call, at)), *bridge]


def _finish(call: Call, state: Finishing, event: RecordingStored | RecordingLost, _: Config) -> Step:
    """The call is over; its recording is stored (or lost). Then, and only then, the CDR."""
    return _finished(_with(call, terms=_recorded(call.data.terms, event)), state)


def _finish_message(call: Call, state: Finishing, event: MessageStored | MessageLost, _: Config) -> Step:
    """The call is over; its message is stored (or lost): the CDR, unless a recording is still awaited."""
    return _finished(_with(call, message=_kept(call.data.message, event)), state)


def _finished(call: Call, state: Finishing) -> Step:
    terms = call.data.terms
    if call.data.message.pending or (terms.asked and terms.file is None and terms.lost is None):
        return call, []
    ended = _with(call, Ended())
    return ended, [WriteCdr(record(ended, state.ended_at))]


def _cause(call: Call, reported: int | None) -> int | None:
    """The Q.850 cause of a hang-up fairline did not ask for.

    Once fairline answered the caller itself (a queue, voicemail), the caller's BYE ends an
    answered call: normal clearing. Asterisk would report the cause of the last failed Dial()
    instead, which it keeps on the channel (or none: 0).
    """
    return CAUSE_NORMAL if call.phase in (Phase.QUEUED, Phase.CONNECTED, Phase.VOICEMAIL) else reported


def record(call: Call, ended_at: datetime) -> CallRecord:
    """The CDR of a call that has ended."""
    data = call.data
    if data.answered_at is not None:
        disposition = Disposition.ANSWERED
    elif data.blocked:  # whatever happened next (the caller hung up during the announcement, it failed)
        disposition = Disposition.BLOCKED
    elif data.release_cause == CAUSE_FAILURE:
        disposition = Disposition.FAILED
    elif not data.in_service and data.started_at is not None:
        disposition = Disposition.UNALLOCATED
    elif data.release_cause is not None and data.outcome in _OUTCOMES:
        disposition = _OUTCOMES[data.outcome][1]
    else:
        disposition = Disposition.ABANDONED  # the caller hung up before anyone answered
    target = data.answered_target if data.answered_at is not None else None
    terms = data.terms
    return CallRecord(
        call_id=call.call_id,
        did=data.did,
        caller=data.caller,
        started_at=data.started_at or ended_at,
        answered_at=data.answered_at,
        ended_at=ended_at,
        disposition=disposition,
        hangup_cause=data.release_cause if data.release_cause is not None else data.hangup_cause,
        answered_target=target.e164 if target else None,
        target_kind=target.kind.value if target else None,
        queue_visits=data.visits,
        recording_mode=terms.mode.value if terms.mode is not None else None,
        recording_evidence=terms.evidence or None,
        recording=terms.file,
        end_estimated=data.end_estimated,
        answer_confirmed=data.answer_confirmed if target else None,
        unconfirmed_answers=data.unconfirmed,
        voicemail=data.message.file,
    )


# ---- the transition table: (phase, event type) -> handler; anything not listed changes nothing

# Handlers take (call, the call's state, the event, config); the table's keys guarantee the
# state's and the event's types, which a Callable type cannot say per entry.
Handler = Callable[[Call, Any, Any, Config], Step]

_LIVE: Mapping[type[Any], Handler] = {
    CallAnswered: _answered,
    HangupRequested: _hangup_requested,
    CallLeft: _left,
    CallDestroyed: _destroyed,
    ActionFailed: _failed,
    RecordingStored: _recording_result,
    RecordingLost: _recording_result,
    MessageStored: _message_result,
    MessageLost: _message_result,
}

TRANSITIONS: Mapping[Phase, Mapping[type[Any], Handler]] = {
    Phase.NEW: {**_LIVE, CallStarted: _start, Adopted: _adopt_found, DialReturned: _adopt},
    Phase.DIALING: {**_LIVE, DialReturned: _dial_returned, TargetDialed: _target_dialed,
                    TargetAnswered: _target_answered, TargetConfirmed: _target_confirmed},
    Phase.NOTICE: {**_LIVE, PlaybackDone: _notice_done},
    Phase.CONSENT: {**_LIVE, PlaybackDone: _consent_prompt_done, DtmfReceived: _consent_digit,
                    DigitTimeout: _consent_timeout},
    Phase.QUEUED: {**_LIVE, QueueConnected: _queue_connected, PositionDue: _position_due,
                   PlaybackDone: _position_told, QueueOverflowed: _queue_overflowed},
    Phase.CONNECTED: {**_LIVE, AgentHungUp: _agent_hung_up},
    Phase.ANNOUNCING: {**_LIVE, PlaybackDone: _announcement_done},
    Phase.VOICEMAIL: {**_LIVE, PlaybackDone: _greeting_done, MessageStored: _message_done, MessageLost: _message_done},
    # The release is under way: a failure has nothing left to undo, the channel's end ends the call.
    Phase.RELEASING: {k: h for k, h in _LIVE.items() if k is not ActionFailed},
    Phase.FINISHING: {RecordingStored: _finish, RecordingLost: _finish, MessageStored: _finish_message,
                      MessageLost: _finish_message},
    Phase.ENDED: {},
}

# Once the caller hung up (in any phase before FINISHING), only this table applies: nothing
# new starts on the channel, and whatever says the channel is gone ends the call: its
# ChannelDestroyed (always sent for a channel fairline subscribed to, in Dial() or not), else
# its StasisEnd, which cannot be a hand-over to Dial() any more; and an action that failed on
# it means no more of its events may come.
_CALLER_GONE: Mapping[type[Any], Handler] = {
    CallAnswered: _answered,
    HangupRequested: _hangup_requested,
    CallLeft: _left_after_hangup,
    CallDestroyed: _destroyed,
    ActionFailed: _ended_by,
    RecordingStored: _recording_result,
    RecordingLost: _recording_result,
    MessageStored: _message_result,
    MessageLost: _message_result,
}
