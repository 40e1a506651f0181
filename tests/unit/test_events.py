"""ARI events: Asterisk's JSON, recorded from a real Asterisk 22 call, parsed into frozen values."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ari_app.errors import FairlineError
from ari_app.ari.event_parser import BadEvent, parse
from ari_app.core.events import (
    CallAnswered,
    CallLeft,
    CallStarted,
    HangupRequested,
    Ignored,
    PlaybackDone,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ari_answered_call.jsonl"
CHANNEL = "1795612635.0"


def recorded_lines() -> list[str]:
    return FIXTURE.read_text(encoding="utf-8").splitlines()


def recorded(kind: str) -> dict[str, Any]:
    """A fresh copy of the first recorded event of type `kind`, to change in memory."""
    for line in recorded_lines():
        event = json.loads(line)
        if event["type"] == kind:
            return copy.deepcopy(event)
    raise LookupError(kind)


def message(event: dict[str, Any]) -> str:
    return json.dumps(event)


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    """`event` with the field at `path` removed."""
    node = event
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return event


def with_value(event: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    """`event` with the field at `path` set to `value`."""
    node = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return event


class TestRecordedCall:
    """Every line of the recorded Asterisk 22 call parses to the value the flow acts on."""

    def test_every_recorded_event_parses_to_its_type(self) -> None:
        """StasisStart, Up, PlaybackFinished, hang-up request and StasisEnd are parsed; the rest is Ignored."""
        kinds = [type(parse(line)) for line in recorded_lines()]

        assert kinds == [
            CallStarted,  # StasisStart
            CallAnswered,  # ChannelStateChange to Up
            Ignored,  # PlaybackStarted
            PlaybackDone,  # PlaybackFinished
            Ignored, Ignored, Ignored, Ignored, Ignored,  # ChannelVarset x5 (RTP statistics)
            HangupRequested,  # ChannelHangupRequest
            CallLeft,  # StasisEnd
        ]

    def test_stasis_start_carries_did_caller_and_aware_times(self) -> None:
        """The DID is the dialplan exten, the caller the caller number, both times aware UTC."""
        event = parse(message(recorded("StasisStart")))

        assert event == CallStarted(
            channel_id=CHANNEL,
            at=datetime(2026, 11, 25, 13, 17, 15, 862000, tzinfo=UTC),
            did="+31201234567",
            caller="+31612345678",
            started_at=datetime(2026, 11, 25, 13, 17, 15, 861000, tzinfo=UTC),
            state="Ring",
        )
        assert event.at.utcoffset() is not None and event.started_at.utcoffset() is not None

    def test_state_change_to_up_is_an_answer(self) -> None:
        """ChannelStateChange with state Up means the channel was answered, at the event's time."""
        assert parse(message(recorded("ChannelStateChange"))) == CallAnswered(
            CHANNEL, datetime(2026, 11, 25, 13, 17, 15, 863000, tzinfo=UTC)
        )

    def test_playback_finished_on_a_channel_is_playback_done_for_that_channel(self) -> None:
        """The channel id comes from the playback's target_uri, without its 'channel:' prefix."""
        assert parse(message(recorded("PlaybackFinished"))) == PlaybackDone(
            channel_id=CHANNEL,
            at=datetime(2026, 11, 25, 13, 17, 16, 306000, tzinfo=UTC),
            playback_id="p1",
            failed=False,
        )

    def test_hangup_request_is_parsed_for_its_channel(self) -> None:
        """ChannelHangupRequest becomes HangupRequested for the channel, at the event's time."""
        event = parse(message(recorded("ChannelHangupRequest")))

        assert isinstance(event, HangupRequested)
        assert (event.channel_id, event.at) == (CHANNEL, datetime(2026, 11, 25, 13, 17, 16, 308000, tzinfo=UTC))

    def test_recorded_soft_hangup_request_has_no_q850_cause(self) -> None:
        """The recorded request (cause 32, soft) was fairline's own DELETE: 32 is Asterisk's
        AST_SOFTHANGUP_EXPLICIT flag, not a Q.850 cause, so the CDR must not take it for one."""
        event = parse(message(recorded("ChannelHangupRequest")))

        assert isinstance(event, HangupRequested)
        assert event.cause is None

    def test_stasis_end_is_call_left(self) -> None:
        """StasisEnd: the channel left the app."""
        assert parse(message(recorded("StasisEnd"))) == CallLeft(
            CHANNEL, datetime(2026, 11, 25, 13, 17, 16, 308000, tzinfo=UTC)
        )

    @pytest.mark.parametrize("kind", ["PlaybackStarted", "ChannelVarset"])
    def test_events_fairline_does_not_act_on_are_ignored_by_name(self, kind: str) -> None:
        """Ignored keeps the event's type, so a log can say what was skipped."""
        assert parse(message(recorded(kind))) == Ignored(kind)

    def test_websocket_bytes_parse_like_text(self) -> None:
        """A binary websocket frame holding the same JSON gives the same event."""
        line = recorded_lines()[0]

        assert parse(line.encode()) == parse(line)


