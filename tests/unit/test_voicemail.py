"""Voicemail (issue 18): the box's rules, the configuration keys, and the call flow from greeting to CDR."""

from __future__ import annotations

import dataclasses
import smtplib
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from ari_app import mail
from ari_app.config import yaml_loader
from ari_app.core import voicemail
from ari_app.core.events import CallAnswered, CallDestroyed, CallStarted, DialReturned, HangupRequested, PlaybackDone
from ari_app.core.flow import (
    Answer,
    AwaitMessage,
    Call,
    MessageLost,
    MessageStored,
    Phase,
    Play,
    PlayGreeting,
    RecordMessage,
    WriteCdr,
    step,
)
from ari_app.core.model import Config, Customer, Number, Route, Strategy, Target, TargetKind, ToVoicemail
from ari_app.errors import ConfigError
from ari_app.settings import SmtpSettings
from rating.core.cdr import Disposition, RatedCdr, RecordingFile, rate_record
from rating.core.tariff import DEFAULT_RATES, NumberType
from tests.unit.test_flow import CALL_ID, at, run

RINGS = "+31201230401"  # rings the desk, then voicemail
STRAIGHT = "+31201230402"  # voicemail at once
NO_BOX = "+31201230403"  # its customer has no box (a reload took it away)
DESK = Target("+31301234567", TargetKind.FIXED, 15)
BOX = voicemail.Box(("office@acme.example",), max_seconds=60)
MESSAGE = RecordingFile(f"/var/lib/fairline/recordings/2026/11/{CALL_ID}-voicemail.wav", "ab" * 32,
                        at(30), at(38.5), Decimal("8.5"))
CONFIG = Config(
    customers={"acme": Customer("acme", "Acme BV", voicemail=BOX), "bare": Customer("bare", "Bare BV")},
    numbers={n.e164: n for n in [
        Number(RINGS, "acme", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, (DESK,), ToVoicemail())),
        Number(STRAIGHT, "acme", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, (), ToVoicemail())),
        Number(NO_BOX, "bare", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, (), ToVoicemail())),
    ]},
)
GREETING_ID = f"{CALL_ID}-0-greeting"


def started(did: str) -> CallStarted:
    return CallStarted(CALL_ID, at(0.001), did, "+31612345678", started_at=at(0), state="Ring")


def greeted(did: str = STRAIGHT) -> list[object]:
    """The call reaches the box and the greeting plays to its end."""
    return [started(did), CallAnswered(CALL_ID, at(0.1)), PlaybackDone(CALL_ID, at(6), GREETING_ID, False)]


class TestBox:
    @pytest.mark.parametrize("address", ["office@acme.example", "a.b+c@mail.acme.example"])
    def test_plain_addresses_are_addresses(self, address: str) -> None:
        assert voicemail.is_email(address)

    @pytest.mark.parametrize("address", ["", "office", "office@acme", "a@b@c.example", "x@y.example\r\nBcc: z@w.ex",
                                         "<x@y.example>", "x y@z.example", "x@y.example, z@w.example"])
    def test_anything_that_could_split_or_forge_a_header_is_not(self, address: str) -> None:
        assert not voicemail.is_email(address)

    def test_a_box_needs_an_address_and_a_length_within_ten_minutes(self) -> None:
        with pytest.raises(ValueError):
            voicemail.Box(())
        with pytest.raises(ValueError):
            voicemail.Box(("a@b.example",), max_seconds=601)

    @pytest.mark.parametrize(("attempts", "seconds"), [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (500, 3600)])
    def test_retries_back_off_from_ten_seconds_to_an_hour(self, attempts: int, seconds: int) -> None:
        assert voicemail.retry_after(attempts) == seconds

    def test_a_refusal_is_failed_anything_else_retrying_both_are_tried_again(self) -> None:
        assert voicemail.after_failure(True) is voicemail.Delivery.FAILED
        assert voicemail.after_failure(False) is voicemail.Delivery.RETRYING

    def test_a_customers_greeting_plays_as_the_stored_recording_named_by_its_hash(self) -> None:
        greeting = voicemail.GreetingFile("/srv/greetings/acme.wav", "0123456789abcdef" * 4)
        assert voicemail.greeting_media(greeting) == "recording:fairline-greeting-0123456789abcdef"
        assert voicemail.greeting_media("vm-intro") == "sound:vm-intro"


