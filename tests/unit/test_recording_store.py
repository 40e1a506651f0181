"""The recording store: Asterisk's WAV moved into a private recordings directory, hashed, timed; never half-written."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import wave
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ari_app import recording_store
from ari_app.recording_store import RecordingStoreError, destination, store, verify
from rating.core.cdr import RecordingFile

ENDED = datetime(2026, 11, 30, 23, 30, 15, tzinfo=UTC)  # 1 December in Amsterdam: the UTC month counts


def asterisk_wav(path: Path, seconds: float, *, rate: int = 8000) -> bytes:
    """A WAV as Asterisk writes for format "wav": 8 kHz, 16-bit, mono PCM; a tone, so not silence."""
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join((1000 if i % 20 < 10 else -1000).to_bytes(2, "little", signed=True)
                               for i in range(frames)))
    return path.read_bytes()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    spool = tmp_path / "asterisk" / "recording"
    spool.mkdir(parents=True)
    return spool / "c1-rec.wav"


class TestStore:
    def test_the_file_is_moved_into_its_month_private_and_described(self, source: Path, tmp_path: Path) -> None:
        content = asterisk_wav(source, 12.3456)
        recordings = tmp_path / "recordings"
        stored = store(source, recordings, "1795612621.2", ENDED)
        dest = recordings / "2026" / "11" / "1795612621.2.wav"
        assert stored == RecordingFile(str(dest), hashlib.sha256(content).hexdigest(),
                                       ENDED - timedelta(seconds=12.346), ENDED, Decimal("12.346"))
        assert dest.read_bytes() == content and not source.exists()
        assert mode(dest) == 0o600
        assert [mode(d) for d in (recordings, recordings / "2026", recordings / "2026" / "11")] == [0o700] * 3
        assert list(dest.parent.iterdir()) == [dest]  # no temporary file left over

    def test_the_stored_path_is_absolute_when_the_directory_is_given_relative(
            self, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        asterisk_wav(source, 1)
        monkeypatch.chdir(tmp_path)
        stored = store(source, Path("recordings"), "c1", ENDED)
        assert stored.path == str(tmp_path / "recordings" / "2026" / "11" / "c1.wav")

    def test_the_duration_follows_the_frame_rate(self, source: Path, tmp_path: Path) -> None:
        """Asterisk's wav16 format is 16 kHz: the same bytes are half the seconds."""
        asterisk_wav(source, 2.5, rate=16000)
        assert store(source, tmp_path / "r", "c1", ENDED).duration_seconds == Decimal("2.500")

    def test_an_aware_end_in_another_zone_is_filed_by_its_utc_month(self, source: Path, tmp_path: Path) -> None:
        asterisk_wav(source, 1)
        amsterdam = ENDED.astimezone(timezone(timedelta(hours=1)))  # 1 December 00:30 local
        assert store(source, tmp_path / "r", "c1", amsterdam).path.endswith("/2026/11/c1.wav")

    def test_a_recordings_directory_others_may_read_is_narrowed_to_its_owner(self, source: Path,
                                                                             tmp_path: Path) -> None:
        asterisk_wav(source, 1)
        recordings = tmp_path / "recordings"
        recordings.mkdir(mode=0o755)
        os.chmod(recordings, 0o755)
        with capture_logs() as logs:
            store(source, recordings, "c1", ENDED)
        assert mode(recordings) == 0o700
        assert {"event": "recordings.permissions_narrowed", "path": str(recordings), "was": "755", "now": "700",
                "log_level": "warning"} in logs

    def test_storing_the_same_recording_again_is_harmless(self, source: Path, tmp_path: Path) -> None:
        """A store cut short after the rename, before the source was deleted, is simply repeated."""
        content = asterisk_wav(source, 1)
        first = store(source, tmp_path / "r", "c1", ENDED)
        source.write_bytes(content)
        assert store(source, tmp_path / "r", "c1", ENDED) == first and not source.exists()

    def test_another_file_under_a_stored_name_is_refused_and_both_are_kept(self, source: Path,
                                                                           tmp_path: Path) -> None:
        asterisk_wav(source, 1)
        first = store(source, tmp_path / "r", "c1", ENDED)
        other = asterisk_wav(source, 2)
        with pytest.raises(RecordingStoreError, match="another file is already stored under that name"):
            store(source, tmp_path / "r", "c1", ENDED)
        assert verify(first.path, first.sha256) is None
        assert source.read_bytes() == other
        assert sorted(p.name for p in Path(first.path).parent.iterdir()) == ["c1.wav"]


