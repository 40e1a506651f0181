"""The CDR spool: rated CDRs the database could not take yet, kept on disk until it can.

One JSON Lines file (`cdrs.jsonl`) in a directory of the caller's choosing, appended
to and fsynced before `append` returns, so a CDR handed to the spool survives a crash
or a power cut. It is read in segments from a byte offset (`read_segment`), so a
replay never holds a long outage's spool in memory, and removed once read to its end
(`clear_if_read`). Lines that can never become a CDR again are moved to `rejected.jsonl`
beside it, with the reason, and CDRs the database refused too often for reasons outside
their values to `dead-letter.jsonl`, for a person to look at: the spool loses nothing.

The methods block on file I/O; the CDR writer calls them through `asyncio.to_thread`.
One process owns a spool directory; within it, each method holds a lock, so a
method called while another runs in a worker thread waits for it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from plumbing.durable import fsync_dir, write_all
from rating.core.cdr import RatedCdr
from rating.errors import RatingError
from plumbing.clock import utc_now

log = structlog.get_logger(__name__)

SPOOL_FILE = "cdrs.jsonl"
REJECTED_FILE = "rejected.jsonl"
DEAD_LETTER_FILE = "dead-letter.jsonl"


class SpoolError(RatingError):
    """The spool directory or one of its files cannot be written or read."""

    def __init__(self, path: Path, action: str, error: OSError) -> None:
        self.path = path
        self.error = error
        super().__init__(f"CDR spool {path}: cannot {action}: {error.strerror or error}")


@dataclasses.dataclass(frozen=True, slots=True)
class Spooled:
    """A CDR in the spool, and how often the database refused it for a reason outside its values.

    Such a refusal (a trigger's error, an index row too large, a deadlock) may pass or may
    not: the CDR goes back to the end of the spool with `tries` counted, and after enough
    tries to the dead-letter file. A line written without a count has none (`tries` 0).
    """

    cdr: RatedCdr
    tries: int = 0

    def to_json(self) -> dict[str, Any]:
        return self.cdr.to_json() if not self.tries else {"tries": self.tries, "cdr": self.cdr.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Spooled:
        if "tries" in d:
            tries = d["tries"]
            if not isinstance(tries, int) or tries < 1:
                raise ValueError(f"tries: expected a whole number of 1 or more, got {tries!r}")
            return cls(RatedCdr.from_json(d["cdr"]), tries)
        return cls(RatedCdr.from_json(d))


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """CDRs read from the spool, oldest first, and the byte offset just past the last line read."""

    entries: list[Spooled]
    end: int


class Spool:
    """A durable, append-only queue of RatedCdr in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._depth = 0  # lines in the spool file not read yet, as this object last saw it: see `depth`
        self._dead_letters = 0  # lines in the dead-letter file, as this object last saw it

    @property
    def path(self) -> Path:
        return self.directory / SPOOL_FILE

    @property
    def rejected_path(self) -> Path:
        return self.directory / REJECTED_FILE

    @property
    def dead_letter_path(self) -> Path:
        return self.directory / DEAD_LETTER_FILE

    @property
    def dead_letters(self) -> int:
        """CDRs in the dead-letter file: counted by `check`, kept up to date by `dead_letter`.

        0 once a person has moved the file away or emptied it (one stat, cheap enough for
        the event loop): that is how they say they have dealt with it.
        """
        try:
            if self.dead_letter_path.stat().st_size == 0:
                self._dead_letters = 0
        except OSError:
            self._dead_letters = 0
        return self._dead_letters

    @property
    def depth(self) -> int:
        """CDRs waiting in the spool; no I/O, so cheap enough to read from the event loop.

        Counted by `check` (what an earlier run left) and kept up to date by `append`,
        `read_segment` and `clear_if_read`. A damaged line counts until it is read and set aside.
        """
        return self._depth

    def check(self) -> None:
        """Create the directory and the spool file if missing: a spool that cannot be written fails at start-up.

        A directory or file that others may read or enter (made by someone else, or by
        an older fairline) is narrowed to its owner: CDRs hold callers' numbers. Also
        counts the CDRs already spooled (see `depth`).
        """
        with self._lock:
            self._append_bytes(self.path, b"")
            for path in (self.directory, self.path, self.rejected_path, self.dead_letter_path):
                _owner_only(path)
            self._depth = _count_lines(self.path)
            self._dead_letters = _count_lines(self.dead_letter_path)

    def has_cdrs(self) -> bool:
        """Whether anything is spooled (a cheap test that reads no line)."""
        try:
            with self._lock:
                return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SpoolError(self.path, "read", exc) from exc

    def append(self, cdrs: Sequence[RatedCdr | Spooled]) -> None:
        """Add CDRs at the end; they are on disk (file and directory fsynced) when this returns."""
        data = b"".join(_line(c.to_json()) for c in cdrs)
        if data:
            with self._lock:
                self._append_bytes(self.path, data)
                self._depth += len(cdrs)

    def size(self) -> int:
        """The spool file's length in bytes (0 when missing): where a replay that starts now ends."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise SpoolError(self.path, "read", exc) from exc

    def read_segment(self, offset: int, *, limit: int, until: int | None = None) -> Segment:
        """Up to `limit` CDRs from byte `offset` (a line's start), not reading past byte `until`.

        A line that is not a CDR is moved to the rejected file, logged, and skipped; so is
        a torn last line (the process died while appending; every append ends its lines).
        An empty segment whose end is `offset`: nothing more to read.
        """
        with self._lock:
            try:
                f = open(self.path, "rb")
            except FileNotFoundError:
                return Segment([], offset)
            except OSError as exc:
                raise SpoolError(self.path, "read", exc) from exc
            entries: list[Spooled] = []
            bad: list[dict[str, Any]] = []
            consumed = 0
            try:
                with f:
                    f.seek(offset)
                    position = offset
                    while len(entries) < limit and (until is None or position < until):
                        line = f.readline()
                        if not line:
                            break
                        start, position = position, position + len(line)
                        consumed += 1
                        if not line.endswith(b"\n"):
                            log.warning("spool.torn_line", path=str(self.path), offset=start, bytes=len(line))
                            bad.append(_rejected_line(line, "torn last line: the process stopped while appending it"))
                        elif line.strip():
                            try:
                                entries.append(Spooled.from_json(json.loads(line)))
                            # Whatever a damaged line makes the parser raise, the line is bad and the reader goes on.
                            except Exception as exc:
                                log.error("spool.bad_line", path=str(self.path), offset=start,
                                          error=f"{type(exc).__name__}: {exc}")
                                bad.append(_rejected_line(line[:-1], f"not a CDR ({type(exc).__name__}: {exc})"))
                        else:
                            consumed -= 1  # a blank line (after a torn one) was never a CDR
            except OSError as exc:
                raise SpoolError(self.path, "read", exc) from exc
            if bad:
                self._append_bytes(self.rejected_path, b"".join(_line(r) for r in bad))
            self._depth = max(0, self._depth - consumed)
            return Segment(entries, position)

    def reject(self, cdr: RatedCdr, reason: str) -> None:
        """Keep a CDR the database refused, with the reason, in the rejected file."""
        record = {"rejected_at": _now(), "reason": reason, "cdr": cdr.to_json()}
        with self._lock:
            self._append_bytes(self.rejected_path, _line(record))

    def dead_letter(self, entry: Spooled, error: str) -> None:
        """Keep a CDR the database refused `entry.tries` times, with the last error, in the dead-letter file."""
        record = {"dead_lettered_at": _now(), "tries": entry.tries, "error": error, "cdr": entry.cdr.to_json()}
        with self._lock:
            try:
                fresh = self.dead_letter_path.stat().st_size == 0
            except OSError:
                fresh = True  # moved away by a person since: a new count
            self._append_bytes(self.dead_letter_path, _line(record))
            self._dead_letters = 1 if fresh else self._dead_letters + 1

    def clear_if_read(self, offset: int) -> bool:
        """Remove the spool file if nothing lies past `offset` (all of it is in the database); whether it did.

        Atomic, durable on return.
        """
        try:
            with self._lock:
                size = self.size()
                if size > offset:
                    return False
                # An empty spool needs no write: a spool directory gone read-only must not keep
                # the writer failing to clear it (and so spooling) once the database is back.
                if size > 0:
                    self.path.unlink()
                    fsync_dir(self.directory)
                self._depth = 0
                return True
        except OSError as exc:
            raise SpoolError(self.path, "clear", exc) from exc

    def _append_bytes(self, path: Path, data: bytes) -> None:
        try:
            _make_dir(self.directory)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)  # CDRs hold callers' numbers
            try:
                size = os.fstat(fd).st_size
                if data and size and os.pread(fd, 1, size - 1) != b"\n":
                    # A crash tore the last line: end it, so it stays one line the reader sets aside.
                    data = b"\n" + data
                try:
                    write_all(fd, data)
                    os.fsync(fd)
                except OSError:
                    try:
                        os.ftruncate(fd, size)  # e.g. disk full: leave no half record behind
                    except OSError:
                        pass
                    raise
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.directory)
        except OSError as exc:
            raise SpoolError(path, "write", exc) from exc


def waiting_call_ids(directory: str | os.PathLike[str]) -> dict[str, str]:
    """The call ids of the CDRs another process's spool holds, each with the file it is in; read only.

    For `fairline reconcile --import`: a call whose CDR waits in the spool, or was set aside
    for a person (rejected, dead-lettered), must not get a poorer CDR from Asterisk's record.
    Unreadable lines are skipped (a line still being appended); a missing file holds nothing.
    Raises OSError when the directory or a file exists but cannot be read.
    """
    found: dict[str, str] = {}
    base = Path(directory)
    if not base.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such spool directory", str(base))
    for name in (SPOOL_FILE, REJECTED_FILE, DEAD_LETTER_FILE):
        try:
            f = open(base / name, "rb")
        except FileNotFoundError:
            continue
        with f:
            for line in f:
                try:
                    record = json.loads(line)
                    cdr = record.get("cdr", record) if isinstance(record, dict) else None
                    call_id = cdr.get("call_id") if isinstance(cdr, dict) else None
                except ValueError:
                    continue
                if isinstance(call_id, str):
                    found.setdefault(call_id, name)
    return found


def _count_lines(path: Path) -> int:
    """Lines in a file, read in chunks: a long outage can leave a large file."""
    count, last = 0, b"\n"
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise SpoolError(path, "read", exc) from exc
    return count + (last != b"\n")  # a torn last line is still a line until it is read and set aside


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _rejected_line(raw: bytes, reason: str) -> dict[str, Any]:
    # surrogateescape keeps bytes that are not UTF-8 exactly; json writes them as \udcXX escapes.
    return {"rejected_at": _now(), "reason": reason, "line": raw.decode("utf-8", "surrogateescape")}


def _now() -> str:
    return utc_now().isoformat()


def _owner_only(path: Path) -> None:
    """Take group and other permissions off `path` if it exists (mode 755 becomes 700, 644 becomes 600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.warning("spool.permissions_narrowed", path=str(path), was=f"{mode:o}", now=f"{mode & 0o700:o}")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SpoolError(path, "make it readable by its owner only", exc) from exc


def _make_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    _make_dir(directory.parent)
    directory.mkdir(mode=0o700)
    fsync_dir(directory.parent)  # the new directory's name is durable too
