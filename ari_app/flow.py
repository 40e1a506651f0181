"""The inbound call flow as a pure state machine: events in, next state and actions out.

No I/O here. The runtime feeds ARI events in and executes the actions it gets back.
Flow for now (the thin flow of the first stack):

- a configured number: answer, play its announcement, release normally;
- any other number: early media (no answer: the caller pays nothing), play
  "the number you have dialled is not in service", release as unallocated
  (the carrier sees SIP 404);
- whatever happens, the call ends with exactly one CDR (`record`).
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Union

from ari_app.config import Config
from ari_app.events import AriEvent, CallAnswered, CallLeft, CallStarted, HangupRequested, Ignored, PlaybackDone
from rating.cdr import CallRecord, Disposition

NOT_IN_SERVICE = "ss-noservice"

# Q.850 causes fairline releases calls with, and the ARI `reason` for each.
CAUSE_NORMAL = 16
CAUSE_UNALLOCATED = 1
CAUSE_FAILURE = 38


class Phase(enum.Enum):
    NEW = "new"
    ANNOUNCING = "announcing"  # playing the announcement (answered or as early media)
    RELEASING = "releasing"  # hang-up sent, waiting for the channel to leave
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
    reason: str  # ARI hang-up reason: normal, unallocated, failure, ...


@dataclasses.dataclass(frozen=True, slots=True)
class WriteCdr:
    record: CallRecord


Action = Union[Answer, Progress, Play, Hangup, WriteCdr]


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
    release_cause: int | None = None  # what we released with
    hangup_cause: int | None = None  # what Asterisk reported


@dataclasses.dataclass(frozen=True, slots=True)
class ActionFailed:
    """The runtime could not execute an action (ARI error other than 'channel gone')."""

    channel_id: str
    at: datetime


FlowEvent = Union[AriEvent, ActionFailed]


def step(call: Call, event: FlowEvent, config: Config) -> tuple[Call, list[Action]]:
    """The next state of `call` after `event`, and what to do about it.

    Events that do not apply in the current phase change nothing (Asterisk may send
    a late PlaybackFinished after a hang-up, for instance); nothing here raises.
    """
    if call.phase is Phase.ENDED or isinstance(event, Ignored):
        return call, []
    if isinstance(event, CallLeft):
        return _end(call, event.at)
    if isinstance(event, HangupRequested):
        return dataclasses.replace(call, hangup_cause=event.cause if call.hangup_cause is None else call.hangup_cause), []
    if isinstance(event, CallAnswered):
        if call.answered_at is None:
            return dataclasses.replace(call, answered_at=event.at), []
        return call, []
    if isinstance(event, ActionFailed):
        if call.phase is Phase.RELEASING:
            return call, []
        return _release(call, CAUSE_FAILURE, "failure")
    if call.phase is Phase.NEW and isinstance(event, CallStarted):
        number = config.number(event.did)
        started = dataclasses.replace(
            call, did=number.e164 if number else event.did, caller=event.caller, started_at=event.started_at,
            in_service=number is not None, phase=Phase.ANNOUNCING,
        )
        if number is not None:
            return started, [Answer(), Play(f"sound:{number.announcement}", _playback_id(started))]
        return started, [Progress(), Play(f"sound:{NOT_IN_SERVICE}", _playback_id(started))]
    if call.phase is Phase.ANNOUNCING and isinstance(event, PlaybackDone) and event.playback_id == _playback_id(call):
        if call.in_service:
            return _release(call, CAUSE_NORMAL, "normal")
        return _release(call, CAUSE_UNALLOCATED, "unallocated")
    return call, []


def _playback_id(call: Call) -> str:
    """The id of the announcement's playback: its PlaybackFinished, and no other, ends the announcement."""
    return f"{call.call_id}-{'announcement' if call.in_service else 'noservice'}"


def _release(call: Call, cause: int, reason: str) -> tuple[Call, list[Action]]:
    return dataclasses.replace(call, phase=Phase.RELEASING, release_cause=cause), [Hangup(reason)]


def _end(call: Call, at: datetime) -> tuple[Call, list[Action]]:
    ended = dataclasses.replace(call, phase=Phase.ENDED)
    return ended, [WriteCdr(record(ended, at))]


def record(call: Call, ended_at: datetime) -> CallRecord:
    """The CDR of a call that has ended."""
    if call.answered_at is not None:
        disposition = Disposition.ANSWERED
    elif call.release_cause == CAUSE_FAILURE:
        disposition = Disposition.FAILED
    elif not call.in_service and call.started_at is not None:
        disposition = Disposition.UNALLOCATED
    else:
        disposition = Disposition.ABANDONED
    return CallRecord(
        call_id=call.call_id,
        did=call.did,
        caller=call.caller,
        started_at=call.started_at or ended_at,
        answered_at=call.answered_at,
        ended_at=ended_at,
        disposition=disposition,
        hangup_cause=call.release_cause if call.release_cause is not None else call.hangup_cause,
    )
