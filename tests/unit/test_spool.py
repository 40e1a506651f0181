"""The CDR spool: durable on disk, in order, and it loses nothing, not even a damaged line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rating.core.cdr import CallRecord, Disposition, RatedCdr, rate_record
from rating.errors import RatingError
from rating.storage.spool import (
    DEAD_LETTER_FILE,
    REJECTED_FILE,
    SPOOL_FILE,
    Segment,
    Spool,
    Spooled,
    SpoolError,
    waiting_call_ids,
)
from rating.core.tariff import DEFAULT_RATES, NumberType

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def cdr(n: int) -> RatedCdr:
    """An answered one-minute call with call id "call-<n>"."""
    started = START + timedelta(minutes=n)
    call = CallRecord(f"call-{n}", "+31201234567", "+31612345678", started, started + timedelta(seconds=5),
                      started + timedelta(seconds=65), Disposition.ANSWERED, 16)
    return rate_record(call, "cust-1", NumberType.LOCAL, DEFAULT_RATES)


def ids(cdrs: list[RatedCdr]) -> list[str]:
    return [c.call.call_id for c in cdrs]


def read_all(spool: Spool) -> list[RatedCdr]:
    return [e.cdr for e in spool.read_segment(0, limit=1_000_000).entries]


def rejected(spool: Spool) -> list[dict[str, object]]:
    return [json.loads(line) for line in spool.rejected_path.read_text().splitlines()]


class TestAppendAndRead:
    def test_an_empty_or_missing_spool_reads_as_nothing(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        assert (read_all(spool), spool.has_cdrs()) == ([], False)

    def test_cdrs_come_back_equal_and_in_the_order_of_the_appends(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.append([cdr(1), cdr(2)])
        spool.append([cdr(3)])
        spool.append([cdr(4), cdr(5)])
        assert read_all(spool) == [cdr(n) for n in range(1, 6)]
        assert spool.has_cdrs()

    def test_a_new_spool_object_on_the_same_directory_reads_what_an_earlier_one_wrote(self, tmp_path: Path) -> None:
        """What a process spooled before it died is there for the next one."""
        Spool(tmp_path / "spool").append([cdr(1)])
        assert ids(read_all(Spool(tmp_path / "spool"))) == ["call-1"]

    def test_reading_leaves_the_spool_as_it_was(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.append([cdr(1), cdr(2)])
        assert read_all(spool) == read_all(spool)

    def test_missing_directories_are_created_private(self, tmp_path: Path) -> None:
        """CDRs hold callers' numbers: only the owner may read them."""
        spool = Spool(tmp_path / "a" / "b")
        spool.append([cdr(1)])
        assert (spool.directory.stat().st_mode & 0o777, spool.path.stat().st_mode & 0o777) == (0o700, 0o600)

    def test_appending_nothing_creates_nothing(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.append([])
        assert not spool.directory.exists()

    def test_check_creates_an_empty_spool_that_holds_no_cdrs(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.check()
        assert spool.path.exists() and not spool.has_cdrs()


class TestDamage:
    def test_a_torn_last_line_is_skipped_with_a_warning_and_kept_in_rejected(self, tmp_path: Path) -> None:
        """The process died mid-append: the complete lines are read, the fragment is not lost."""
        spool = Spool(tmp_path)
        spool.append([cdr(1), cdr(2)])
        fragment = json.dumps(cdr(3).to_json())[:40]
        with spool.path.open("a") as f:
            f.write(fragment)
        with capture_logs() as logs:
            assert ids(read_all(spool)) == ["call-1", "call-2"]
        assert [(e["event"], e["log_level"]) for e in logs] == [("spool.torn_line", "warning")]
        assert [r["line"] for r in rejected(spool)] == [fragment]

    def test_an_append_after_a_torn_line_is_not_glued_to_it(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(1)])
        with spool.path.open("a") as f:
            f.write('{"call_id": "call-2", "di')
        spool.append([cdr(3)])
        with capture_logs():
            assert ids(read_all(spool)) == ["call-1", "call-3"]
        assert [r["line"] for r in rejected(spool)] == ['{"call_id": "call-2", "di']

    @pytest.mark.parametrize(
        "garbage",
        [
            b"not json at all",
            b"[1, 2, 3]",
            b'{"call_id": "call-x"}',
            b"\xff\xfe not utf-8",
            json.dumps(dict(cdr(9).to_json(), setup_eur="lots")).encode(),
            json.dumps(dict(cdr(9).to_json(), started_at="2026-11-03T10:00:00")).encode(),  # naive
        ],
    )
    def test_a_line_that_is_not_a_cdr_moves_to_rejected_and_the_others_are_read(
        self, tmp_path: Path, garbage: bytes
    ) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(1)])
        at = spool.size()
        with spool.path.open("ab") as f:
            f.write(garbage + b"\n")
        spool.append([cdr(2)])
        with capture_logs() as logs:
            assert ids(read_all(spool)) == ["call-1", "call-2"]
        assert [(e["event"], e["log_level"], e["offset"]) for e in logs] == [("spool.bad_line", "error", at)]
        [entry] = rejected(spool)
        assert str(entry["line"]).encode("utf-8", "surrogateescape") == garbage
        assert str(entry["reason"]).startswith("not a CDR")


