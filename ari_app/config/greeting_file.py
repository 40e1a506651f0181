"""A customer's own voicemail greeting: a WAV file the configuration names, checked when it is loaded.

Checked here, not when a caller reaches the box: a missing or unplayable file is a configuration
error (`fairline config check` names the file, line and key), never a silent greeting.
"""

from __future__ import annotations

import hashlib
import os
import wave

from ari_app.core.voicemail import GreetingFile

MAX_BYTES = 16 << 20  # 16 MiB: over 17 minutes at 8 kHz; a greeting is seconds long
RATE, WIDTH, CHANNELS = 8000, 2, 1  # what Asterisk's wav format plays: 8 kHz, 16-bit signed linear, mono
CONVERT = "sox IN -r 8000 -c 1 -b 16 OUT.wav"


def check_greeting_file(raw: str) -> GreetingFile:
    """The greeting at the absolute path `raw`, hashed; ValueError says what is wrong with it."""
    if not raw or not os.path.isabs(raw):
        raise ValueError(f"{raw!r}: expected the absolute path of a WAV file, like /srv/fairline/greetings/acme.wav")
    try:
        with open(raw, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                raise ValueError(f"{raw}: {size} bytes; expected a greeting of at most {MAX_BYTES >> 20} MiB")
            data = f.read()
            f.seek(0)
            try:
                with wave.open(f) as w:
                    shape = (w.getframerate(), w.getsampwidth(), w.getnchannels())
            except (wave.Error, EOFError) as exc:
                raise ValueError(f"{raw}: not a WAV file ({exc or 'too short'}); expected a WAV file "
                                 f"({CONVERT})") from None
    except FileNotFoundError:
        raise ValueError(f"{raw}: no such file; expected the customer's greeting, a WAV file") from None
    except IsADirectoryError:
        raise ValueError(f"{raw}: a directory; expected a WAV file") from None
    except OSError as exc:
        raise ValueError(f"{raw}: cannot read it ({exc.strerror or exc}); expected a WAV file fairline may read") from None
    if shape != (RATE, WIDTH, CHANNELS):
        rate, width, channels = shape
        raise ValueError(f"{raw}: {rate} Hz, {8 * width}-bit, {channels} channel(s); Asterisk plays WAV files of "
                         f"8000 Hz, 16-bit, mono ({CONVERT})")
    return GreetingFile(raw, hashlib.sha256(data).hexdigest())
