"""Recording files: the WAV Asterisk wrote for a call, moved into fairline's recordings directory (issue 6).

Synchronous file I/O, called by the runtime through asyncio.to_thread when a recording has finished.

- **Layout**: `<recordings_dir>/<YYYY>/<MM>/<call_id>.wav`, by when the recording ended (UTC). A
  directory per month stays small however many calls there are, and an operator can back up or
  inspect a month at a glance. Rows keep the absolute path, so purge and verify never depend on it.
- **Only fairline's user can read recordings**: the directories are mode 0700, the files 0600. A
  recordings directory that group or others may enter (made by hand, or before this rule) is
  narrowed to its owner and logged, as the CDR spool does: refusing would stop every recording for a
  mode bit, while narrowing protects the callers' voices and keeps recording.
- **The move is a copy**: Asterisk's recording directory may be on another filesystem. The file is
  read once (hashed while copied) into a hidden temporary file next to its destination, fsynced,
  renamed into place, and only then is the source deleted. A failure (not a WAV, disk full, no
  permission) leaves no destination file and the source where it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
import wave
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import BinaryIO

import structlog

from ari_app.errors import FairlineError
from rating.core.cdr import RecordingFile
from rating.storage.recordings import verify
from plumbing.durable import fsync_dir as _fsync_dir
from plumbing.durable import write_all as _write_all

__all__ = ["RecordingStoreError", "destination", "store", "verify"]

log = structlog.get_logger(__name__)

_CHUNK = 1 << 20
_MILLISECOND = Decimal("0.001")
# Asterisk's channel ids ("1795612621.2", "host-1795612621.2"): safe as a file name, nothing to escape.
_CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class RecordingStoreError(FairlineError):
    """A recording could not be stored; the source file, when there was one, is left where it was."""

    def __init__(self, source: Path, action: str, reason: str, error: OSError | None = None) -> None:
        self.source = source
        self.action = action
        self.reason = reason
        self.error = error  # the OS error behind it, if any: error.errno is ENOSPC when the disk is full
        super().__init__(f"recording {source}: cannot {action}: {reason}")


def destination(recordings_dir: Path, call_id: str, ended_at: datetime) -> Path:
    """Where the recording of call_id, ended at ended_at, is kept (absolute)."""
    if _CALL_ID.fullmatch(call_id) is None:
        raise ValueError(f"call id {call_id!r} cannot name a file: expected letters, digits, '.', '_' or '-'")
    if ended_at.tzinfo is None:
        raise ValueError(f"ended_at must be timezone-aware, got {ended_at!r}")
    at = ended_at.astimezone(UTC)
    return Path(os.path.abspath(recordings_dir)) / f"{at:%Y}" / f"{at:%m}" / f"{call_id}.wav"


def store(source: Path, recordings_dir: Path, call_id: str, ended_at: datetime) -> RecordingFile:
    """Move the WAV Asterisk wrote at source into recordings_dir as call_id's recording; what was stored.

    started_at is ended_at minus the audio's duration. Storing again a recording already stored
    with the same content is harmless; a different file under the same name is refused.
    Raises RecordingStoreError (file missing, not a WAV, directory not writable, disk full).
    """
    try:
        dest = destination(recordings_dir, call_id, ended_at)
    except ValueError as exc:
        raise RecordingStoreError(source, "name the stored file", str(exc)) from exc
    try:
        # No symbolic link: whatever sits in Asterisk's directory, fairline copies no file it points at.
        # Nor a FIFO: O_NONBLOCK lets the open return, and the check below refuses it.
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise RecordingStoreError(source, "read it", "file missing", exc) from exc
    except OSError as exc:
        reason = "a symbolic link, not a file" if exc.errno == errno.ELOOP else _reason(exc)
        raise RecordingStoreError(source, "read it", reason, exc) from exc
    with open(fd, "rb") as src:
        duration = _wav_duration(source, src)
        try:
            for directory in (dest.parent.parent.parent, dest.parent.parent, dest.parent):  # root, year, month
                _private_dir(directory)
        except OSError as exc:
            raise RecordingStoreError(source, f"make the directory {dest.parent}", _reason(exc), exc) from exc
        digest = _copy_into_place(source, src, dest)
    try:
        os.unlink(source)
    except FileNotFoundError:
        pass
    except OSError as exc:
        # Stored safely all the same: report it, and keep the recording.
        log.error("recording.source_not_removed", source=str(source), error=_reason(exc))
    return RecordingFile(str(dest), digest, ended_at - timedelta(milliseconds=int(duration * 1000)), ended_at, duration)


def _wav_duration(source: Path, src: BinaryIO) -> Decimal:
    """Seconds of audio in the WAV file src, to the millisecond; the file is left at its start."""
    try:
        info = os.fstat(src.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RecordingStoreError(source, "read it", "not a regular file")
        size = info.st_size
        with wave.open(src) as w:  # wave.open(file object) leaves the file open
            data_at = src.tell()  # wave stops reading at the start of the audio data
            frames, rate, frame_size = w.getnframes(), w.getframerate(), w.getsampwidth() * w.getnchannels()
    except (wave.Error, EOFError) as exc:
        raise RecordingStoreError(source, "read it", f"not a WAV file ({exc or 'too short'})") from exc
    except OSError as exc:
        raise RecordingStoreError(source, "read it", _reason(exc), exc) from exc
    if rate <= 0 or frame_size <= 0:
        raise RecordingStoreError(source, "read it", f"not a WAV file (frame rate {rate}, frame size {frame_size})")
    if data_at + frames * frame_size > size:
        raise RecordingStoreError(source, "read it", f"truncated WAV file: its header announces "
                                                     f"{frames * frame_size} bytes of audio, it holds {size - data_at}")
    src.seek(0)
    return (Decimal(frames) / Decimal(rate)).quantize(_MILLISECOND, ROUND_HALF_UP)


def _copy_into_place(source: Path, src: BinaryIO, dest: Path) -> str:
    """Copy src to dest through a temporary file in dest's directory; the SHA-256 of what was copied."""
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            while chunk := _read(source, src):
                digest.update(chunk)
                _write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        hexdigest = digest.hexdigest()
        if os.path.lexists(dest):
            # A store that was cut short after the rename, before deleting its source, is being
            # repeated: the same content is done already; anything else is not fairline's to replace.
            if verify(dest, hexdigest) is not None:
                raise RecordingStoreError(source, f"store it as {dest}",
                                          "another file is already stored under that name")
            os.unlink(tmp)
        else:
            os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        return hexdigest
    except RecordingStoreError:
        _remove(tmp)
        raise
    except OSError as exc:
        _remove(tmp)
        raise RecordingStoreError(source, f"store it in {dest.parent}", _reason(exc), exc) from exc


def _read(source: Path, src: BinaryIO) -> bytes:
    try:
        return src.read(_CHUNK)
    except OSError as exc:
        raise RecordingStoreError(source, "read it", _reason(exc), exc) from exc


def _private_dir(directory: Path) -> None:
    """Make directory (mode 0700) if missing; if group or others may use it, take that away and log it."""
    try:
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # mkdir's mode passes through the umask
        _fsync_dir(directory.parent)
        return
    except FileExistsError:
        pass
    info = os.stat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.chmod(directory, mode & 0o700)
        log.warning("recordings.permissions_narrowed", path=str(directory), was=f"{mode:o}", now=f"{mode & 0o700:o}")


def _reason(exc: OSError) -> str:
    """The OS error in words an operator acts on: disk full, permission denied, or the system's own."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full ({exc.strerror})"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied ({exc.strerror})"
    return str(exc.strerror or exc)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # never there, or going with the directory; the error that matters is being raised
