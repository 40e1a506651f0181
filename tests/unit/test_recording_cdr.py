"""A recording on a call's CDR: the file's description is checked, and the spool format carries it, old lines too."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rating.core.cdr import CallRecord, Disposition, RatedCdr, RecordingFile, rate_record
from rating.storage.spool import Spool
from rating.core.tariff import DEFAULT_RATES, NumberType

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
END = START + timedelta(seconds=150)
SHA = "ab" * 32


def recording(seconds: str = "58.123", **changes: object) -> RecordingFile:
    fields: dict[str, object] = dict(path="/var/lib/fairline/recordings/2026/11/c1.wav", sha256=SHA,
                                     started_at=END - timedelta(seconds=58.123), ended_at=END,
                                     duration_seconds=Decimal(seconds))
    fields.update(changes)
    return RecordingFile(**fields)  # type: ignore[arg-type]


def call(rec: RecordingFile | None = None, mode: str | None = "one_party",
         evidence: str | None = "one_party: number NL, caller NL, target NL") -> CallRecord:
    return CallRecord("c1", "+31201234567", "+31612345678", START, START + timedelta(seconds=10), END,
                      Disposition.ANSWERED, 16, recording_mode=mode, recording_evidence=evidence, recording=rec)


class TestRecordingFile:
    def test_the_duration_is_kept_to_the_millisecond_and_the_hash_in_lower_case(self) -> None:
        r = recording("58.12349", sha256="AB" * 32)
        assert (r.duration_seconds, r.sha256) == (Decimal("58.123"), SHA)
        assert str(recording("7").duration_seconds) == "7.000"

    @pytest.mark.parametrize(("changes", "message"), [
        ({"path": "recordings/c1.wav"}, "path must be an absolute path"),
        ({"path": ""}, "path must be an absolute path"),
        ({"sha256": "ab" * 31}, "sha256 must be 64 hexadecimal digits"),
        ({"sha256": "zz" * 32}, "sha256 must be 64 hexadecimal digits"),
        ({"started_at": datetime(2026, 11, 3, 10, 1)}, "started_at must be a timezone-aware datetime"),
        ({"ended_at": datetime(2026, 11, 3, 10, 2, 30)}, "ended_at must be a timezone-aware datetime"),
        ({"started_at": END + timedelta(seconds=1)}, "is before started_at"),
        ({"duration_seconds": Decimal("-0.001")}, "duration_seconds must be a Decimal of 0 or more"),
        ({"duration_seconds": Decimal("NaN")}, "duration_seconds must be a Decimal of 0 or more"),
        ({"duration_seconds": 58.1}, "duration_seconds must be a Decimal of 0 or more"),
    ])
    def test_a_description_no_stored_file_can_have_is_refused(self, changes: dict[str, object],
                                                              message: str) -> None:
        with pytest.raises(ValueError, match=message):
            recording(**changes)

    def test_the_call_is_recorded_exactly_when_it_has_a_file(self) -> None:
        assert call(recording()).recorded
        assert not call(None, "forbidden", "forbidden: number DE (operator override)").recorded


class TestSpoolFormat:
    @given(rec=st.one_of(st.none(), st.decimals(0, 7200, places=3).map(lambda s: recording(str(s)))),
           mode=st.sampled_from([None, "one_party", "notify", "consent", "forbidden"]),
           evidence=st.one_of(st.none(), st.text(max_size=80)))
    def test_the_recording_fields_survive_the_spool_format_unchanged(
            self, rec: RecordingFile | None, mode: str | None, evidence: str | None) -> None:
        rated = rate_record(call(rec, mode, evidence), "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert RatedCdr.from_json(json.loads(json.dumps(rated.to_json()))) == rated

    def test_the_spool_line_names_the_file_its_hash_and_times(self) -> None:
        line = rate_record(call(recording()), "acme", NumberType.LOCAL, DEFAULT_RATES).to_json()
        assert line["recording"] == {
            "path": "/var/lib/fairline/recordings/2026/11/c1.wav", "sha256": SHA,
            "started_at": "2026-11-03T10:01:31.877000+00:00", "ended_at": "2026-11-03T10:02:30+00:00",
            "duration_seconds": "58.123"}
        assert (line["recording_mode"], line["recording_evidence"]) == (
            "one_party", "one_party: number NL, caller NL, target NL")

    def test_a_spool_line_written_before_recording_reads_as_a_call_not_recorded(self, tmp_path: Path) -> None:
        """CDRs spooled by the previous version while PostgreSQL was down must still reach the database."""
        spool = Spool(tmp_path)
        spool.path.write_text(LINE_BEFORE_RECORDING + "\n")
        [cdr] = [e.cdr for e in spool.read_segment(0, limit=100).entries]
        assert (cdr.call.recording_mode, cdr.call.recording_evidence, cdr.call.recording) == (None, None, None)
        assert not cdr.call.recorded and cdr.call.call_id == "c1" and cdr.price.list_price_eur == Decimal("0.1100")
        assert not spool.rejected_path.exists()

    def test_a_spooled_recording_that_cannot_be_is_set_aside_not_stored(self, tmp_path: Path) -> None:
        """A hand-edited or corrupt recording part makes the line no CDR: it goes to the rejected file."""
        good = rate_record(call(recording()), "acme", NumberType.LOCAL, DEFAULT_RATES).to_json()
        bad = dict(good, recording=dict(good["recording"], sha256="not-a-hash"))
        spool = Spool(tmp_path)
        spool.path.write_text(json.dumps(bad) + "\n")
        assert [e.cdr for e in spool.read_segment(0, limit=100).entries] == []
        assert "sha256" in spool.rejected_path.read_text()


# A line as fairline wrote it before recording (with queues), verbatim.
LINE_BEFORE_RECORDING = (
    '{"call_id": "c1", "did": "+31201234567", "caller": "+31612345678", "started_at": "2026-11-03T10:00:00+00:00", '
    '"ended_at": "2026-11-03T10:02:30+00:00", "answered_at": "2026-11-03T10:01:30+00:00", "disposition": '
    '"answered", "hangup_cause": 16, "answered_target": null, "target_kind": null, "queue_visits": [], '
    '"customer_id": "acme", "number_type": "local", "billable_seconds": 60, "peak_seconds": 60, '
    '"offpeak_seconds": 0, "setup_eur": "0.0400", "usage_eur": "0.0700", "list_price_eur": "0.1100", '
    '"fair_use_eligible": true, "billing_month": "2026-11-01", "rating_error": null, "source": "live"}'
)