class TestParseVariants:
    """Well-formed events that take a less common path."""

    @pytest.mark.parametrize(
        "caller",
        [
            {"name": "", "number": ""},  # withheld (CLIR): Asterisk sends an empty number
            {"name": "Anonymous"},  # no number at all
            "anonymous",  # not even an object
        ],
        ids=["empty-number", "no-number-key", "caller-not-an-object"],
    )
    def test_withheld_caller_is_none(self, caller: object) -> None:
        """A caller without a usable number is None, never the empty string."""
        event = parse(message(with_value(recorded("StasisStart"), caller, "channel", "caller")))

        assert isinstance(event, CallStarted)
        assert event.caller is None

    @pytest.mark.parametrize("state", ["Ring", "Ringing", "Down", "Busy"])
    def test_state_change_to_anything_but_up_is_ignored(self, state: str) -> None:
        """Only Up is an answer; ringing and the rest change nothing for fairline."""
        event = parse(message(with_value(recorded("ChannelStateChange"), state, "channel", "state")))

        assert event == Ignored("ChannelStateChange")

    def test_playback_finished_on_a_bridge_is_ignored(self) -> None:
        """A playback on a bridge is about no single call."""
        event = parse(message(with_value(recorded("PlaybackFinished"), "bridge:b-1", "playback", "target_uri")))

        assert event == Ignored("PlaybackFinished")

    def test_failed_playback_is_done_and_failed(self) -> None:
        """Asterisk reports a missing sound file as PlaybackFinished with state 'failed'."""
        event = parse(message(with_value(recorded("PlaybackFinished"), "failed", "playback", "state")))

        assert isinstance(event, PlaybackDone)
        assert event.failed is True

    @pytest.mark.parametrize(
        ("cause", "expected"),
        [(16, 16), (1, 1), ("16", None), (None, None)],
        ids=["normal", "unallocated", "cause-as-string", "cause-null"],
    )
    def test_hangup_request_cause_is_an_integer_or_none(self, cause: object, expected: int | None) -> None:
        """A caller's BYE arrives as a hard hang-up request with the Q.850 cause; anything else gives None."""
        hard = without(recorded("ChannelHangupRequest"), "soft")
        event = parse(message(with_value(hard, cause, "cause")))

        assert isinstance(event, HangupRequested)
        assert event.cause == expected

    def test_hangup_request_without_cause_has_none(self) -> None:
        """Asterisk leaves `cause` out when the channel has none yet."""
        event = parse(message(without(recorded("ChannelHangupRequest"), "cause")))

        assert isinstance(event, HangupRequested)
        assert event.cause is None

    @pytest.mark.parametrize(
        ("soft", "cause", "expected"),
        [(True, 32, None), (True, 16, None), (True, None, None), (False, 16, 16), (False, 32, 32)],
        ids=["soft-explicit", "soft-with-a-q850-looking-flag", "soft-without-cause", "hard-normal",
             "hard-cause-32"],
    )
    def test_only_a_hard_hangup_request_carries_a_q850_cause(self, soft: bool, cause: int | None,
                                                             expected: int | None) -> None:
        """For a soft request (fairline's DELETE, an admin, a shutdown) `cause` holds Asterisk's soft-hangup
        flag, whatever its value; only a hard one (the caller's BYE) says why in Q.850 terms."""
        event = parse(message(with_value(with_value(recorded("ChannelHangupRequest"), soft, "soft"), cause, "cause")))

        assert isinstance(event, HangupRequested)
        assert event.cause == expected

    def test_timestamps_with_other_offsets_stay_aware(self) -> None:
        """An offset other than +0000 is kept; the instant is the same."""
        event = parse(message(with_value(recorded("StasisEnd"), "2026-11-25T14:17:16.308+0100", "timestamp")))

        assert event == CallLeft(CHANNEL, datetime(2026, 11, 25, 13, 17, 16, 308000, tzinfo=UTC))

    def test_unknown_event_type_without_a_channel_is_ignored(self) -> None:
        """Events fairline does not know need none of the fields it would read."""
        assert parse('{"type": "ApplicationReplaced", "application": "fairline"}') == Ignored("ApplicationReplaced")