class TestFlow:
    def test_nobody_answers_the_caller_is_answered_and_hears_the_greeting(self) -> None:
        call, actions = run([started(RINGS), DialReturned(CALL_ID, at(15), "NOANSWER")], CONFIG)
        assert call.phase is Phase.VOICEMAIL
        assert actions[-2:] == [Answer(), PlayGreeting(voicemail.DEFAULT_GREETING, GREETING_ID)]

    def test_a_route_straight_to_voicemail_rings_nothing(self) -> None:
        call, actions = run([started(STRAIGHT)], CONFIG)
        assert actions == [Answer(), PlayGreeting(voicemail.DEFAULT_GREETING, GREETING_ID)]

    def test_after_the_greeting_the_message_is_recorded_for_the_boxs_length(self) -> None:
        call, actions = run(greeted(), CONFIG)
        assert actions[-1] == RecordMessage(60) and call.data.message.asked

    def test_a_greeting_that_failed_still_leads_to_the_recording_whose_beep_tells_the_caller(self) -> None:
        _, actions = run([started(STRAIGHT), PlaybackDone(CALL_ID, at(1), GREETING_ID, True)], CONFIG)
        assert actions[-1] == RecordMessage(60)

    def test_the_caller_hanging_up_mid_message_waits_for_the_file_then_the_cdr_says_a_message_was_left(self) -> None:
        events = [*greeted(), HangupRequested(CALL_ID, at(20), 16), CallDestroyed(CALL_ID, at(20.1), 16)]
        call, actions = run(events, CONFIG)
        assert call.phase is Phase.FINISHING and actions[-1] == AwaitMessage()
        assert not any(isinstance(a, WriteCdr) for a in actions)  # not before the message is stored

        call, actions = step(call, MessageStored(CALL_ID, at(20.3), MESSAGE), CONFIG)
        [write] = actions
        assert isinstance(write, WriteCdr) and call.phase is Phase.ENDED
        assert write.record.voicemail == MESSAGE and write.record.disposition is Disposition.ANSWERED

    def test_the_callers_hang_up_during_the_message_is_normal_clearing_whatever_asterisk_reports(self) -> None:
        """Asterisk reports 0, or the cause of the Dial() nobody answered; the call was answered and ended normally."""
        for reported in (0, 19):
            events = [*greeted(), HangupRequested(CALL_ID, at(20), reported),
                      MessageStored(CALL_ID, at(20.05), MESSAGE), CallDestroyed(CALL_ID, at(20.1), reported)]
            _, actions = run(events, CONFIG)
            [write] = [a for a in actions if isinstance(a, WriteCdr)]
            assert write.record.hangup_cause == 16, reported

    def test_the_message_stored_before_the_channel_went_is_on_the_cdr_at_once(self) -> None:
        events = [*greeted(), HangupRequested(CALL_ID, at(20), 16), MessageStored(CALL_ID, at(20.05), MESSAGE),
                  CallDestroyed(CALL_ID, at(20.1), 16)]
        _, actions = run(events, CONFIG)
        [write] = [a for a in actions if isinstance(a, WriteCdr)]
        assert write.record.voicemail == MESSAGE

    def test_a_message_lost_still_ends_the_call_with_one_cdr_without_a_message(self) -> None:
        events = [*greeted(), HangupRequested(CALL_ID, at(20), 16), CallDestroyed(CALL_ID, at(20.1), 16),
                  MessageLost(CALL_ID, at(30), "not stored within 10 s")]
        call, actions = run(events, CONFIG)
        [write] = [a for a in actions if isinstance(a, WriteCdr)]
        assert call.phase is Phase.ENDED and write.record.voicemail is None

    def test_a_message_ended_by_hash_or_its_length_is_confirmed_then_released(self) -> None:
        call, actions = run([*greeted(), MessageStored(CALL_ID, at(66), MESSAGE)], CONFIG)
        assert actions[-1] == Play(f"sound:{voicemail.SAVED}", f"{CALL_ID}-0-message-saved")
        assert call.phase is Phase.ANNOUNCING and call.data.message.file == MESSAGE

    def test_a_message_that_could_not_be_recorded_is_met_with_an_apology_never_silence(self) -> None:
        call, actions = run([*greeted(), MessageLost(CALL_ID, at(6.1), "Asterisk refused")], CONFIG)
        assert actions[-1] == Play("sound:all-circuits-busy-now", f"{CALL_ID}-0-message-lost")

    def test_a_customer_without_a_box_gets_the_announcement_instead(self) -> None:
        _, actions = run([started(NO_BOX)], CONFIG)
        assert Play("sound:vm-nobodyavail", f"{CALL_ID}-0-noanswer") in actions

    def test_a_queue_overflowing_to_voicemail_stops_the_music_and_takes_a_message(self) -> None:
        from ari_app.core.flow import QueueOverflowed, StopMoh
        from ari_app.core.model import Queue, ToQueue
        from ari_app.core.queueing import QueueSpec, RingStrategy
        from rating.core.cdr import QueueOutcome

        queued = "+31201230404"
        config = dataclasses.replace(CONFIG, numbers={**CONFIG.numbers, queued: Number(
            queued, "acme", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, (), ToQueue("desk")))},
            queues={"desk": Queue("acme", QueueSpec("desk", ("+31612345601",), RingStrategy.RINGALL, 15, 5),
                                  ToVoicemail())})
        call, actions = run([started(queued), CallAnswered(CALL_ID, at(0.1)), QueueOverflowed(CALL_ID, at(60))],
                            config)
        assert call.phase is Phase.VOICEMAIL and call.data.visits[-1].outcome is QueueOutcome.OVERFLOWED
        assert actions[-2:] == [StopMoh(), PlayGreeting(voicemail.DEFAULT_GREETING, GREETING_ID)]

    def test_the_cdr_and_its_spool_line_keep_the_message(self) -> None:
        events = [*greeted(), HangupRequested(CALL_ID, at(20), 16), MessageStored(CALL_ID, at(20.05), MESSAGE),
                  CallDestroyed(CALL_ID, at(20.1), 16)]
        _, actions = run(events, CONFIG)
        [write] = [a for a in actions if isinstance(a, WriteCdr)]
        rated = rate_record(write.record, "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert RatedCdr.from_json(rated.to_json()) == rated
        assert RatedCdr.from_json({**rated.to_json(), "voicemail": None}).call.voicemail is None


BOXED = """\
customers:
  - id: acme
    name: Acme
    voicemail: {voicemail}
numbers:
  - number: "+31201230401"
    customer: acme
    type: local
    route: {route}
"""


def problems(tmp_path: Path, box: str, route: str = "{voicemail: true}") -> list[str]:
    path = tmp_path / "fairline.yaml"
    path.write_text(BOXED.replace("{voicemail}", box).replace("{route}", route))
    with pytest.raises(ConfigError) as caught:
        yaml_loader.load(path)
    return caught.value.problems


class TestConfig:
    def test_a_box_with_its_own_greeting_file_and_length(self, tmp_path: Path) -> None:
        greeting = tmp_path / "greeting.wav"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(greeting), "synth", "1", "sine", "440"],
                       check=True)
        path = tmp_path / "fairline.yaml"
        path.write_text(BOXED.replace("{voicemail}", f"{{email: [a@acme.example, b@acme.example], greeting_file: "
                                                     f"{greeting}, max_seconds: 90}}")
                        .replace("{route}", "{targets: [\"+31612345601\"], no_answer: {voicemail: true}}"))
        config = yaml_loader.load(path)
        box = config.customers["acme"].voicemail
        assert box is not None and box.email == ("a@acme.example", "b@acme.example") and box.max_seconds == 90
        assert isinstance(box.greeting, voicemail.GreetingFile) and box.greeting.path == str(greeting)
        route = config.numbers["+31201230401"].route
        assert route is not None and route.no_answer == ToVoicemail()

    def test_a_greeting_file_that_does_not_exist_names_file_line_and_key(self, tmp_path: Path) -> None:
        [problem] = problems(tmp_path, "{email: a@acme.example, greeting_file: /nowhere/greeting.wav}")
        assert problem == (f"{tmp_path / 'fairline.yaml'}:4: customers[0].voicemail.greeting_file: "
                           "/nowhere/greeting.wav: no such file; expected the customer's greeting, a WAV file")

    def test_a_greeting_file_asterisk_cannot_play_says_how_to_convert_it(self, tmp_path: Path) -> None:
        mp3ish = tmp_path / "greeting.wav"
        mp3ish.write_bytes(b"ID3 not a wave file at all")
        [problem] = problems(tmp_path, f"{{email: a@acme.example, greeting_file: {mp3ish}}}")
        assert "not a WAV file" in problem and "sox IN -r 8000 -c 1 -b 16 OUT.wav" in problem

    @pytest.mark.parametrize(("box", "key", "says"), [
        ("{greeting: vm-intro}", "customers[0].voicemail.email", "missing"),
        ("{email: office}", "customers[0].voicemail.email", "expected an e-mail address"),
        ("{email: [a@b.example, nope]}", "customers[0].voicemail.email[1]", "expected an e-mail address"),
        ("{email: a@b.example, max_seconds: 0}", "customers[0].voicemail.max_seconds", "from 1 to 600"),
        ("{email: a@b.example, greeting: ../x}", "customers[0].voicemail.greeting", "Asterisk sound name"),
        ("{email: a@b.example, greeting_file: relative.wav}", "customers[0].voicemail.greeting_file", "absolute"),
        ("{email: a@b.example, box: 1}", "customers[0].voicemail.box", "unknown key"),
    ])
    def test_each_bad_box_key_names_its_line_and_key(self, tmp_path: Path, box: str, key: str, says: str) -> None:
        found = [p for p in problems(tmp_path, box) if f": {key}: " in p]
        assert found and says in found[0] and ":4: " in found[0], found

    def test_voicemail_for_a_customer_without_a_box_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "fairline.yaml"
        path.write_text(BOXED.replace("    voicemail: {voicemail}\n", "").replace("{route}", "{voicemail: true}"))
        with pytest.raises(ConfigError) as caught:
            yaml_loader.load(path)
        [problem] = caught.value.problems
        assert ": numbers[0].route.voicemail: customer acme has no voicemail box" in problem