class TestStoreRefuses:
    def test_a_missing_file(self, source: Path, tmp_path: Path) -> None:
        with pytest.raises(RecordingStoreError, match=f"recording {source}: cannot read it: file missing"):
            store(source, tmp_path / "r", "c1", ENDED)
        assert not (tmp_path / "r").exists()

    @pytest.mark.parametrize("content", [b"", b"RIFF", b"not audio at all, just text\n" * 10])
    def test_a_file_that_is_not_a_wav(self, source: Path, tmp_path: Path, content: bytes) -> None:
        source.write_bytes(content)
        with pytest.raises(RecordingStoreError, match="cannot read it: not a WAV file"):
            store(source, tmp_path / "r", "c1", ENDED)
        assert source.read_bytes() == content and not (tmp_path / "r").exists()

    def test_a_wav_whose_audio_was_cut_off(self, source: Path, tmp_path: Path) -> None:
        content = asterisk_wav(source, 1)
        source.write_bytes(content[:-100])
        with pytest.raises(RecordingStoreError, match="truncated WAV file: its header announces 16000 bytes"):
            store(source, tmp_path / "r", "c1", ENDED)

    def test_a_symbolic_link(self, source: Path, tmp_path: Path) -> None:
        """Whatever a link in Asterisk's directory points at, it is not copied into the recordings."""
        secret = tmp_path / "secret.wav"
        asterisk_wav(secret, 1)
        source.symlink_to(secret)
        with pytest.raises(RecordingStoreError, match="a symbolic link, not a file"):
            store(source, tmp_path / "r", "c1", ENDED)

    def test_a_fifo(self, source: Path, tmp_path: Path) -> None:
        os.mkfifo(source)
        with pytest.raises(RecordingStoreError, match="not a regular file"):
            store(source, tmp_path / "r", "c1", ENDED)

    @pytest.mark.parametrize("call_id", ["../escape", "a/b", ".hidden", "", "x" * 201])
    def test_a_call_id_that_cannot_name_a_file(self, source: Path, tmp_path: Path, call_id: str) -> None:
        asterisk_wav(source, 1)
        with pytest.raises(RecordingStoreError, match="cannot name the stored file"):
            store(source, tmp_path / "r", call_id, ENDED)
        assert source.exists() and not (tmp_path / "r").exists()

    def test_a_directory_that_cannot_be_made(self, source: Path, tmp_path: Path) -> None:
        """Tests run as root, which may write anywhere: a regular file where a directory should be stops it."""
        content = asterisk_wav(source, 1)
        (tmp_path / "r").write_text("a file, not a directory")
        with pytest.raises(RecordingStoreError, match=r"cannot make the directory .*/r/2026/11: Not a directory"):
            store(source, tmp_path / "r", "c1", ENDED)
        assert source.read_bytes() == content

    def test_a_full_disk_leaves_no_half_written_file(self, source: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
        content = asterisk_wav(source, 1)
        written: list[int] = []

        def full_after_a_while(fd: int, data: bytes) -> None:
            if written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(os.write(fd, bytes(data[:1000])))

        monkeypatch.setattr(recording_store, "_CHUNK", 4096)
        monkeypatch.setattr(recording_store, "_write_all", full_after_a_while)
        with pytest.raises(RecordingStoreError, match="cannot store it in .*: disk full") as raised:
            store(source, tmp_path / "r", "c1", ENDED)
        assert raised.value.error is not None and raised.value.error.errno == errno.ENOSPC
        month = tmp_path / "r" / "2026" / "11"
        assert list(month.iterdir()) == [] and source.read_bytes() == content

    def test_a_directory_fairline_may_not_write(self, source: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
        """Root ignores mode bits, so the refusal is simulated where the file is created."""
        asterisk_wav(source, 1)
        real_open = os.open

        def refuse_new_files(path: str | os.PathLike[str], flags: int, *args: int, **kw: object) -> int:
            if flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(recording_store.os, "open", refuse_new_files)
        with pytest.raises(RecordingStoreError, match="cannot store it in .*: permission denied"):
            store(source, tmp_path / "r", "c1", ENDED)
        assert source.exists()

    def test_a_naive_end(self, source: Path, tmp_path: Path) -> None:
        asterisk_wav(source, 1)
        with pytest.raises(RecordingStoreError, match="ended_at must be timezone-aware"):
            store(source, tmp_path / "r", "c1", datetime(2026, 11, 30, 23, 30))


class TestSourceLeftBehind:
    def test_a_source_that_cannot_be_deleted_is_logged_and_the_recording_kept(
            self, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        asterisk_wav(source, 1)
        real_unlink = os.unlink

        def refuse_source(path: str | os.PathLike[str], *args: object, **kw: object) -> None:
            if Path(path) == source:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            real_unlink(path)

        monkeypatch.setattr(recording_store.os, "unlink", refuse_source)
        with capture_logs() as logs:
            stored = store(source, tmp_path / "r", "c1", ENDED)
        assert verify(stored.path, stored.sha256) is None
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["recording.source_not_removed"]


class TestVerify:
    def test_an_unchanged_file_is_fine(self, source: Path, tmp_path: Path) -> None:
        asterisk_wav(source, 1)
        stored = store(source, tmp_path / "r", "c1", ENDED)
        assert verify(stored.path, stored.sha256) is None
        assert verify(stored.path, stored.sha256.upper()) is None

    def test_a_changed_file_says_both_hashes(self, source: Path, tmp_path: Path) -> None:
        asterisk_wav(source, 1)
        stored = store(source, tmp_path / "r", "c1", ENDED)
        with open(stored.path, "r+b") as f:
            f.seek(100)
            f.write(b"\x00")
        problem = verify(stored.path, stored.sha256)
        assert problem is not None and problem.startswith("changed since it was stored")
        assert stored.sha256 in problem and hashlib.sha256(Path(stored.path).read_bytes()).hexdigest() in problem

    def test_a_missing_file(self, tmp_path: Path) -> None:
        assert verify(tmp_path / "gone.wav", "ab" * 32) == "file missing"

    def test_a_directory_or_link_in_its_place(self, tmp_path: Path) -> None:
        (tmp_path / "dir.wav").mkdir()
        (tmp_path / "link.wav").symlink_to(tmp_path / "dir.wav")
        assert verify(tmp_path / "dir.wav", "ab" * 32) == "not a regular file"
        assert verify(tmp_path / "link.wav", "ab" * 32) == "not a regular file (a symbolic link)"


class TestDestination:
    def test_a_month_per_directory_by_utc_end(self, tmp_path: Path) -> None:
        assert destination(tmp_path, "host-1795612621.2", ENDED) == tmp_path / "2026" / "11" / "host-1795612621.2.wav"
