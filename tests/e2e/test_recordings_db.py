"""Recordings against the e2e stack's real PostgreSQL: stored with their CDRs, listed, verified and purged.

Recording files are real WAVs in tmp_path, moved into a recordings directory by
ari_app.recording_store as the runtime does; CDRs go in through insert_cdrs as the
CDR writer stores them; the commands run as `fairline` runs them, argv through the
parser rating.commands.recordings_cli.register builds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ari_app.recording_store import store
from rating.commands import recordings_cli
from rating.core.cdr import CallRecord, Disposition, RatedCdr, rate_record
from rating.storage.database import insert_cdrs
from rating.core.tariff import DEFAULT_RATES, NumberType
from tests.e2e.conftest import LiveStack, StackDb

pytestmark = pytest.mark.e2e

ACME = "+31201234567"
NOW = datetime.now(UTC).replace(microsecond=0)
NL_EVIDENCE = "one_party: number NL, caller NL, target NL (Wetboek van Strafrecht art. 139a)"


@dataclass
class Db(StackDb):
    """The stack's database, a recordings directory, and a way to run `fairline recordings`."""

    tmp_path: Path

    @property
    def recordings_dir(self) -> Path:
        return self.tmp_path / "recordings"

    def refused(self, cdrs: list[RatedCdr]) -> str:
        """The name of the check constraint that makes insert_cdrs refuse cdrs."""
        async def insert() -> str:
            conn = await asyncpg.connect(self.url)
            try:
                with pytest.raises(asyncpg.CheckViolationError) as refusal:
                    await insert_cdrs(conn, cdrs)
                return str(refusal.value.constraint_name)
            finally:
                await conn.close()

        return asyncio.run(insert())

    def fairline(self, *argv: str, url: str | None = None) -> tuple[int, str, str]:
        """Run `fairline ARGV --database-url URL`; its exit status, stdout and stderr."""
        parser = argparse.ArgumentParser(prog="fairline")
        recordings_cli.register(parser.add_subparsers(dest="command", required=True),
                                default_recordings_dir=self.recordings_dir)
        args = parser.parse_args([*argv, "--database-url", url or self.url])
        self.capsys.readouterr()
        status = args.fn(args)
        out, err = self.capsys.readouterr()
        return status, out, err

    def recorded(self, call_id: str, ended: datetime, *, seconds: float = 3, mode: str = "one_party",
                 evidence: str = NL_EVIDENCE) -> RatedCdr:
        """A call answered 60 s before ended, recorded for its last `seconds`, the WAV stored as the runtime does."""
        source = self.tmp_path / "asterisk" / f"{call_id}-rec.wav"
        source.parent.mkdir(exist_ok=True)
        with wave.open(str(source), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(call_id.encode().ljust(2, b"\0")[:2] * int(seconds * 8000))
        file = store(source, self.recordings_dir, call_id, ended)
        return rate_record(self._call(call_id, ended, mode, evidence, file), "acme", NumberType.LOCAL,
                           DEFAULT_RATES)

    def unrecorded(self, call_id: str, ended: datetime, *, mode: str | None = None,
                   evidence: str | None = None) -> RatedCdr:
        return rate_record(self._call(call_id, ended, mode, evidence, None), "acme", NumberType.LOCAL, DEFAULT_RATES)

    @staticmethod
    def _call(call_id: str, ended: datetime, mode: str | None, evidence: str | None, file: Any) -> CallRecord:
        return CallRecord(call_id, ACME, "+31612345678", ended - timedelta(seconds=70), ended - timedelta(seconds=60),
                          ended, Disposition.ANSWERED, 16, recording_mode=mode, recording_evidence=evidence,
                          recording=file)


@pytest.fixture
def db(live_stack: LiveStack, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Iterator[Db]:
    """No CDRs, no recordings."""
    d = Db(live_stack, capsys, tmp_path)
    d.fairline("recordings", "list")  # applies the migrations, whatever ran before
    d.sql("TRUNCATE cdrs CASCADE")  # and recordings, which refer to them
    yield d


# ------------------------------------------------------------------ storage


def test_a_recorded_call_is_stored_with_its_recording_row(db: Db) -> None:
    cdr = db.recorded("r1", NOW - timedelta(days=1), seconds=2.5)
    assert db.store([cdr]) == {"r1"}
    [row] = db.rows("SELECT call_id, recorded, recording_mode, recording_evidence FROM cdrs")
    assert row == {"call_id": "r1", "recorded": True, "recording_mode": "one_party",
                   "recording_evidence": NL_EVIDENCE}
    [rec] = db.rows("SELECT call_id, file, duration_seconds, sha256, mode, evidence, purged_at, "
                    "ended_at - started_at AS length, stored_at > now() - interval '1 minute' AS just_stored "
                    "FROM recordings")
    f = cdr.call.recording
    assert f is not None
    assert rec == {"call_id": "r1", "file": f.path, "duration_seconds": 2.5, "sha256": f.sha256, "mode": "one_party",
                   "evidence": NL_EVIDENCE, "purged_at": None, "length": "00:00:02.5", "just_stored": True}
    assert Path(f.path).is_relative_to(db.recordings_dir)


def test_calls_not_recorded_have_no_recording_row_and_say_why(db: Db) -> None:
    ended = NOW - timedelta(hours=1)
    batch = [db.unrecorded("off", ended),
             db.unrecorded("refused", ended, mode="consent", evidence="consent: caller DE; caller pressed 2 at ..."),
             db.unrecorded("forbidden", ended, mode="forbidden", evidence="forbidden: operator override for XX")]
    assert db.store(batch) == {"off", "refused", "forbidden"}
    assert db.rows("SELECT call_id, recorded, recording_mode FROM cdrs ORDER BY call_id") == [
        {"call_id": "forbidden", "recorded": False, "recording_mode": "forbidden"},
        {"call_id": "off", "recorded": False, "recording_mode": None},
        {"call_id": "refused", "recorded": False, "recording_mode": "consent"},
    ]
    assert db.sql("SELECT count(*) FROM recordings") == "0"


def test_a_replayed_batch_doubles_nothing(db: Db) -> None:
    """The CDR writer replays its spool after an outage: stored rows, recording rows included, stay as they are."""
    ended = NOW - timedelta(days=2)
    batch = [db.recorded("r1", ended), db.unrecorded("u1", ended)]
    assert db.store(batch) == {"r1", "u1"}
    before = db.rows("SELECT * FROM recordings")
    r1 = batch[0]
    assert r1.call.recording is not None
    # r1 again, as if its recording had been described otherwise: what is stored stays.
    other = dataclasses.replace(r1.call.recording, sha256="cd" * 32, duration_seconds=Decimal("9"))
    r1_again = dataclasses.replace(r1, call=dataclasses.replace(r1.call, recording=other, recording_mode="notify"))
    again = [r1_again, db.unrecorded("u1", ended), db.recorded("r2", ended)]
    assert db.store(again) == {"r2"}
    assert db.rows("SELECT * FROM recordings WHERE call_id = 'r1'") == before
    assert db.sql("SELECT recording_mode FROM cdrs WHERE call_id = 'r1'") == "one_party"
    assert db.sql("SELECT count(*) FROM cdrs") == "3" and db.sql("SELECT count(*) FROM recordings") == "2"


def test_a_recording_the_law_did_not_allow_is_refused_with_its_cdr(db: Db) -> None:
    """One statement: when the recording cannot be stored, the CDR is not either (the writer sets it aside)."""
    assert db.refused([db.recorded("bad", NOW, mode="forbidden")]) == "cdrs_recorded_under_a_mode_that_allows_it"
    assert db.sql("SELECT count(*) FROM cdrs") == "0" and db.sql("SELECT count(*) FROM recordings") == "0"


def test_a_mode_the_law_does_not_know_is_refused(db: Db) -> None:
    assert db.refused([db.unrecorded("bad", NOW, mode="two_party")]) == "cdrs_recording_mode_known"


# --------------------------------------------------------------------- list


def test_list_shows_every_recording_oldest_first(db: Db) -> None:
    db.store([db.recorded("r-new", NOW - timedelta(days=1)), db.recorded("r-old", NOW - timedelta(days=40)),
              db.unrecorded("u1", NOW)])
    status, out, err = db.fairline("recordings", "list")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["call", "started", "(UTC)", "seconds", "mode", "customer", "number", "file",
                                "evidence"]
    assert [line.split()[0] for line in lines[1:3]] == ["r-old", "r-new"]
    assert "3.000  one_party  acme      +31201234567" in lines[1] and NL_EVIDENCE in lines[1]
    assert str(db.recordings_dir) in lines[1]
    assert lines[3] == "2 recordings: 2 kept, 0 purged"


def test_list_since_a_day_and_as_json(db: Db) -> None:
    db.store([db.recorded("r-new", NOW - timedelta(days=1)), db.recorded("r-old", NOW - timedelta(days=40))])
    since = (NOW - timedelta(days=10)).date().isoformat()
    status, out, _ = db.fairline("recordings", "list", "--since", since, "--json")
    listed = json.loads(out)
    assert status == 0 and listed["since"] == since
    [rec] = listed["recordings"]
    assert {k: rec[k] for k in ("call_id", "customer_id", "did", "duration_seconds", "mode", "purged_at")} == {
        "call_id": "r-new", "customer_id": "acme", "did": ACME, "duration_seconds": "3.000", "mode": "one_party",
        "purged_at": None}
    assert rec["ended_at"] == (NOW - timedelta(days=1)).isoformat() and len(rec["sha256"]) == 64
    status, out, _ = db.fairline("recordings", "list", "--since", "2999-01-01")
    assert (status, out) == (0, "no recordings since 2999-01-01\n")


# ------------------------------------------------------------------- verify


def test_verify_passes_when_every_file_is_there_and_unchanged(db: Db) -> None:
    db.store([db.recorded("r1", NOW), db.recorded("r2", NOW)])
    assert db.fairline("recordings", "verify") == (
        0, "2 kept recordings checked: every file is there and unchanged\n", "")


def test_verify_names_a_changed_file_and_a_missing_one(db: Db) -> None:
    cdrs = [db.recorded("r-changed", NOW - timedelta(minutes=3)), db.recorded("r-fine", NOW - timedelta(minutes=2)),
            db.recorded("r-missing", NOW - timedelta(minutes=1))]
    db.store(cdrs)
    changed, _, missing = (c.call.recording for c in cdrs)
    assert changed is not None and missing is not None
    with open(changed.path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x7f")
    os.unlink(missing.path)
    status, out, err = db.fairline("recordings", "verify")
    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"call r-changed: {changed.path}: changed since it was stored: its SHA-256 is ")
    assert lines[0].endswith(f"the row says {changed.sha256}")
    assert lines[1:] == [f"call r-missing: {missing.path}: file missing", "2 of 3 kept recordings have a problem"]


# -------------------------------------------------------------------- purge


def test_purge_deletes_old_files_marks_their_rows_and_billing_sees_the_same_calls(db: Db) -> None:
    old, gone, recent = NOW - timedelta(days=100), NOW - timedelta(days=95), NOW - timedelta(days=10)
    cdrs = [db.recorded("r-old", old), db.recorded("r-gone", gone), db.recorded("r-recent", recent),
            db.unrecorded("u-old", old)]
    db.store(cdrs)
    old_file, gone_file, recent_file = (Path(str(c.call.recording.path)) for c in cdrs[:3] if c.call.recording)
    os.unlink(gone_file)  # deleted by hand: purged all the same
    billing = "SELECT call_id, recorded, recording_mode, recording_evidence, charged_eur, list_price_eur FROM cdrs ORDER BY call_id"
    before = db.rows(billing)

    status, out, err = db.fairline("recordings", "purge", "--older-than", "30", "--dry-run")
    assert (status, err) == (0, "")
    assert out.splitlines()[:2] == [
        f"would purge r-old (ended {old.replace(tzinfo=None).isoformat(' ')} UTC): {old_file}",
        f"would purge r-gone (ended {gone.replace(tzinfo=None).isoformat(' ')} UTC): {gone_file} "
        "(the file is already gone)"]
    assert out.splitlines()[2].startswith("would purge 2 recordings that ended before ")
    assert out.endswith("; nothing deleted (dry run)\n")
    assert old_file.exists() and db.sql("SELECT count(*) FROM recordings WHERE purged_at IS NOT NULL") == "0"

    status, out, err = db.fairline("recordings", "purge", "--older-than", "30")
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == f"purged r-old (ended {old.replace(tzinfo=None).isoformat(' ')} UTC): {old_file}"
    assert out.endswith("; their CDRs stay, still marked recorded\n")
    assert not old_file.exists() and recent_file.exists()
    assert db.rows("SELECT call_id, purged_at IS NOT NULL AS purged FROM recordings ORDER BY call_id") == [
        {"call_id": "r-gone", "purged": True}, {"call_id": "r-old", "purged": True},
        {"call_id": "r-recent", "purged": False}]
    assert db.rows(billing) == before  # same calls, same money, still recorded with mode and evidence

    # The purged rows are no longer checked; listing shows when they went.
    assert db.fairline("recordings", "verify")[:2] == (
        0, "1 kept recordings checked: every file is there and unchanged\n")
    listed = db.fairline("recordings", "list")[1]
    assert "r-old" in listed and "purged " in listed and "3 recordings: 1 kept, 2 purged" in listed

    # Nothing left to purge: a second run changes nothing.
    status, out, _ = db.fairline("recordings", "purge", "--older-than", "30")
    assert status == 0 and out.startswith("purged 0 recordings that ended before ")


def test_a_file_purge_cannot_delete_is_reported_and_its_row_kept(db: Db) -> None:
    """Root may delete any file, but no one unlinks a directory: one stands in the file's place."""
    cdr = db.recorded("r-stuck", NOW - timedelta(days=100))
    db.store([cdr])
    assert cdr.call.recording is not None
    path = Path(cdr.call.recording.path)
    path.unlink()
    path.mkdir()
    status, out, _ = db.fairline("recordings", "purge", "--older-than", "30")
    assert status == 1
    assert f"cannot purge r-stuck: {path}: cannot delete it: " in out
    assert out.endswith("1 could not be deleted: kept and not marked purged\n")
    assert db.sql("SELECT purged_at IS NULL FROM recordings") == "t"


def test_purge_deletes_nothing_outside_the_recordings_directory_whatever_a_row_says(db: Db) -> None:
    """Issue 17: purge deleted whatever path the row held. Rows pointing outside, by an absolute path,
    by `..`, through a linked directory or as a link themselves, are refused, listed and left unmarked."""
    old = NOW - timedelta(days=100)
    cdrs = [db.recorded(name, old) for name in ("r-fine", "r-absolute", "r-dotdot", "r-linked-dir", "r-link")]
    db.store(cdrs)
    elsewhere = db.tmp_path / "elsewhere"
    elsewhere.mkdir()
    victims = {name: elsewhere / f"{name}.wav" for name in ("r-absolute", "r-dotdot", "r-linked-dir", "r-link")}
    for victim in victims.values():
        victim.write_bytes(b"not a recording of fairline's")
    (db.recordings_dir / "linked").symlink_to(elsewhere, target_is_directory=True)
    link = db.recordings_dir / "r-link.wav"
    link.symlink_to(victims["r-link"])
    rows = {
        "r-absolute": str(victims["r-absolute"]),
        "r-dotdot": f"{db.recordings_dir}/../elsewhere/r-dotdot.wav",
        "r-linked-dir": f"{db.recordings_dir}/linked/r-linked-dir.wav",
        "r-link": str(link),
    }
    for call_id, file in rows.items():  # as a tampered or mistaken row would hold them
        db.sql(f"UPDATE recordings SET file = '{file}' WHERE call_id = '{call_id}'")
    root = os.path.realpath(db.recordings_dir)

    for dry in (["--dry-run"], []):
        status, out, err = db.fairline("recordings", "purge", "--older-than", "30", *dry)
        assert (status, err) == (1, "")
        lines = out.splitlines()
        assert lines[1:5] == [
            f"cannot purge r-absolute: {rows['r-absolute']}: outside the recordings directory {root}: not deleted",
            f"cannot purge r-dotdot: {rows['r-dotdot']}: outside the recordings directory {root} "
            f"(it resolves to {victims['r-dotdot']}): not deleted",
            f"cannot purge r-link: {link}: outside the recordings directory {root} "
            f"(it resolves to {victims['r-link']}): not deleted",
            f"cannot purge r-linked-dir: {rows['r-linked-dir']}: outside the recordings directory {root} "
            f"(it resolves to {victims['r-linked-dir']}): not deleted",
        ]
        assert lines[-1] == "4 " + ("would not be deleted" if dry else "could not be deleted: kept and not marked purged")
    assert all(victim.read_bytes() == b"not a recording of fairline's" for victim in victims.values())
    assert link.is_symlink()
    assert db.rows("SELECT call_id FROM recordings WHERE purged_at IS NOT NULL") == [{"call_id": "r-fine"}]


def test_purge_refuses_a_link_to_another_recording_in_the_directory(db: Db) -> None:
    """Deleting the link would mark the row purged while the audio stays on disk under another name."""
    kept, linked = db.recorded("r-kept", NOW), db.recorded("r-linked", NOW - timedelta(days=100))
    db.store([kept, linked])
    assert kept.call.recording is not None and linked.call.recording is not None
    Path(linked.call.recording.path).unlink()
    Path(linked.call.recording.path).symlink_to(kept.call.recording.path)
    status, out, _ = db.fairline("recordings", "purge", "--older-than", "30")
    assert status == 1
    assert (f"cannot purge r-linked: {linked.call.recording.path}: a symbolic link, not a recording fairline stored "
            f"(it points to {os.path.realpath(kept.call.recording.path)}): not deleted") in out
    assert Path(kept.call.recording.path).exists() and db.sql("SELECT count(*) FROM recordings WHERE purged_at IS NULL") == "2"


def test_purge_without_its_recordings_directory_is_bad_usage_and_touches_nothing(db: Db) -> None:
    db.store([db.recorded("r-old", NOW - timedelta(days=100))])
    status, out, err = db.fairline("recordings", "purge", "--older-than", "30", "--recordings-dir",
                                   str(db.tmp_path / "nope"))
    assert (status, out) == (2, "")
    assert err == (f"fairline: recordings directory {db.tmp_path / 'nope'}: not a directory; give the one "
                   "`fairline run` uses (--recordings-dir or $FAIRLINE_RECORDINGS_DIR)\n")
    assert db.sql("SELECT count(*) FROM recordings WHERE purged_at IS NULL") == "1"


# ---------------------------------------------------------------- bad usage


@pytest.mark.parametrize("days", ["-1", "1.5", "thirty", "36501"])
def test_purge_needs_whole_days(db: Db, days: str) -> None:
    with pytest.raises(SystemExit) as exited:
        db.fairline("recordings", "purge", "--older-than", days)
    assert exited.value.code == 2
    assert "expected whole days from 0 to 36500" in db.capsys.readouterr().err


def test_an_unreachable_database_is_exit_3_with_the_password_hidden(db: Db) -> None:
    status, out, err = db.fairline("recordings", "verify", url="postgresql://fairline:s3cret@127.0.0.1:1/fairline")
    assert (status, out) == (3, "")
    assert "postgresql://fairline:***@127.0.0.1:1/fairline unreachable" in err and "s3cret" not in err
