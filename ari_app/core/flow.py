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
- Whatever happens, the call ends with exactly one CDR (`WriteCdr`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from datetime import datetime
from decimal import Decimal
from typing import Union

from ari_app.config import (
    Announce,
    Config,
    ForwardTo,
    NoAnswer,
    Number,
    Route,
    Strategy,
    Target,
    ToQueue,
    target_kind,
)
from ari_app.events import (
    AriEvent,
    CallAnswered,
    CallDestroyed,
    CallLeft,
    CallStarted,
    DialReturned,
    DtmfReceived,
    HangupRequested,
    Ignored,
    PlaybackDone,
    TargetAnswered,
    TargetDialed,
)
from ari_app import recording_rules
from ari_app.consent import Mode
from rating.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit, RecordingFile

NOT_IN_SERVICE = "ss-noservice"
NO_ROUTE_LEFT = "vm-nobodyavail"
SORRY = "all-circuits-busy-now"  # when fairline or Asterisk cannot serve the call
OVERFLOWING = "pls-hold-while-try"  # the wait cap is reached and the caller is sent on: "please hold while I try..."
MAX_HOPS = 5  # forwards from number to number within one call; a loop the config missed ends here
TRUNK = "carrier-out"  # the PJSIP endpoint that reaches landline and mobile targets
# A dial of phones on the trunk, the only kind fairline makes; dialplan/extensions.conf's [fairline-dial]
# dials such an extension as it is. Asterisk truncates extensions past 79 characters (AST_MAX_EXTENSION).
_TRUNK_DIAL = re.compile(rf"PJSIP/\+[0-9]+@{TRUNK}(?:&PJSIP/\+[0-9]+@{TRUNK})*,[0-9]+")
MAX_EXTENSION = 79

# Q.850 causes fairline releases calls with.
CAUSE_NORMAL = 16
CAUSE_UNALLOCATED = 1
CAUSE_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_CONGESTION = 34
CAUSE_FAILURE = 38

# Dial()'s DIALSTATUS -> what the caller's carrier hears, what billing reads.
_OUTCOMES: dict[str, tuple[int, str, Disposition]] = {
    "BUSY": (CAUSE_BUSY, "busy", Disposition.BUSY),
    "NOANSWER": (CAUSE_NO_ANSWER, "no_answer", Disposition.NO_ANSWER),
    "CONGESTION": (CAUSE_CONGESTION, "congestion", Disposition.UNREACHABLE),
    "CHANUNAVAIL": (CAUSE_CONGESTION, "congestion", Disposition.UNREACHABLE),
}


class Phase(enum.Enum):
    NEW = "new"
    DIALING = "dialing"  # in the dialplan's Dial(); targets ring or a target is connected
    NOTICE = "notice"  # the recording notice plays as early media, before anything rings
    CONSENT = "consent"  # answered: the notice and "press 1 to agree" play, then a digit is awaited
    QUEUED = "queued"  # answered, waiting in a queue with music on hold (and position announcements)
    CONNECTED = "connected"  # bridged by fairline with the queue agent who answered
    ANNOUNCING = "announcing"  # playing an announcement (answered or as early media)
    RELEASING = "releasing"  # hang-up sent, waiting for the channel to go
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
    reason: str  # ARI hang-up reason: normal, unallocated, busy, no_answer, congestion, failure


@dataclasses.dataclass(frozen=True, slots=True)
class Follow:
    """Subscribe to the channel's events, so its end is seen after it leaves the app for Dial()."""


@dataclasses.dataclass(frozen=True, slots=True)
class Dial:
    """Hand the channel to the dialplan's Dial(): `dial` is its argument, e.g. "PJSIP/+316...@carrier-out,20"."""

    dial: str

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
class WriteCdr:
    record: CallRecord


Action = Union[Answer, Progress, Play, Hangup, Follow, Dial, StopPlayback, StartMoh, StopMoh, JoinQueue, Bridge,
               DestroyBridge, AwaitDigit, StartRecording, AwaitRecording, WriteCdr]


# ---- the state of one call


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    phase: Phase = Phase.NEW
    did: str = ""
    caller: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    in_service: bool = False
    followed: bool = False  # subscribed: the call ends with ChannelDestroyed, not StasisEnd
    number: str = ""  # the number whose route is running (changes when forwarded)
    steps: tuple[tuple[Target, ...], ...] = ()  # what each Dial() rings, in order
    step_index: int = 0
    no_answer: NoAnswer | None = None
    hops: int = 0
    outcome: str | None = None  # DIALSTATUS of the last unanswered step
    dialed: tuple[tuple[str, str], ...] = ()  # (outbound channel id, target E.164) of the current step
    answered_target: Target | None = None
    playing: str | None = None  # id of the playback whose end means: release (or, queued: music again)
    then_number: str | None = None  # after the announcement, enter this number's route (an overflow) instead
    then_target: Target | None = None  # after the announcement, ring this phone (an overflow) instead
    queue: str | None = None  # the queue the caller waits in (or was connected from)
    queue_entered_at: datetime | None = None
    visits: tuple[QueueVisit, ...] = ()  # queues waited in, each with how it ended
    agent_channel: str | None = None  # connected: the agent's channel, in the call's bridge
    record_mode: Mode | None = None  # recording is on for the number: the mode the law asks for; None: off
    record_done: Mode | None = None  # what the caller went through (silence, notice, agreement); None: no recording
    record_evidence: str = ""  # why the call is recorded, or why not
    recording_asked: bool = False
    recording: RecordingFile | None = None
    recording_lost: str | None = None
    ended_at: datetime | None = None  # FINISHING: when the call ended
    release_reason: str = "normal"
    release_cause: int | None = None  # what we released with
    hangup_cause: int | None = None  # what Asterisk reported


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
    """Time to tell the waiting caller their place in line (1: next)."""

    channel_id: str
    at: datetime
    position: int


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
class Adopted:
    """A restarted fairline found this call still in Asterisk (decision 0015).

    `where`: "dialing" (in the dialplan's Dial(), now subscribed to), "bridged" (in fairline's
    bridge with a queue agent on `agent_channel`) or "held" (answered and in the app: queued,
    asking for consent or announcing; what it waited for is lost).
    """

    channel_id: str
    at: datetime
    did: str
    caller: str | None
    started_at: datetime
    answered_at: datetime | None  # Asterisk's own answer time (CDR(answer)), so billing stays exact
    where: str
    agent_channel: str | None = None
    recording: tuple[Mode, str] | None = None  # being recorded: the mode and evidence it started under


QueueEvent = Union[QueueConnected, PositionDue, QueueOverflowed, AgentHungUp]
RecordingEvent = Union[DigitTimeout, RecordingStored, RecordingLost]
FlowEvent = Union[AriEvent, ActionFailed, QueueEvent, RecordingEvent, Adopted]


def step(call: Call, event: FlowEvent, config: Config) -> tuple[Call, list[Action]]:
    """The next state of `call` after `event`, and what to do about it.

    Events that do not apply in the current phase change nothing (Asterisk may send
    a late PlaybackFinished after a hang-up, for instance); nothing here raises.
    """
    if call.phase is Phase.ENDED or isinstance(event, Ignored):
        return call, []
    if call.phase is Phase.FINISHING:
        return _finishing(call, event)
    if isinstance(event, (RecordingStored, RecordingLost)):  # before the call ended
        return _recording_result(call, event), []
    if isinstance(event, CallDestroyed):
        ended = call if call.hangup_cause is not None else dataclasses.replace(call, hangup_cause=_cause(call, event.cause))
        return _end(ended, event.at)
    if isinstance(event, CallLeft):
        # A followed call leaves the app for every Dial(); only its destruction ends it.
        return (call, []) if call.followed else _end(call, event.at)
    if isinstance(event, HangupRequested):
        return dataclasses.replace(call, hangup_cause=_cause(call, event.cause) if call.hangup_cause is None
                                   else call.hangup_cause), []
    if isinstance(event, CallAnswered):
        return (dataclasses.replace(call, answered_at=event.at), []) if call.answered_at is None else (call, [])
    if isinstance(event, TargetDialed):
        return dataclasses.replace(call, dialed=(*call.dialed, (event.peer_id, event.target))), []
    if isinstance(event, TargetAnswered):
        number = dict(call.dialed).get(event.peer_id)
        targets = call.steps[call.step_index] if call.steps else ()
        answered = dataclasses.replace(call, answered_target=next((t for t in targets if t.e164 == number), None))
        return _record_if_allowed(answered, number, config)
    if isinstance(event, ActionFailed):
        if call.phase is Phase.RELEASING:
            return call, []
        # A failed subscribe/continue leaves the channel in the app: its StasisEnd is its end.
        failed = dataclasses.replace(call, followed=False, release_cause=CAUSE_FAILURE)
        if call.release_reason == "failure":  # even the apology failed: release at once
            return _release(failed, CAUSE_FAILURE, "failure")
        # The caller hears why before the release, never silence (early media: nobody pays).
        return _announce(failed, SORRY, "failure", answer=False, name="failure")
    if call.phase is Phase.NEW and isinstance(event, CallStarted):
        return _start(call, event, config)
    if call.phase is Phase.NEW and isinstance(event, Adopted):
        return _adopt_found(call, event, config)
    if call.phase is Phase.NEW and isinstance(event, DialReturned):
        return _adopt(call, event, config)
    if call.phase is Phase.DIALING and isinstance(event, DialReturned):
        return _dial_returned(call, event, config)
    if call.phase is Phase.QUEUED:
        return _queued(call, event, config)
    if call.phase is Phase.NOTICE:
        return _notice(call, event, config)
    if call.phase is Phase.CONSENT:
        return _consent(call, event, config)
    if call.phase is Phase.CONNECTED and isinstance(event, AgentHungUp):
        return _release(call, CAUSE_NORMAL, "normal")
    if call.phase is Phase.ANNOUNCING and isinstance(event, PlaybackDone) and event.playback_id == call.playing:
        if call.then_number is not None:
            return _enter(dataclasses.replace(call, then_number=None, playing=None), call.then_number, event.at, config)
        if call.then_target is not None:  # ring the overflow's phone; unanswered, the default announcement
            return _dial(dataclasses.replace(call, then_target=None, playing=None, steps=((call.then_target,),),
                                             step_index=0, no_answer=None))
        cause = {"normal": CAUSE_NORMAL, "unallocated": CAUSE_UNALLOCATED, "failure": CAUSE_FAILURE}.get(
            call.release_reason)
        if cause is None:
            cause = _OUTCOMES.get(call.outcome or "", (CAUSE_NO_ANSWER,))[0]
        return _release(call, cause, call.release_reason)
    return call, []


def _start(call: Call, event: CallStarted, config: Config) -> tuple[Call, list[Action]]:
    number = config.number(event.did)
    started = dataclasses.replace(
        call, did=number.e164 if number else event.did, caller=event.caller, started_at=event.started_at,
        in_service=number is not None,
    )
    if number is None:
        return _announce(started, NOT_IN_SERVICE, "unallocated", answer=False, name="noservice")
    if number.route is not None and config.records(number):
        return _recording_first(started, number, event.at, config)
    return _enter(started, number.e164, event.at, config)


def _recording_first(call: Call, number: Number, at: datetime, config: Config) -> tuple[Call, list[Action]]:
    """Recording is on: what the law asks for the places involved, before anything rings."""
    decision = recording_rules.decide(config, number, call.caller, at)
    call = dataclasses.replace(call, record_mode=decision.mode, record_evidence=decision.evidence)
    if decision.mode is Mode.FORBIDDEN:
        return _enter(_evidence(call, "not recorded: the law forbids it"), number.e164, at, config)
    if decision.mode is Mode.ONE_PARTY:
        done = _evidence(dataclasses.replace(call, record_done=Mode.ONE_PARTY),
                         "recorded without notice: a participant may record")
        return _enter(done, number.e164, at, config)
    notice = config.recording.notice
    if decision.mode is Mode.NOTIFY:  # as early media: the caller pays nothing for being told
        playback_id = f"{call.call_id}-notice"
        return (dataclasses.replace(call, phase=Phase.NOTICE, playing=playback_id),
                [Progress(), Play(recording_rules.media(notice), playback_id)])
    playback_id = f"{call.call_id}-consent"  # consent: a digit needs an answered call
    return (dataclasses.replace(call, phase=Phase.CONSENT, playing=playback_id),
            [Answer(), Play(recording_rules.media((*notice, *config.recording.consent_prompt)), playback_id)])


def _notice(call: Call, event: FlowEvent, config: Config) -> tuple[Call, list[Action]]:
    if not isinstance(event, PlaybackDone) or event.playback_id != call.playing:
        return call, []
    if event.failed:
        told = _evidence(call, "not recorded: the notice could not be played")
    else:
        told = _evidence(dataclasses.replace(call, record_done=Mode.NOTIFY),
                         f"notice played in full, ended {event.at.isoformat()}")
    return _enter(dataclasses.replace(told, playing=None), call.did, event.at, config)


def _consent(call: Call, event: FlowEvent, config: Config) -> tuple[Call, list[Action]]:
    """The notice and the prompt play; 1 agrees, 2 refuses, nothing within the time refuses too."""
    if isinstance(event, PlaybackDone) and event.playback_id == call.playing:
        if event.failed:
            told = _evidence(call, "not recorded: the consent prompt could not be played")
            return _enter(dataclasses.replace(told, playing=None), call.did, event.at, config)
        return dataclasses.replace(call, playing=None), [AwaitDigit(config.recording.consent_seconds)]
    stop: list[Action] = [StopPlayback(call.playing)] if call.playing else []
    if isinstance(event, DtmfReceived) and event.digit == "1":
        agreed = _evidence(dataclasses.replace(call, record_done=Mode.CONSENT, playing=None),
                           f"caller pressed 1 (agreed) at {event.at.isoformat()}")
        connected, actions = _enter(agreed, call.did, event.at, config)
        return connected, [*stop, *actions]
    if isinstance(event, DtmfReceived) and event.digit == "2":
        refused = _evidence(dataclasses.replace(call, playing=None),
                            f"not recorded: caller pressed 2 (refused) at {event.at.isoformat()}")
        connected, actions = _enter(refused, call.did, event.at, config)
        return connected, [*stop, *actions]
    if isinstance(event, DigitTimeout) and call.playing is None:
        silent = _evidence(call, f"not recorded: no digit within {config.recording.consent_seconds} s of the prompt")
        return _enter(silent, call.did, event.at, config)
    return call, []


def _record_if_allowed(call: Call, phone: str | None, config: Config) -> tuple[Call, list[Action]]:
    """A phone answered: record if what the caller went through covers what that phone's place asks for."""
    if call.record_mode is None or call.record_done is None or call.recording_asked or phone is None:
        return call, []
    needed = recording_rules.at_answer(config, call.did, call.caller, phone)
    if not recording_rules.covers(call.record_done, needed.mode):
        return _evidence(dataclasses.replace(call, record_done=None, record_mode=needed.mode),
                         f"not recorded: the answering phone needs {needed.mode} ({needed.evidence})"), []
    return dataclasses.replace(call, recording_asked=True), [StartRecording()]


def _evidence(call: Call, what: str) -> Call:
    return dataclasses.replace(call, record_evidence=f"{call.record_evidence}; {what}" if call.record_evidence else what)


def _adopt(call: Call, event: DialReturned, config: Config) -> tuple[Call, list[Action]]:
    """A call comes back from Dial() to a fairline that did not send it there (it restarted).

    What the route would do next is not known any more; the caller must not be left in
    silence: an answered call is released, an unanswered one hears why and is released.
    Its answer time is lost, so it is recorded as answered when it comes back.
    """
    number = config.number(event.did)
    adopted = dataclasses.replace(
        call, did=number.e164 if number else event.did, caller=event.caller, started_at=event.started_at,
        in_service=True, answered_at=event.at if event.answered else None, steps=((),),
        no_answer=number.route.no_answer if number and number.route else None,
    )
    return _dial_returned(dataclasses.replace(adopted, phase=Phase.DIALING), event, config)


def _adopt_found(call: Call, event: Adopted, config: Config) -> tuple[Call, list[Action]]:
    """Take over a call a previous fairline left in Asterisk: let it go on where that is possible."""
    number = config.number(event.did)
    found = dataclasses.replace(
        call, did=number.e164 if number else event.did, caller=event.caller, started_at=event.started_at,
        in_service=number is not None, answered_at=event.answered_at, followed=True)
    if event.recording is not None:
        mode, evidence = event.recording
        found = dataclasses.replace(found, record_mode=mode, record_done=mode, record_evidence=evidence,
                                    recording_asked=True)
    if event.where == "dialing":  # Dial() goes on; its outcome comes back as for any adopted call
        return dataclasses.replace(found, phase=Phase.DIALING, steps=((),),
                                   no_answer=number.route.no_answer if number and number.route else None), []
    if event.where == "bridged":  # talking with a queue agent: nothing to do until one hangs up
        return dataclasses.replace(found, phase=Phase.CONNECTED, agent_channel=event.agent_channel), []
    # Held in the app (queued, asked for consent, announcing): what it waited for is lost.
    # The caller hears why and is released, never left in silence.
    held = dataclasses.replace(found, followed=False, release_cause=CAUSE_FAILURE)
    announcing, actions = _announce(held, SORRY, "failure", answer=event.answered_at is not None, name="failure")
    return announcing, [StopMoh(), *actions]


def _enter(call: Call, e164: str, at: datetime, config: Config) -> tuple[Call, list[Action]]:
    """Run the route of number `e164` (the dialled one, or one forwarded to)."""
    number = config.numbers.get(e164)
    if number is None:  # forwarded to a number a reload removed
        return _announce(dataclasses.replace(call, outcome="NOANSWER"), NO_ROUTE_LEFT, "no_answer", answer=False,
                         name=f"{call.hops}-noanswer")
    route = number.route_at(at)
    if route is None:
        return _announce(call, number.announcement or NO_ROUTE_LEFT, "normal", answer=True,
                         name="announcement" if call.hops == 0 else f"{call.hops}-announcement")
    entered = dataclasses.replace(call, number=e164, steps=_steps(route), step_index=0, no_answer=route.no_answer)
    if (queue := route.queue_only) is not None:  # in line at once
        return _join_queue(entered, queue, at, config)
    return _dial(entered)


def _steps(route: Route) -> tuple[tuple[Target, ...], ...]:
    if route.strategy is Strategy.SIMULTANEOUS:
        return (route.targets,)
    return tuple((t,) for t in route.targets)


def _dial(call: Call) -> tuple[Call, list[Action]]:
    targets = call.steps[call.step_index]
    ring = max(t.ring_seconds for t in targets)
    dial = "&".join(f"PJSIP/{t.e164}@{TRUNK}" for t in targets) + f",{ring}"
    actions: list[Action] = [] if call.followed else [Follow()]
    return dataclasses.replace(call, phase=Phase.DIALING, followed=True, dialed=()), [*actions, Dial(dial)]


def _dial_returned(call: Call, event: DialReturned, config: Config) -> tuple[Call, list[Action]]:
    if event.status == "ANSWER":  # connected, and the target hung up: release the caller too
        return _release(call, CAUSE_NORMAL, "normal")
    if event.status not in _OUTCOMES:  # CANCEL (caller gone), DONTCALL, INVALIDARGS...
        return _release(dataclasses.replace(call, outcome=event.status or None), CAUSE_FAILURE, "failure")
    call = dataclasses.replace(call, outcome=event.status)
    if call.step_index + 1 < len(call.steps):
        return _dial(dataclasses.replace(call, step_index=call.step_index + 1))
    if isinstance(call.no_answer, ForwardTo):
        if call.hops + 1 > MAX_HOPS:
            return _announce(call, NO_ROUTE_LEFT, _OUTCOMES[event.status][1], answer=False,
                             name=f"{call.hops}-noanswer")
        return _enter(dataclasses.replace(call, hops=call.hops + 1), call.no_answer.number, event.at, config)
    if isinstance(call.no_answer, ToQueue):
        return _join_queue(call, call.no_answer.name, event.at, config)
    sound = call.no_answer.sound if isinstance(call.no_answer, Announce) else NO_ROUTE_LEFT
    return _announce(call, sound, _OUTCOMES[event.status][1], answer=False, name=f"{call.hops}-noanswer")


def _join_queue(call: Call, name: str, at: datetime, config: Config) -> tuple[Call, list[Action]]:
    """Answer the caller and put them in line, with music on hold (Asterisk's Queue() answers too)."""
    if name not in config.queues:  # a reload removed the queue
        return _announce(call, NO_ROUTE_LEFT, _OUTCOMES[call.outcome or "NOANSWER"][1], answer=False,
                         name=f"{call.hops}-noanswer")
    queued = dataclasses.replace(call, phase=Phase.QUEUED, queue=name, queue_entered_at=at, playing=None)
    answer: list[Action] = [] if call.answered_at is not None else [Answer()]
    return queued, [JoinQueue(name), *answer, StartMoh()]  # in line first: the wait starts now


def _queued(call: Call, event: FlowEvent, config: Config) -> tuple[Call, list[Action]]:
    """A caller waiting in a queue: connect, tell the position, or overflow when the cap is reached."""
    stop: list[Action] = [StopPlayback(call.playing)] if call.playing else []
    if isinstance(event, QueueConnected):
        kind = target_kind(event.agent)
        connected = dataclasses.replace(
            _close_visit(call, event.at, QueueOutcome.ANSWERED), phase=Phase.CONNECTED, playing=None,
            agent_channel=event.agent_channel, answered_target=Target(event.agent, kind, 0) if kind else None)
        connected, record = _record_if_allowed(connected, event.agent, config)
        return connected, [*stop, StopMoh(), Bridge(event.agent_channel), *record]
    if isinstance(event, PositionDue) and call.playing is None:
        playback_id = f"{call.call_id}-position-{len(call.visits)}-{event.at.timestamp():.0f}"
        return dataclasses.replace(call, playing=playback_id), [StopMoh(), Play(_position_media(event.position),
                                                                                 playback_id)]
    if isinstance(event, PlaybackDone) and event.playback_id == call.playing:
        return dataclasses.replace(call, playing=None), [StartMoh()]
    if isinstance(event, QueueOverflowed):
        queue = config.queues.get(call.queue or "")
        overflow = queue.overflow if queue is not None else Announce(NO_ROUTE_LEFT)
        if isinstance(overflow, (ForwardTo, Target)) and call.hops + 1 <= MAX_HOPS:
            sent_on = dataclasses.replace(
                _close_visit(call, event.at, QueueOutcome.OVERFLOWED), hops=call.hops + 1,
                then_number=overflow.number if isinstance(overflow, ForwardTo) else None,
                then_target=overflow if isinstance(overflow, Target) else None)
            return _queue_announce(sent_on, OVERFLOWING, stop, name=f"{call.hops}-overflow")
        sound = overflow.sound if isinstance(overflow, Announce) else NO_ROUTE_LEFT
        timed_out = _close_visit(call, event.at, QueueOutcome.QUEUE_TIMEOUT)
        return _queue_announce(timed_out, sound, stop, name=f"{call.hops}-queue-timeout")
    return call, []


def _position_media(position: int) -> str:
    if position == 1:
        return "sound:queue-youarenext"
    # "You are currently caller number" N "waiting to speak to a representative" (Asterisk's Queue() prompts)
    return f"sound:queue-thereare,number:{position},sound:queue-callswaiting"


def _queue_announce(call: Call, sound: str, stop: list[Action], *, name: str) -> tuple[Call, list[Action]]:
    """Leave the music for an announcement; the caller is answered already."""
    playback_id = f"{call.call_id}-{name}"
    announcing = dataclasses.replace(call, phase=Phase.ANNOUNCING, playing=playback_id, release_reason="normal")
    return announcing, [*stop, StopMoh(), Play(f"sound:{sound}", playback_id)]


def _close_visit(call: Call, at: datetime, outcome: QueueOutcome) -> Call:
    """The caller leaves the queue: record how long they waited there and how it ended."""
    if call.queue is None or call.queue_entered_at is None:
        return call
    waited = Decimal(max(0.0, (at - call.queue_entered_at).total_seconds())).quantize(Decimal("0.001"))
    visit = QueueVisit(call.queue, call.queue_entered_at, waited, outcome)
    return dataclasses.replace(call, visits=(*call.visits, visit), queue_entered_at=None)


def _announce(call: Call, sound: str, then: str, *, answer: bool, name: str) -> tuple[Call, list[Action]]:
    """Play `sound` (after answer, or as early media so nobody pays), then release with reason `then`.

    The playback id is `<call id>-<name>`: its PlaybackFinished, and no other, ends the announcement.
    """
    playback_id = f"{call.call_id}-{name}"
    announcing = dataclasses.replace(call, phase=Phase.ANNOUNCING, playing=playback_id, release_reason=then)
    return announcing, [Answer() if answer else Progress(), Play(f"sound:{sound}", playback_id)]


def _release(call: Call, cause: int, reason: str) -> tuple[Call, list[Action]]:
    return dataclasses.replace(call, phase=Phase.RELEASING, release_cause=cause), [Hangup(reason)]


def _end(call: Call, at: datetime) -> tuple[Call, list[Action]]:
    if call.phase is Phase.QUEUED:  # the caller hung up while waiting
        call = _close_visit(call, at, QueueOutcome.ABANDONED)
    bridge: list[Action] = [DestroyBridge()] if call.agent_channel is not None else []
    if call.recording_asked and call.recording is None and call.recording_lost is None:
        # Asterisk closes the file as the call goes: its CDR waits for the stored recording.
        return dataclasses.replace(call, phase=Phase.FINISHING, ended_at=at), [*bridge, AwaitRecording()]
    ended = dataclasses.replace(call, phase=Phase.ENDED)
    return ended, [*bridge, WriteCdr(record(ended, at))]


def _finishing(call: Call, event: FlowEvent) -> tuple[Call, list[Action]]:
    """The call is over; its recording is being stored. Then, and only then, the CDR."""
    if not isinstance(event, (RecordingStored, RecordingLost)) or call.ended_at is None:
        return call, []
    ended = dataclasses.replace(_recording_result(call, event), phase=Phase.ENDED)
    return ended, [WriteCdr(record(ended, call.ended_at))]


def _recording_result(call: Call, event: RecordingStored | RecordingLost) -> Call:
    if isinstance(event, RecordingStored):
        return dataclasses.replace(call, recording=event.file)
    return dataclasses.replace(call, recording_lost=event.reason,
                               record_evidence=f"{call.record_evidence}; recording lost: {event.reason}")


def _cause(call: Call, reported: int | None) -> int | None:
    """The Q.850 cause of a hang-up fairline did not ask for.

    Once fairline answered the caller itself (a queue), the caller's BYE ends an answered
    call: normal clearing. Asterisk would report the cause of the last failed Dial() instead,
    which it keeps on the channel.
    """
    return CAUSE_NORMAL if call.phase in (Phase.QUEUED, Phase.CONNECTED) else reported


def record(call: Call, ended_at: datetime) -> CallRecord:
    """The CDR of a call that has ended."""
    if call.answered_at is not None:
        disposition = Disposition.ANSWERED
    elif call.release_cause == CAUSE_FAILURE:
        disposition = Disposition.FAILED
    elif not call.in_service and call.started_at is not None:
        disposition = Disposition.UNALLOCATED
    elif call.release_cause is not None and call.outcome in _OUTCOMES:
        disposition = _OUTCOMES[call.outcome][2]
    else:
        disposition = Disposition.ABANDONED  # the caller hung up before anyone answered
    target = call.answered_target if call.answered_at is not None else None
    return CallRecord(
        call_id=call.call_id,
        did=call.did,
        caller=call.caller,
        started_at=call.started_at or ended_at,
        answered_at=call.answered_at,
        ended_at=ended_at,
        disposition=disposition,
        hangup_cause=call.release_cause if call.release_cause is not None else call.hangup_cause,
        answered_target=target.e164 if target else None,
        target_kind=target.kind.value if target else None,
        queue_visits=call.visits,
        recording_mode=call.record_mode.value if call.record_mode is not None else None,
        recording_evidence=call.record_evidence or None,
        recording=call.recording,
    )
