"""Greeting uploads: sniffed by content, limited in size and length; the version's text changed in the
customer's box only; the stored greetings a version names, found and written by hash."""

from __future__ import annotations

import hashlib
import io
import os
import wave
from decimal import Decimal
from pathlib import Path

import pytest

from console.core.greeting_check import (MAX_SECONDS, MAX_UPLOAD_BYTES, GreetingRefused, check_converted, check_size,
                                         sniff)
from console.greetings import NoVoicemailBox, with_greeting
from rating.storage import greetings


def wav(seconds: float, *, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(seconds * rate) * channels * (width // 2 or 1))
    return out.getvalue()


class TestSniff:
    @pytest.mark.parametrize(("head", "kind"), [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"), (b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00", "flac"),
        (b"OggS\x00\x02\x00\x00\x00\x00\x00\x00", "ogg"), (b"FORM\x00\x00\x00\x10AIFFCOMM", "aiff"),
        (b"FORM\x00\x00\x00\x10AIFCFVER", "aiff"),
    ])
    def test_audio_is_known_by_its_first_bytes(self, head: bytes, kind: str) -> None:
        assert sniff(head) == kind

    @pytest.mark.parametrize("head", [b"%PDF-1.7\n%\xe2\xe3", b"<html><body>", b"MZ\x90\x00\x03\x00\x00\x00",
                                      b"RIFF\x24\x00\x00\x00AVI LIST", b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\r"])
    def test_anything_else_is_refused_whatever_its_name(self, head: bytes) -> None:
        with pytest.raises(GreetingRefused, match="not an audio file this console reads"):
            sniff(head)

    @pytest.mark.parametrize("head", [b"ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00", b"\xff\xfb\x90\x64\x00\x00"])
    def test_mp3_is_refused_saying_what_would_do(self, head: bytes) -> None:
        with pytest.raises(GreetingRefused, match="MP3 .* upload a WAV, FLAC, Ogg Vorbis or AIFF file"):
            sniff(head)


class TestSize:
    def test_up_to_the_limit_is_accepted(self) -> None:
        check_size(1)
        check_size(MAX_UPLOAD_BYTES)

    def test_empty_and_too_big_are_refused(self) -> None:
        with pytest.raises(GreetingRefused, match="empty"):
            check_size(0)
        with pytest.raises(GreetingRefused, match="the file is 12.0 MiB; at most 12 MiB"):
            check_size(MAX_UPLOAD_BYTES + 1)


class TestConverted:
    def test_a_greeting_of_a_few_seconds_is_kept_with_its_length(self) -> None:
        audio = wav(3.25)
        done = check_converted(audio)
        assert (done.audio, done.seconds) == (audio, Decimal("3.250"))

    def test_too_long_and_too_short_are_refused(self) -> None:
        check_converted(wav(MAX_SECONDS))
        with pytest.raises(GreetingRefused, match=f"longer than {MAX_SECONDS} seconds"):
            check_converted(wav(MAX_SECONDS + 0.5))
        with pytest.raises(GreetingRefused, match="too short"):
            check_converted(wav(0.2))

    def test_a_shape_asterisk_does_not_play_is_refused(self) -> None:
        with pytest.raises(GreetingRefused, match="16000 Hz, 16-bit, 2 channel"):
            check_converted(wav(2, rate=16000, channels=2))
        with pytest.raises(GreetingRefused, match="not a WAV file"):
            check_converted(b"RIFF....WAVEjunk")


CONFIG = """# the store's newest version
customers:
  - id: acme
    name: Acme BV
    voicemail:
      email: office@acme.example   # the office
      max_seconds: 60
  - id: bolt
    name: Bolt
    voicemail: {email: bolt@bolt.example, greeting: vm-intro}
  - id: cora
    name: Cora
    voicemail:
      greeting_file: /srv/old/cora.wav
      email: [a@cora.example]
  - id: dan
    name: Dan
numbers: []
"""
NEW = "/var/lib/fairline/greetings/" + "a" * 64 + ".wav"


class TestWithGreeting:
    def _box(self, text: str, cid: str) -> object:
        import yaml
        return next(c for c in yaml.safe_load(text)["customers"] if c["id"] == cid).get("voicemail")

    @pytest.mark.parametrize("cid", ["acme", "bolt", "cora"])
    def test_the_customer_s_box_plays_the_file_and_nothing_else_changes(self, cid: str) -> None:
        import yaml
        text = with_greeting(CONFIG, cid, NEW)
        box = self._box(text, cid)
        assert isinstance(box, dict) and box["greeting_file"] == NEW and "greeting" not in box
        before, after = yaml.safe_load(CONFIG), yaml.safe_load(text)
        for old, new in zip(before["customers"], after["customers"]):
            if old["id"] != cid:
                assert old == new
            else:
                assert {k: v for k, v in new["voicemail"].items() if k != "greeting_file"} == \
                    {k: v for k, v in old["voicemail"].items() if k not in ("greeting", "greeting_file")}
        assert "# the store's newest version" in text and "# the office" in text

    def test_a_customer_without_a_box_cannot_have_a_greeting(self) -> None:
        for cid in ("dan", "nobody"):
            with pytest.raises(NoVoicemailBox):
                with_greeting(CONFIG, cid, NEW)


class TestStoredGreetingFiles:
    def test_only_files_named_by_hash_directly_in_the_directory_are_found(self, tmp_path: Path) -> None:
        sha, other = "b" * 64, "c" * 64
        text = (f"greeting_file: {tmp_path}/{sha}.wav\n  x: {{greeting_file: \"{tmp_path}/{other}.wav\"}}\n"
                f"greeting_file: {tmp_path}/sub/{'d' * 64}.wav\ngreeting_file: /elsewhere/{'e' * 64}.wav\n"
                f"greeting_file: {tmp_path}/../{'f' * 64}.wav\ngreeting_file: {tmp_path}/acme.wav\n")
        assert greetings.named(text, tmp_path) == {sha: tmp_path / f"{sha}.wav", other: tmp_path / f"{other}.wav"}

    def test_a_greeting_is_written_whole_readable_and_replaced_when_it_differs(self, tmp_path: Path) -> None:
        audio = wav(1)
        sha = hashlib.sha256(audio).hexdigest()
        path = greetings.write(tmp_path / "g", sha, audio)
        assert path == tmp_path / "g" / f"{sha}.wav" and path.read_bytes() == audio
        assert oct(os.stat(path).st_mode & 0o777) == "0o644"
        path.write_bytes(b"tampered")
        greetings.write(tmp_path / "g", sha, audio)
        assert path.read_bytes() == audio and os.listdir(tmp_path / "g") == [path.name]
        with pytest.raises(ValueError, match="does not have this hash"):
            greetings.write(tmp_path / "g", "0" * 64, audio)


class TestConvertWithoutSox:
    async def test_the_upload_is_refused_saying_the_fault_is_ours(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from console.greetings import convert
        monkeypatch.setenv("PATH", "/nonexistent")
        with pytest.raises(GreetingRefused, match="our side: sox is missing"):
            await convert(wav(1), "wav")