class TestMail:
    def test_the_email_has_the_wav_attached_and_the_calls_facts(self) -> None:
        message = mail.voicemail_message(sender="vm@fairline.example", to=("a@b.example", "c@d.example"),
                                         call_id="c1", did="+31201230401", caller=None, started="2026-11-25T13:00:00",
                                         seconds="8.500", wav=b"RIFF....WAVE")
        assert message["To"] == "a@b.example, c@d.example" and "a withheld number" in message["Subject"]
        [attachment] = list(message.iter_attachments())
        assert attachment.get_content_type() == "audio/wav" and attachment.get_content() == b"RIFF....WAVE"
        assert attachment.get_filename() == "voicemail-c1.wav"

    def test_nobody_listening_is_unavailable(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, never listening: refused
            with pytest.raises(mail.MailUnavailable):
                mail.send(SmtpSettings("127.0.0.1", port, "vm@fairline.example"),
                          mail.voicemail_message(sender="vm@fairline.example", to=("a@b.example",), call_id="c1",
                                                 did="+31201230401", caller=None, started="-", seconds="1", wav=b""),
                          ("a@b.example",))

    @pytest.mark.parametrize(("code", "kind"), [(550, mail.MailRefused), (451, mail.MailUnavailable)])
    def test_a_5xx_is_a_refusal_a_4xx_a_later_try(self, monkeypatch: pytest.MonkeyPatch, code: int,
                                                  kind: type[mail.MailError]) -> None:
        class Server:
            def __init__(self, *_: object, **__: object) -> None:
                pass

            def __enter__(self) -> Server:
                return self

            def __exit__(self, *_: object) -> None:
                pass

            def send_message(self, *_: object, **__: object) -> dict[str, tuple[int, bytes]]:
                raise smtplib.SMTPDataError(code, b"no")

        monkeypatch.setattr(smtplib, "SMTP", Server)
        with pytest.raises(kind, match=str(code)):
            mail.send(SmtpSettings("h", 25, "vm@fairline.example"), mail.voicemail_message(
                sender="vm@fairline.example", to=("a@b.example",), call_id="c1", did="+31201230401", caller=None,
                started="-", seconds="1", wav=b""), ("a@b.example",))

    def test_the_smtp_password_is_never_shown(self) -> None:
        assert "s3cret" not in repr(dataclasses.replace(SmtpSettings("h", 25, "a@b.example"), password="s3cret"))


class TestParser:
    def test_the_recording_of_a_message_ends_as_the_callers_message_ended(self) -> None:
        import json

        from ari_app.ari.event_parser import parse
        from ari_app.core.events import MessageEnded, RecordingEnded

        def finished(name: str) -> str:
            return json.dumps({"type": "RecordingFinished", "timestamp": "2026-11-25T13:00:00.000+0000",
                               "recording": {"name": name, "state": "done"}})

        assert parse(finished("1796656035.0-voicemail")) == MessageEnded("1796656035.0", at(0).replace(
            hour=13, minute=0, second=0), None)
        assert isinstance(parse(finished("1796656035.0")), RecordingEnded)  # a call's recording stays one