class TestClearAndReject:
    def test_clear_empties_the_spool_read_to_its_end_and_later_appends_start_afresh(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(1), cdr(2)])
        assert spool.clear_if_read(spool.size())
        assert (read_all(spool), spool.has_cdrs()) == ([], False)
        spool.append([cdr(3)])
        assert ids(read_all(spool)) == ["call-3"]

    def test_a_spool_not_read_to_its_end_is_not_cleared(self, tmp_path: Path) -> None:
        """CDRs appended after the replay began are still to be stored."""
        spool = Spool(tmp_path)
        spool.append([cdr(1)])
        end = spool.size()
        spool.append([cdr(2)])
        assert not spool.clear_if_read(end)
        assert ids(read_all(spool)) == ["call-1", "call-2"]

    def test_clearing_an_absent_spool_is_fine(self, tmp_path: Path) -> None:
        assert Spool(tmp_path / "never-used").clear_if_read(0)

    def test_a_refused_cdr_is_kept_whole_with_its_reason(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.reject(cdr(1), "CheckViolationError: cdrs_price_adds_up")
        [entry] = rejected(spool)
        assert entry["reason"] == "CheckViolationError: cdrs_price_adds_up"
        assert isinstance(entry["cdr"], dict) and RatedCdr.from_json(entry["cdr"]) == cdr(1)
        assert not spool.has_cdrs()


class TestUnwritable:
    """Run as root, permission bits are ignored: a directory under a regular file is unwritable for anyone."""

    @pytest.fixture
    def spool(self, tmp_path: Path) -> Spool:
        (tmp_path / "file").write_text("not a directory")
        return Spool(tmp_path / "file" / "spool")

    def test_append_raises_a_spool_error_naming_the_path_and_the_os_error(self, spool: Spool) -> None:
        with pytest.raises(SpoolError) as info:
            spool.append([cdr(1)])
        assert isinstance(info.value, RatingError)
        assert str(spool.path) in str(info.value)
        assert "Not a directory" in str(info.value) or "File exists" in str(info.value)
        assert isinstance(info.value.error, OSError)

    def test_check_fails_the_same_way_at_start_up(self, spool: Spool) -> None:
        with pytest.raises(SpoolError, match="cannot write"):
            spool.check()

    def test_reject_fails_the_same_way(self, spool: Spool) -> None:
        with pytest.raises(SpoolError, match=str(spool.rejected_path)):
            spool.reject(cdr(1), "bad")


class TestDepth:
    """`depth`: how many CDRs wait in the spool, known without reading the file again (for /metrics)."""

    def test_appends_add_to_it_and_clear_empties_it(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.append([cdr(1), cdr(2)])
        spool.append([cdr(3)])
        assert spool.depth == 3
        spool.clear_if_read(spool.size())
        assert spool.depth == 0

    def test_check_counts_what_an_earlier_process_left(self, tmp_path: Path) -> None:
        Spool(tmp_path / "spool").append([cdr(n) for n in range(5)])
        spool = Spool(tmp_path / "spool")
        spool.check()
        assert spool.depth == 5

    def test_a_segment_read_takes_its_lines_off_and_a_torn_line_counts_until_read(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.append([cdr(1), cdr(2)])
        with spool.path.open("ab") as f:
            f.write(b'{"call_id": "call-3", "num')
        spool.check()
        assert spool.depth == 3
        first = spool.read_segment(0, limit=1)
        assert spool.depth == 2
        with capture_logs():
            spool.read_segment(first.end, limit=10)
        assert spool.depth == 0

    def test_an_empty_or_missing_spool_has_depth_zero(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        assert spool.depth == 0
        spool.check()
        assert spool.depth == 0


class TestSegments:
    """A replay reads the spool a segment at a time from a byte offset: never the whole file at once."""

    def test_segments_come_in_order_and_end_where_the_next_begins(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(n) for n in range(5)])
        first = spool.read_segment(0, limit=2)
        second = spool.read_segment(first.end, limit=2)
        third = spool.read_segment(second.end, limit=2)
        assert [ids([e.cdr for e in s.entries]) for s in (first, second, third)] == [
            ["call-0", "call-1"], ["call-2", "call-3"], ["call-4"]]
        assert third.end == spool.size()
        assert spool.read_segment(third.end, limit=2) == Segment([], third.end)

    def test_a_segment_stops_at_until_so_lines_appended_later_wait(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(1)])
        until = spool.size()
        spool.append([cdr(2)])
        segment = spool.read_segment(0, limit=10, until=until)
        assert (ids([e.cdr for e in segment.entries]), segment.end) == (["call-1"], until)

    def test_a_cdr_sent_back_keeps_its_count_of_tries(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(1), Spooled(cdr(2), tries=3)])
        assert spool.read_segment(0, limit=10).entries == [Spooled(cdr(1)), Spooled(cdr(2), 3)]
        assert "tries" not in json.loads(spool.path.read_text().splitlines()[0])  # plain lines stay plain CDRs

    @pytest.mark.parametrize("tries", [0, -1, "2", None])
    def test_a_line_with_a_bad_count_of_tries_is_set_aside(self, tmp_path: Path, tries: object) -> None:
        spool = Spool(tmp_path)
        spool.path.write_text(json.dumps({"tries": tries, "cdr": cdr(1).to_json()}) + "\n")
        with capture_logs():
            assert spool.read_segment(0, limit=10).entries == []
        assert "tries" in str(rejected(spool)[0]["reason"])


class TestDeadLetters:
    def test_a_dead_letter_is_kept_whole_with_its_tries_and_error_and_counted(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.dead_letter(Spooled(cdr(1), 5), "RaiseError: no")
        [entry] = [json.loads(line) for line in spool.dead_letter_path.read_text().splitlines()]
        assert (entry["tries"], entry["error"], RatedCdr.from_json(entry["cdr"])) == (5, "RaiseError: no", cdr(1))
        assert spool.dead_letters == 1
        again = Spool(tmp_path)
        again.check()
        assert again.dead_letters == 1

    def test_the_count_is_zero_once_a_person_moves_the_file_away(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.dead_letter(Spooled(cdr(1), 5), "RaiseError: no")
        spool.dead_letter_path.rename(tmp_path / "looked-at.jsonl")
        assert spool.dead_letters == 0

    def test_a_new_dead_letter_after_the_file_was_moved_away_starts_a_new_count(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.dead_letter(Spooled(cdr(1), 5), "RaiseError: no")
        spool.dead_letter_path.rename(tmp_path / "looked-at.jsonl")
        spool.dead_letter(Spooled(cdr(2), 5), "RaiseError: no")
        assert spool.dead_letters == 1


class TestWaitingCallIds:
    def test_the_call_ids_of_every_cdr_not_yet_in_the_database_with_their_file(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path)
        spool.append([cdr(1), Spooled(cdr(2), 2)])
        spool.reject(cdr(3), "CheckViolationError")
        spool.dead_letter(Spooled(cdr(4), 5), "RaiseError")
        with spool.path.open("ab") as f:
            f.write(b'{"call_id": "call-5", "di')  # being appended: not a CDR yet
        assert waiting_call_ids(tmp_path) == {"call-1": SPOOL_FILE, "call-2": SPOOL_FILE, "call-3": REJECTED_FILE,
                                              "call-4": DEAD_LETTER_FILE}

    def test_an_empty_directory_holds_nothing_and_a_missing_one_is_an_error(self, tmp_path: Path) -> None:
        assert waiting_call_ids(tmp_path) == {}
        with pytest.raises(FileNotFoundError):
            waiting_call_ids(tmp_path / "elsewhere")