def _malformed() -> list[Any]:
    start, end = recorded("StasisStart"), recorded("StasisEnd")
    return [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param(b"\xff\xfe{", "not JSON", id="not-utf8"),
        pytest.param("", "not JSON", id="empty"),
        pytest.param("[]", "expected a JSON object", id="json-list"),
        pytest.param('"StasisStart"', "expected a JSON object", id="json-string"),
        pytest.param("{}", "missing field type", id="missing-type"),
        pytest.param('{"type": 7}', "type: expected a string", id="type-not-a-string"),
        pytest.param(message(without(copy.deepcopy(start), "channel", "id")), "missing field channel.id",
                     id="missing-channel-id"),
        pytest.param(message(with_value(copy.deepcopy(start), 1795612635, "channel", "id")),
                     "channel.id: expected a string", id="channel-id-a-number"),
        pytest.param(message(with_value(copy.deepcopy(start), "PJSIP/x", "channel")), "missing field channel.",
                     id="channel-not-an-object"),
        pytest.param(message(without(copy.deepcopy(start), "channel", "caller")), "missing field channel.caller",
                     id="missing-caller"),
        pytest.param(message(without(copy.deepcopy(start), "channel", "dialplan", "exten")),
                     "missing field channel.dialplan.exten", id="missing-exten"),
        pytest.param(message(with_value(copy.deepcopy(start), 31201234567, "channel", "dialplan", "exten")),
                     "channel.dialplan.exten: expected a string", id="exten-a-number"),
        pytest.param(message(with_value(copy.deepcopy(start), "2026-11-25T13:17:15.862", "timestamp")),
                     "timestamp: timestamp without a UTC offset", id="timestamp-without-offset"),
        pytest.param(message(with_value(copy.deepcopy(start), "2026-11-25T13:17:15.861", "channel", "creationtime")),
                     "channel.creationtime: timestamp without a UTC offset", id="creationtime-without-offset"),
        pytest.param(message(without(copy.deepcopy(start), "channel", "creationtime")),
                     "missing field channel.creationtime", id="missing-creationtime"),
        pytest.param(message(without(copy.deepcopy(end), "timestamp")), "timestamp: expected an ISO 8601 timestamp",
                     id="missing-timestamp"),
        pytest.param(message(with_value(copy.deepcopy(end), 1795612635, "timestamp")),
                     "timestamp: expected an ISO 8601 timestamp", id="timestamp-a-number"),
        pytest.param(message(with_value(copy.deepcopy(end), "yesterday", "timestamp")),
                     "timestamp: expected an ISO 8601 timestamp", id="timestamp-not-a-date"),
        pytest.param(message(without(copy.deepcopy(end), "channel", "id")), "missing field channel.id",
                     id="stasis-end-missing-channel-id"),
        pytest.param(message(without(recorded("ChannelStateChange"), "channel", "state")),
                     "missing field channel.state", id="state-change-missing-state"),
        pytest.param(message(without(recorded("PlaybackFinished"), "playback", "target_uri")),
                     "missing field playback.target_uri", id="playback-missing-target"),
        pytest.param(message(with_value(recorded("PlaybackFinished"), 1, "playback", "id")),
                     "playback.id: expected a string", id="playback-id-a-number"),
        pytest.param(message(without(recorded("ChannelHangupRequest"), "channel", "id")),
                     "missing field channel.id", id="hangup-request-missing-channel-id"),
    ]


class TestParseRejectsMalformed:
    """What Asterisk does not document raises BadEvent, naming the field and what was expected."""

    @pytest.mark.parametrize(("raw", "says"), _malformed())
    def test_malformed_event_is_bad_and_names_the_field(self, raw: str | bytes, says: str) -> None:
        with pytest.raises(BadEvent) as caught:
            parse(raw)

        assert says in str(caught.value)

    def test_bad_event_is_a_fairline_error_and_a_value_error(self) -> None:
        """Callers may catch it as fairline's own error or as the stdlib's ValueError."""
        with pytest.raises(BadEvent) as caught:
            parse("[]")

        assert isinstance(caught.value, FairlineError)
        assert isinstance(caught.value, ValueError)


class TestWithheldCaller:
    @pytest.mark.parametrize("number", ["anonymous", "Anonymous", "restricted", "unavailable", " "])
    def test_a_withheld_caller_id_is_stored_as_no_caller(self, number: str) -> None:
        """Billing sees NULL for a withheld caller, whatever word the carrier used."""
        raw = recorded("StasisStart")
        raw["channel"]["caller"]["number"] = number
        event = parse(json.dumps(raw))
        assert isinstance(event, CallStarted) and event.caller is None
