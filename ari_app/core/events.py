"""The call events: frozen values the call flow understands, one per ARI event fairline acts on.

ari_app/ari/event_parser.py makes them from Asterisk's JSON (anything else becomes `Ignored`);
nothing here reads JSON or does I/O.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Union


@dataclasses.dataclass(frozen=True, slots=True)
class CallStarted:
    """StasisStart: a channel entered the app."""

    channel_id: str
    at: datetime
    did: str
    caller: str | None
    started_at: datetime  # when Asterisk created the channel
    state: str


@dataclasses.dataclass(frozen=True, slots=True)
class DialReturned:
    """StasisStart with args ("dialed", DIALSTATUS, DID): a dialplan Dial() fairline asked for has ended.

    DIALSTATUS is Asterisk's: ANSWER (the call was connected and the target hung up),
    BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL, DONTCALL, TORTURE, INVALIDARGS.
    The rest describes the call, so a fairline that restarted meanwhile can adopt it.
    """

    channel_id: str
    at: datetime
    status: str
    did: str = ""  # the number dialled (FAIRLINE_DID, set by the inbound context)
    caller: str | None = None
    started_at: datetime | None = None
    answered: bool = False  # the channel is up: a target answered before Dial() returned


@dataclasses.dataclass(frozen=True, slots=True)
class AgentLegUp:
    """StasisStart with args ("queue-agent",): a queue agent fairline rang has answered."""

    channel_id: str  # the agent's (outbound) channel
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class TargetDialed:
    """Dial event as a leg starts (no dialstatus yet): which target the new outbound channel rings."""

    channel_id: str  # the caller's (inbound) channel
    at: datetime
    peer_id: str  # the outbound channel
    target: str  # the dialled number, e.g. "+31612345678" from the dialstring "+31612345678@carrier-out"
    # (or "+31612345678-20@fairline-confirm/n", a phone that must press 1)


@dataclasses.dataclass(frozen=True, slots=True)
class TargetAnswered:
    """Dial event with dialstatus ANSWER. Asterisk 22 sends it with an empty dialstring: the
    target is known from the TargetDialed of the same peer channel."""

    channel_id: str  # the caller's (inbound) channel
    at: datetime
    peer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class TargetConfirmed:
    """ChannelVarset of FAIRLINE_CONFIRMED or FAIRLINE_UNCONFIRMED on the caller's channel: the dialplan's
    answer confirmation (decision 0031) says a phone that answered pressed 1, or did not."""

    channel_id: str  # the caller's (inbound) channel
    at: datetime
    target: str  # the phone's number
    confirmed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class CallDestroyed:
    """ChannelDestroyed: the channel is gone, with Asterisk's Q.850 cause. Nothing follows."""

    channel_id: str
    at: datetime
    cause: int | None
    estimated: bool = False  # it went while fairline was away and Asterisk's CDR did not say when: `at` is a guess


@dataclasses.dataclass(frozen=True, slots=True)
class CallAnswered:
    """ChannelStateChange to Up."""

    channel_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class PlaybackDone:
    """PlaybackFinished (also sent when the sound file is missing: state 'failed')."""

    channel_id: str
    at: datetime
    playback_id: str
    failed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class DtmfReceived:
    """ChannelDtmfReceived: the caller pressed a key (0-9, *, #, A-D)."""

    channel_id: str
    at: datetime
    digit: str


@dataclasses.dataclass(frozen=True, slots=True)
class RecorderUp:
    """StasisStart with args ("recording",): the snoop channel that records a call is in the app."""

    channel_id: str  # the snoop channel
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingEnded:
    """RecordingFinished or RecordingFailed of a call's recording, named after the call (its channel id)."""

    channel_id: str  # the recorded call's, from the recording's name
    at: datetime
    failed: str | None  # why, when it failed


@dataclasses.dataclass(frozen=True, slots=True)
class MessageEnded:
    """RecordingFinished or RecordingFailed of the voicemail message a caller left (named X-voicemail for call X)."""

    channel_id: str  # the caller's
    at: datetime
    failed: str | None  # why, when it failed


@dataclasses.dataclass(frozen=True, slots=True)
class HangupRequested:
    """ChannelHangupRequest: somebody hangs the channel up, with a Q.850 cause when known."""

    channel_id: str
    at: datetime
    cause: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class CallLeft:
    """StasisEnd: the channel left the app (usually: it hung up). Nothing follows for it."""

    channel_id: str
    at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Ignored:
    type: str


# Each is about one channel: the inbound leg of a call, or (AgentLegUp) an agent leg of a queue.
CallEvent = Union[CallStarted, DialReturned, AgentLegUp, CallAnswered, TargetDialed, TargetAnswered, TargetConfirmed,
                  PlaybackDone, DtmfReceived, RecorderUp, RecordingEnded, HangupRequested, CallLeft, CallDestroyed,
                  MessageEnded]
AriEvent = Union[CallEvent, Ignored]
