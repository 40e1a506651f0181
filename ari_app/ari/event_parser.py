"""ARI events, parsed from Asterisk's JSON into the frozen call events of ari_app/core/events.py.

The only place that reads Asterisk's JSON: the events websocket's messages, and the
channels, bridges and variables a restarted fairline finds (adoption). Only what
fairline acts on is parsed; anything else becomes `Ignored`. Malformed events raise
`BadEvent`, which the runtime logs and skips: one bad message never stops the event loop.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any

from ari_app.core.events import (
    AgentLegUp,
    AriEvent,
    CallAnswered,
    CallDestroyed,
    CallLeft,
    CallStarted,
    DialReturned,
    DtmfReceived,
    HangupRequested,
    Ignored,
    MessageEnded,
    PlaybackDone,
    RecorderUp,
    RecordingEnded,
    TargetAnswered,
    TargetConfirmed,
    TargetDialed,
)
from ari_app.core import voicemail
from ari_app.errors import FairlineError
from rating.core.numbering import is_withheld


class BadEvent(FairlineError, ValueError):
    """An ARI event that is not what Asterisk documents."""


AGENT_LEG = "queue-agent"  # the Stasis argument of the channels fairline originates to queue agents
SNOOP_LEG = "recording"  # the Stasis argument of the snoop channels that record calls

# Caller ids and DIDs are the carrier's (that is, anybody's) text and end up in logs, in the CDR and on
# invoices: longer than this is no phone number, and is cut here.
MAX_NUMBER_CHARS = 64
_CONFIRMATIONS = ("FAIRLINE_CONFIRMED", "FAIRLINE_UNCONFIRMED")  # set by dialplan/extensions.conf (decision 0031)

# Unicode categories dropped from caller ids and DIDs: control characters (a NUL makes PostgreSQL refuse
# the CDR, a newline forges log lines), line and paragraph separators (line breaks too), format characters
# (bidi overrides that make a number read as another) and lone surrogates (which UTF-8 cannot encode).
_UNPRINTABLE = frozenset({"Cc", "Zl", "Zp", "Cf", "Cs"})

# The Q.850 cause values (Asterisk's AST_CAUSE_*); anything else in `cause` is not one.
_Q850 = range(0, 128)


def parse_time(raw: object, field: str) -> datetime:
    """ARI timestamps look like 2026-11-25T13:30:00.123+0000; returned in UTC."""
    if not isinstance(raw, str):
        raise BadEvent(f"{field}: expected an ISO 8601 timestamp, got {raw!r}")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadEvent(f"{field}: expected an ISO 8601 timestamp, got {raw!r}") from None
    if value.tzinfo is None:
        raise BadEvent(f"{field}: timestamp without a UTC offset: {raw!r}")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+0100, before the first instant Python can hold
        raise BadEvent(f"{field}: timestamp out of range: {raw!r}") from None


def printable(raw: str) -> str:
    """`raw` without unprintable characters and surrounding blanks, at most MAX_NUMBER_CHARS long."""
    kept = "".join(c for c in raw if unicodedata.category(c) not in _UNPRINTABLE)
    return kept.strip()[:MAX_NUMBER_CHARS]


def _caller(data: Any) -> str | None:
    """The caller's number, or None when withheld or unusable."""
    return _number(_get(data, "channel", "caller"))


def _number(caller: Any) -> str | None:
    """The number of ARI's CallerID object, or None when withheld or unusable."""
    number = caller.get("number") if isinstance(caller, dict) else None
    if not isinstance(number, str):
        return None
    number = printable(number)
    return None if is_withheld(number) else number


def _cause(raw: object) -> int | None:
    """A Q.850 cause, or None (JSON's true is no cause, nor is 2**40)."""
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw in _Q850 else None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            raise BadEvent(f"missing field {'.'.join(path)}")
        obj = obj[key]
    return obj


def _str(obj: Any, *path: str) -> str:
    value = _get(obj, *path)
    if not isinstance(value, str):
        raise BadEvent(f"{'.'.join(path)}: expected a string, got {value!r}")
    return value


