"""The CDR spool: rated CDRs the database could not take yet, kept on disk until it can.

One JSON Lines file (`cdrs.jsonl`) in a directory of the caller's choosing, appended
to and fsynced before `append` returns, so a CDR handed to the spool survives a crash
or a power cut. Lines that can never become a CDR again are moved to `rejected.jsonl`
beside it, with the reason, for a person to look at: the spool loses nothing.

The methods block on file I/O; the CDR writer calls them through `asyncio.to_thread`.
One process owns a spool directory; within it, each method holds a lock, so a
method called while another runs in a worker thread waits for it.
"""

from __future__ import annotations

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


class SpoolError(RatingError):
    """The spool directory or one of its files cannot be written or read."""

    def __init__(self, path: Path, action: str, error: OSError) -> None:
        self.path = path
        self.error = error
        super().__init__(f"CDR spool {path}: cannot {action}: {error.strerror or error}")


class Spool:
    """A durable, append-only queue of RatedCdr in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._depth = 0  # lines in the spool file, as this object last saw it: see `depth`

    @property
    def path(self) -> Path:
        return self.directory / SPOOL_FILE

    @property
    def rejected_path(self) -> Path:
        return self.directory / REJECTED_FILE

    @property
    def depth(self) -> int:
        """CDRs waiting in the spool; no I/O, so cheap enough to read from the event loop.

        Counted by `check` (what an earlier run left) and kept up to date by `append`,
        `read` and `clear`. A damaged line counts until the next `read` sets it aside.
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
            for path in (self.directory, self.path, self.rejected_path):
                _owner_only(path)
            self._depth = self._count_lines()

    def has_cdrs(self) -> bool:
        """Whether anything is spooled (a cheap test that reads no line)."""
        try:
            with self._lock:
                return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SpoolError(self.path, "read", exc) from exc

    def append(self, cdrs: Sequence[RatedCdr]) -> None:
        """Add CDRs at the end; they are on disk (file and directory fsynced) when this returns."""
        data = b"".join(_line(c.to_json()) for c in cdrs)
        if data:
            with self._lock:
                self._append_bytes(self.path, data)
                self._depth += len(cdrs)

    def read(self) -> list[RatedCdr]:
        """The spooled CDRs, oldest first.

        A line that is not a CDR is moved to the rejected file and logged; a torn last
        line (the process died while appending) is moved there too, with a warning.
        """
        with self._lock:
            cdrs = self._read()
            self._depth = len(cdrs)
            return cdrs

    def _read(self) -> list[RatedCdr]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SpoolError(self.path, "read", exc) from exc
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with a newline, as every complete append does
        cdrs: list[RatedCdr] = []
        good: list[bytes] = []
        bad: list[dict[str, Any]] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                cdrs.append(RatedCdr.from_json(json.loads(line)))
            # Whatever a damaged line makes the parser raise, the line is bad and the reader goes on.
            except Exception as exc:
                log.error("spool.bad_line", path=str(self.path), line=number, error=f"{type(exc).__name__}: {exc}")
                bad.append(_rejected_line(line, f"not a CDR ({type(exc).__name__}: {exc})"))
            else:
                good.append(line)
        if torn:
            log.warning("spool.torn_line", path=str(self.path), line=len(lines) + 1, bytes=len(torn))
            bad.append(_rejected_line(torn, "torn last line: the process stopped while appending it"))
        if bad:
            self._set_aside(bad, good)
        return cdrs

    def reject(self, cdr: RatedCdr, reason: str) -> None:
        """Keep a CDR the database refused, with the reason, in the rejected file."""
        record = {"rejected_at": _now(), "reason": reason, "cdr": cdr.to_json()}
        with self._lock:
            self._append_bytes(self.rejected_path, _line(record))

    def clear(self) -> None:
        """Forget everything spooled, once it is safely in the database; atomic, durable on return."""
        try:
            with self._lock:
                # An empty spool needs no write: a spool directory gone read-only must not keep
                # the writer failing to clear it (and so spooling) once the database is back.
                if self.path.exists() and self.path.stat().st_size > 0:
                    self.path.unlink()
                    fsync_dir(self.directory)
                self._depth = 0
        except OSError as exc:
            raise SpoolError(self.path, "clear", exc) from exc

    def _set_aside(self, bad: list[dict[str, Any]], good: list[bytes]) -> None:
        # Rejected first: a crash in between leaves the bad lines in both files, never in neither.
        self._append_bytes(self.rejected_path, b"".join(_line(r) for r in bad))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(fd, b"".join(g + b"\n" for g in good))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(self.directory)
        except OSError as exc:
            raise SpoolError(self.path, "rewrite", exc) from exc

    def _count_lines(self) -> int:
        """Lines in the spool file, read in chunks: a long outage can leave a large file."""
        count, last = 0, b"\n"
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    count += chunk.count(b"\n")
                    last = chunk[-1:]
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise SpoolError(self.path, "read", exc) from exc
        return count + (last != b"\n")  # a torn last line is still a line until read() sets it aside

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
