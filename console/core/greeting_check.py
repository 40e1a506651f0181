"""What a customer may upload as a voicemail greeting, checked by content, never by the file's name.

An upload is sniffed by its first bytes (WAV, FLAC, Ogg, AIFF: what sox reads here), limited in size,
converted by sox to what Asterisk plays (8 kHz, 16-bit, mono WAV; console/greeting_upload.py), and the
result limited in length. Each refusal is one `GreetingRefused` whose message the form shows next to
the file field.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

AudioType = Literal["wav", "flac", "ogg", "aiff"]  # sox's names for them (`sox -t TYPE`)

MAX_UPLOAD_BYTES = 12 << 20  # a minute of CD-quality WAV is 10.6 MB
MAX_SECONDS = 60  # a greeting is seconds long; callers wait through it
MIN_SECONDS = Decimal("0.5")
RATE, WIDTH, CHANNELS = 8000, 2, 1  # what Asterisk's wav format plays (ari_app/config/greeting_file.py)
ACCEPTED = "a WAV, FLAC, Ogg Vorbis or AIFF file"


class GreetingRefused(ValueError):
    """An upload that cannot be a greeting; the message says why and what would do."""


@dataclass(frozen=True, slots=True)
class Converted:
    """A greeting as Asterisk will play it."""

    audio: bytes  # a WAV file of RATE Hz, WIDTH bytes, CHANNELS channel
    seconds: Decimal


def sniff(head: bytes) -> AudioType:
    """The audio type of a file that starts with `head` (its first 12 bytes or more); GreetingRefused if none."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        raise GreetingRefused(f"an MP3 file: this server cannot read MP3; upload {ACCEPTED} (any audio program "
                              "exports one)")
    raise GreetingRefused(f"not an audio file this console reads (whatever its name says); upload {ACCEPTED}")


def check_size(size: int) -> None:
    if size == 0:
        raise GreetingRefused(f"the file is empty; upload {ACCEPTED}")
    if size > MAX_UPLOAD_BYTES:
        raise GreetingRefused(f"the file is {size / (1 << 20):.1f} MiB; at most {MAX_UPLOAD_BYTES >> 20} MiB "
                              f"(a greeting of up to {MAX_SECONDS} seconds)")


def check_converted(audio: bytes) -> Converted:
    """The converted greeting, if it is the shape Asterisk plays and its length is within the limits."""
    try:
        with wave.open(io.BytesIO(audio)) as w:
            shape = (w.getframerate(), w.getsampwidth(), w.getnchannels())
            frames = w.getnframes()
    except (wave.Error, EOFError) as exc:
        raise GreetingRefused(f"the converted file is not a WAV file ({exc or 'too short'})") from None
    if shape != (RATE, WIDTH, CHANNELS):
        raise GreetingRefused(f"the converted file is {shape[0]} Hz, {8 * shape[1]}-bit, {shape[2]} channel(s), "
                              f"not {RATE} Hz, {8 * WIDTH}-bit, mono")
    seconds = (Decimal(frames) / RATE).quantize(Decimal("0.001"), ROUND_HALF_UP)
    if seconds < MIN_SECONDS:
        raise GreetingRefused(f"{seconds} seconds of sound: too short for a greeting (at least {MIN_SECONDS} s)")
    if seconds > MAX_SECONDS:
        raise GreetingRefused(f"longer than {MAX_SECONDS} seconds; record a shorter greeting (callers wait "
                              "through it before they may speak)")
    return Converted(audio, seconds)