def parse(message: str | bytes) -> AriEvent:
    """Parse one websocket message from /ari/events."""
    try:
        data = json.loads(message)
    except ValueError as exc:
        raise BadEvent(f"not JSON: {exc}") from None
    except RecursionError:  # "[[[[..." thousands deep: not an event, and it must not stop the event loop
        raise BadEvent("not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadEvent("expected a JSON object")
    kind = _str(data, "type")
    if kind == "StasisStart":
        args = data.get("args") or []
        caller = _caller(data)
        if isinstance(args, list) and args == [SNOOP_LEG]:
            return RecorderUp(_str(data, "channel", "id"), parse_time(data.get("timestamp"), "timestamp"))
        if isinstance(args, list) and args == [AGENT_LEG]:
            return AgentLegUp(_str(data, "channel", "id"), parse_time(data.get("timestamp"), "timestamp"))
        if isinstance(args, list) and args and args[0] == "dialed":
            return DialReturned(
                channel_id=_str(data, "channel", "id"),
                at=parse_time(data.get("timestamp"), "timestamp"),
                status=str(args[1]) if len(args) > 1 else "",
                did=printable(str(args[2])) if len(args) > 2 else "",
                caller=caller,
                started_at=parse_time(_get(data, "channel", "creationtime"), "channel.creationtime"),
                answered=_str(data, "channel", "state") == "Up",
            )
        return CallStarted(
            channel_id=_str(data, "channel", "id"),
            at=parse_time(data.get("timestamp"), "timestamp"),
            did=printable(_str(data, "channel", "dialplan", "exten")),
            caller=caller,
            started_at=parse_time(_get(data, "channel", "creationtime"), "channel.creationtime"),
            state=_str(data, "channel", "state"),
        )
    if kind == "ChannelStateChange":
        if _str(data, "channel", "state") != "Up":
            return Ignored(kind)
        return CallAnswered(_str(data, "channel", "id"), parse_time(data.get("timestamp"), "timestamp"))
    if kind == "PlaybackFinished":
        target = _str(data, "playback", "target_uri")
        if not target.startswith("channel:"):
            return Ignored(kind)
        return PlaybackDone(
            channel_id=target.removeprefix("channel:"),
            at=parse_time(data.get("timestamp"), "timestamp"),
            playback_id=_str(data, "playback", "id"),
            failed=data["playback"].get("state") == "failed",
        )
    if kind == "ChannelHangupRequest":
        # A soft hang-up (fairline's own DELETE, an admin, a shutdown) carries Asterisk's
        # internal soft-hangup flag in `cause`, not a Q.850 cause.
        cause = None if data.get("soft") else data.get("cause")
        return HangupRequested(
            channel_id=_str(data, "channel", "id"),
            at=parse_time(data.get("timestamp"), "timestamp"),
            cause=_cause(cause),
        )
    if kind == "Dial":
        status = data.get("dialstatus")
        if not isinstance(data.get("caller"), dict) or status not in ("", "ANSWER"):
            return Ignored(kind)  # an originated leg, or a leg's failure (the dialplan reports the outcome)
        caller, at, peer = _str(data, "caller", "id"), parse_time(data.get("timestamp"), "timestamp"), _str(data, "peer", "id")
        if status == "ANSWER":
            return TargetAnswered(caller, at, peer)
        return TargetDialed(caller, at, peer, _str(data, "dialstring").split("@", 1)[0].split("-", 1)[0])
    if kind == "ChannelVarset" and data.get("variable") in _CONFIRMATIONS and isinstance(data.get("channel"), dict):
        target = _str(data, "value")
        if not re.fullmatch(r"\+[0-9]{1,15}", target):
            raise BadEvent(f"value: expected the E.164 number of the phone that answered, got {target[:20]!r}")
        return TargetConfirmed(_str(data, "channel", "id"), parse_time(data.get("timestamp"), "timestamp"), target,
                               confirmed=data["variable"] == "FAIRLINE_CONFIRMED")
    if kind == "ChannelDestroyed":
        return CallDestroyed(
            channel_id=_str(data, "channel", "id"),
            at=parse_time(data.get("timestamp"), "timestamp"),
            cause=_cause(data.get("cause")),
        )
    if kind == "ChannelDtmfReceived":
        digit = _str(data, "digit")
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise BadEvent(f"digit: expected one of 0-9, *, #, A-D, got {digit[:10]!r}")
        return DtmfReceived(_str(data, "channel", "id"), parse_time(data.get("timestamp"), "timestamp"), digit)
    if kind in ("RecordingFinished", "RecordingFailed"):
        name = _str(data, "recording", "name")  # so data["recording"] is a mapping
        failed = None
        if kind == "RecordingFailed":
            failed = str(data["recording"].get("cause") or "Asterisk reported the recording failed")
        if name.endswith(voicemail.SUFFIX):
            return MessageEnded(name.removesuffix(voicemail.SUFFIX), parse_time(data.get("timestamp"), "timestamp"),
                                failed)
        return RecordingEnded(name, parse_time(data.get("timestamp"), "timestamp"), failed)
    if kind == "StasisEnd":
        return CallLeft(_str(data, "channel", "id"), parse_time(data.get("timestamp"), "timestamp"))
    return Ignored(kind)


# ---- what a restarted fairline finds in Asterisk (GET /channels, /bridges, channel variables)


@dataclasses.dataclass(frozen=True, slots=True)
class Channel:
    """One channel of GET /channels: where it is in the dialplan, and what the call's CDR needs."""

    channel_id: str
    state: str  # Asterisk's channel state: "Up" once answered, "Ring", ...
    caller: str | None  # None when withheld or unusable
    created_at: datetime
    context: str  # the dialplan location it is at
    exten: str
    app_name: str  # the dialplan application it runs: "Stasis", "Dial", ...
    app_data: str


@dataclasses.dataclass(frozen=True, slots=True)
class BadChannel:
    """A channel of GET /channels that is not what Asterisk documents; `channel_id` may be empty."""

    channel_id: str
    error: str


def parse_channels(raw: Any) -> list[Channel | BadChannel]:
    """GET /channels' answer: each channel parsed on its own, so one bad channel spoils only itself."""
    found: list[Channel | BadChannel] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            found.append(parse_channel(item))
        except BadEvent as exc:
            cid = item.get("id") if isinstance(item, dict) else None
            found.append(BadChannel(str(cid) if cid is not None else "", str(exc)))
    return found


def parse_channel(raw: Any) -> Channel:
    """One channel as ARI shows it (the `channel` of an event, or an item of GET /channels)."""
    dialplan = raw.get("dialplan") if isinstance(raw, dict) else None
    dialplan = dialplan if isinstance(dialplan, dict) else {}
    return Channel(
        channel_id=_str(raw, "id"),
        state=str(raw.get("state", "")),
        caller=_number(raw.get("caller")),
        created_at=parse_time(raw.get("creationtime"), "channel.creationtime"),
        context=str(dialplan.get("context", "")),
        exten=printable(str(dialplan.get("exten", ""))),
        app_name=str(dialplan.get("app_name", "")),
        app_data=str(dialplan.get("app_data", "")),
    )


def parse_bridges(raw: Any) -> dict[str, list[str]]:
    """GET /bridges' answer: the channels in each bridge, by bridge id."""
    return {str(b.get("id")): [str(c) for c in b.get("channels", [])]
            for b in (raw if isinstance(raw, list) else []) if isinstance(b, dict)}


def parse_variable(raw: Any) -> str:
    """GET /channels/{id}/variable's answer: the value ("" when there is none)."""
    return str(raw.get("value", "")) if isinstance(raw, dict) else ""


def parse_system_name(raw: Any) -> str:
    """GET /asterisk/info's config.name: Asterisk's `systemname`, the node's name ("" when not set)."""
    config = raw.get("config") if isinstance(raw, dict) else None
    return str(config.get("name") or "") if isinstance(config, dict) else ""


def parse_asterisk_version(raw: Any) -> str:
    """GET /asterisk/info?only=system's answer: Asterisk's version string ("" when missing)."""
    return str(raw.get("system", {}).get("version", "")) if isinstance(raw, dict) else ""
