"""Reconciliation without Asterisk or a database: reading Asterisk's CDR lines, grouping them into calls,
comparing with fairline's CDRs, building CDRs to import, and the command's arguments and output."""

from __future__ import annotations

import dataclasses

import argparse
import io
import json
import os
import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.settings import fill_from_environment

from rating.commands import billing_cli, reconcile_cli
from rating.core.cdr import Disposition
from rating.core.reconcile import (
    SETTLE,
    AsteriskCall,
    AsteriskCdrError,
    AsteriskRecord,
    CallPath,
    DirectoryEntry,
    FairlineCdr,
    MissingInAsterisk,
    MissingInFairline,
    NotImportable,
    Reconciliation,
    Window,
    asterisk_cdr,
    e164,
    inbound_calls,
    nodes,
    not_importable_yet,
    parse_asterisk_cdr,
    reconcile,
)
from rating.core.tariff import NumberType, RateTable, TrafficRates

RATES = RateTable((TrafficRates(date(2020, 1, 1)),))
T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

# Lines as Asterisk 22 wrote them (cdr_custom.conf) for calls of the end-to-end stack: an announcement,
# a simultaneous route (one leg cancelled, one answered), an unknown number fairline released, a
# sequential route (busy, then answered), the fallback ringing a target, the fallback's 503.
RECORDED = """\
"fairline-cdr-1","1795622110.0","1795622110.0","0","PJSIP/carrier-in-00000000","","from-carrier","+31201234567","+31612345678","Stasis","","1795622110.886218","1795622110.888902","1795622112.316500","ANSWERED"
"fairline-cdr-1","1795622112.1","1795622112.1","1","PJSIP/carrier-in-00000001","PJSIP/carrier-out-00000002","fairline-dial","s","+31612345678","Dial","","1795622112.429816","0.000000","1795622113.449466","NO ANSWER"
"fairline-cdr-1","1795622112.1","1795622112.1","4","PJSIP/carrier-in-00000001","PJSIP/carrier-out-00000003","fairline-dial","s","+31612345678","Dial","","1795622112.435864","1795622113.449717","1795622115.457726","ANSWERED"
"fairline-cdr-1","1795622115.4","1795622115.4","5","PJSIP/carrier-in-00000004","","from-carrier","+31209999999","+31612345678","Stasis","","1795622115.566051","0.000000","1795622120.511389","NO ANSWER"
"fairline-cdr-1","1795622151.8","1795622151.8","10","PJSIP/carrier-in-00000008","PJSIP/carrier-out-00000009","fairline-fallback","+31201230006","+31612345678","Dial","","1795622151.446061","1795622152.460967","1795622154.464868","ANSWERED"
"fairline-cdr-1","1795622154.10","1795622154.10","12","PJSIP/carrier-in-0000000a","","from-carrier","+31209999999","+31612345678","Hangup","","1795622154.610119","0.000000","1795622156.432462","FAILED"
"fairline-cdr-1","1795622120.5","1795622120.5","6","PJSIP/carrier-in-00000005","PJSIP/carrier-out-00000006","fairline-dial","s","+31612345678","Dial","","1795622120.625536","0.000000","1795622120.632081","BUSY"
"fairline-cdr-1","1795622120.5","1795622120.5","8","PJSIP/carrier-in-00000005","PJSIP/carrier-out-00000007","fairline-dial","s","+31612345678","Dial","","1795622120.632302","1795622121.645136","1795622158.636131","ANSWERED"
"""


def at(epoch: str) -> datetime:
    seconds, _, micro = epoch.partition(".")
    return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=int(micro.ljust(6, "0")))


def line(**fields: str) -> str:
    """One CDR line in the format, with sensible fields unless given."""
    f = {"format": "fairline-cdr-1", "uniqueid": "100.1", "linkedid": "100.1", "sequence": "0",
         "channel": "PJSIP/carrier-in-00000001", "dstchannel": "", "dcontext": "from-carrier", "dst": "+31201234567",
         "src": "+31612345678", "lastapp": "Stasis", "did": "", "start": "1795622110.5", "answer": "0.000000",
         "end": "1795622112.5", "disposition": "NO ANSWER"}
    f.update(fields)
    return ",".join('"' + v.replace('"', '""') + '"' for v in f.values()) + "\n"


def record(**fields: object) -> AsteriskRecord:
    base: dict[str, object] = {
        "uniqueid": "100.1", "linkedid": "100.1", "sequence": 0, "channel": "PJSIP/carrier-in-00000001",
        "dstchannel": "", "dcontext": "from-carrier", "dst": "+31201234567", "src": "+31612345678",
        "lastapp": "Stasis", "did": "", "start": T0, "answer": None, "end": T0 + timedelta(seconds=5),
        "disposition": "NO ANSWER"}
    base.update(fields)
    return AsteriskRecord(**base)  # type: ignore[arg-type]


def call(call_id: str = "100.1", *, start: datetime = T0, seconds: float = 5, path: CallPath = CallPath.FAIRLINE,
         did: str | None = "+31201234567", answered: bool = False, disposition: str = "NO ANSWER",
         dialled: bool = False) -> AsteriskCall:
    return AsteriskCall(
        call_id=call_id, linkedid=call_id, channel="PJSIP/carrier-in-00000001", did=did, caller="+31612345678",
        started_at=start, answered_at=start + timedelta(seconds=1) if answered else None,
        ended_at=start + timedelta(seconds=seconds), disposition="ANSWERED" if answered else disposition,
        path=path, dialled=dialled)


def cdr(call_id: str = "100.1", *, start: datetime = T0, seconds: float = 5, source: str = "live") -> FairlineCdr:
    return FairlineCdr(call_id, "+31201234567", start, start + timedelta(seconds=seconds), source)


LATER = T0 + timedelta(hours=1)  # "now" long after every call of a test ended
WINDOW = Window(T0 - timedelta(minutes=10))


class TestParse:
    def test_recorded_lines_are_read_with_their_times_in_utc_to_the_microsecond(self) -> None:
        records = list(parse_asterisk_cdr(io.StringIO(RECORDED, newline="")))
        assert len(records) == 8
        first = records[0]
        assert (first.uniqueid, first.channel, first.dcontext, first.dst, first.src, first.lastapp) == (
            "1795622110.0", "PJSIP/carrier-in-00000000", "from-carrier", "+31201234567", "+31612345678", "Stasis")
        assert first.start == at("1795622110.886218")
        assert first.answer == at("1795622110.888902")
        assert first.start.tzinfo is UTC
        assert (records[1].sequence, records[1].answer, records[1].disposition) == (1, None, "NO ANSWER")

    def test_a_last_line_without_its_line_end_is_still_being_written_and_left_for_later(self) -> None:
        text = line(uniqueid="1.1") + line(uniqueid="2.2").rstrip("\n")
        assert [r.uniqueid for r in parse_asterisk_cdr(io.StringIO(text, newline=""))] == ["1.1"]

    def test_a_last_line_cut_inside_a_quoted_field_is_left_for_later_too(self) -> None:
        text = line(uniqueid="1.1") + line(uniqueid="2.2")[:40]
        assert [r.uniqueid for r in parse_asterisk_cdr(io.StringIO(text, newline=""))] == ["1.1"]

    def test_blank_lines_are_skipped(self) -> None:
        text = "\n" + line(uniqueid="1.1") + "\n\n" + line(uniqueid="2.2")
        assert [r.uniqueid for r in parse_asterisk_cdr(io.StringIO(text, newline=""))] == ["1.1", "2.2"]

    def test_a_did_with_a_comma_quote_or_line_break_is_read_whole_and_line_numbers_stay_right(self) -> None:
        text = line(dst='+31"2,0\n1') + line(uniqueid="x", start="nonsense")
        with pytest.raises(AsteriskCdrError) as bad:
            list(parse_asterisk_cdr(io.StringIO(text, newline="")))
        assert bad.value.line_number == 3
        [first] = list(parse_asterisk_cdr(io.StringIO(line(dst='+31"2,0\n1'), newline="")))
        assert first.dst == '+31"2,0\n1'

    def test_a_line_csv_cannot_read_is_refused_with_its_number(self) -> None:
        text = line(uniqueid="ok") + line(dst="+31" + "9" * 200_000)
        with pytest.raises(AsteriskCdrError, match=r"^line 2: not CSV \(field larger than field limit"):
            list(parse_asterisk_cdr(io.StringIO(text, newline="")))

    @pytest.mark.parametrize(("text", "reason"), [
        ('"1795622110.0","x"\n', ("expected 15 fields starting with 'fairline-cdr-1' (dialplan/cdr_custom.conf), "
                                  "got 2 starting with '1795622110.0'")),
        (line().replace("fairline-cdr-1", "fairline-cdr-2"), "expected 15 fields starting with 'fairline-cdr-1'"),
        (line().replace('"NO ANSWER"\n', '"NO ANSWER",""\n'), "got 16"),
        (line(uniqueid=""), "uniqueid: empty"),
        (line(sequence="x"), "sequence: expected a whole number, got 'x'"),
        (line(start="yesterday"), "start: expected Unix time in seconds, got 'yesterday'"),
        (line(end="-1"), "end: expected Unix time in seconds, got '-1'"),
        (line(answer="NaN"), "answer: expected Unix time in seconds, got 'NaN'"),
        (line(start="1e20"), "start: expected Unix time in seconds"),
        (line(start="0.000000"), "start and end: expected times, got 0"),
    ])
    def test_a_line_not_in_the_format_is_refused_with_its_number(self, text: str, reason: str) -> None:
        with pytest.raises(AsteriskCdrError) as bad:
            list(parse_asterisk_cdr(io.StringIO(line(uniqueid="ok") + text, newline="")))
        assert bad.value.line_number == 2
        assert reason in str(bad.value)
        assert str(bad.value).startswith("line 2: ")


class TestInboundCalls:
    def test_recorded_lines_become_one_call_per_inbound_channel(self) -> None:
        calls = inbound_calls(parse_asterisk_cdr(io.StringIO(RECORDED, newline="")))
        assert sorted(calls) == ["1795622110.0", "1795622112.1", "1795622115.4", "1795622120.5", "1795622151.8",
                                 "1795622154.10"]
        summary = {c.call_id: (c.path, c.did, c.disposition, c.answered_at is not None) for c in calls.values()}
        assert summary == {
            "1795622110.0": (CallPath.FAIRLINE, "+31201234567", "ANSWERED", True),
            "1795622112.1": (CallPath.FAIRLINE, None, "ANSWERED", True),  # only fairline-dial's `s` is shown
            "1795622115.4": (CallPath.FAIRLINE, "+31209999999", "NO ANSWER", False),
            "1795622120.5": (CallPath.FAIRLINE, None, "ANSWERED", True),
            "1795622151.8": (CallPath.FALLBACK, "+31201230006", "ANSWERED", True),
            "1795622154.10": (CallPath.REFUSED, "+31209999999", "FAILED", False),
        }

    def test_the_records_of_a_channel_add_up_to_its_start_first_answer_and_end(self) -> None:
        calls = inbound_calls(parse_asterisk_cdr(io.StringIO(RECORDED, newline="")))
        busy_then_answered = calls["1795622120.5"]
        assert busy_then_answered.started_at == at("1795622120.625536")
        assert busy_then_answered.answered_at == at("1795622121.645136")
        assert busy_then_answered.ended_at == at("1795622158.636131")
        assert busy_then_answered.dialled
        assert (busy_then_answered.channel, busy_then_answered.caller) == ("PJSIP/carrier-in-00000005", "+31612345678")

    def test_outbound_legs_agents_and_recorders_are_not_calls(self) -> None:
        records = [
            record(uniqueid="1.1"),
            record(uniqueid="1.2", channel="PJSIP/carrier-out-00000002", dcontext="fairline-dial", dst="s"),
            record(uniqueid="1.3", channel="PJSIP/carrier-out-00000003", dcontext="default", dst="s", lastapp="AppDial"),
            record(uniqueid="1.4", channel="Snoop/1.1-00000001", dcontext="", dst="", lastapp="Stasis"),
        ]
        assert list(inbound_calls(records)) == ["1.1"]

    def test_a_channel_in_the_inbound_context_counts_whatever_its_endpoint_is_named(self) -> None:
        assert list(inbound_calls([record(uniqueid="7.7", channel="PJSIP/my-carrier-00000001")])) == ["7.7"]

    def test_the_did_comes_from_cdr_did_when_the_dialplan_sets_it(self) -> None:
        [c] = inbound_calls([record(dcontext="fairline-dial", dst="s", lastapp="Dial", did="+31201230001")]).values()
        assert (c.did, c.path, c.dialled) == ("+31201230001", CallPath.FAIRLINE, True)

    @pytest.mark.parametrize(("records", "path"), [
        ([record(lastapp="Stasis")], CallPath.FAIRLINE),
        ([record(dcontext="fairline-dial", dst="s", lastapp="Playback")], CallPath.FAIRLINE),
        ([record(dcontext="fairline-fallback", lastapp="Dial")], CallPath.FALLBACK),
        ([record(dcontext="fairline-fallback", lastapp="Playback")], CallPath.FALLBACK),
        ([record(lastapp="Hangup")], CallPath.REFUSED),
        ([record(lastapp="Playback")], CallPath.REFUSED),
        ([record(dcontext="fairline-limited", dst="number", lastapp="Hangup", did="+31201230001")], CallPath.LIMITED),
    ])
    def test_the_path_says_who_served_the_call(self, records: list[AsteriskRecord], path: CallPath) -> None:
        [c] = inbound_calls(records).values()
        assert c.path is path

    @pytest.mark.parametrize(("dst", "did", "for_fairline"), [
        ("+31201234567", "+31201234567", True),
        ("0123", "0123", True),
        ("+1:fairline-dial,s", "+1:fairline-dial,s", True),  # the fallback refused it; fairline would have too
        ("i", None, False),
        ("s", None, False),
        ("+", None, False),
    ])
    def test_a_call_the_dialplan_refused_for_a_did_that_is_none_is_not_fairlines(
        self, dst: str, did: str | None, for_fairline: bool
    ) -> None:
        [c] = inbound_calls([record(dst=dst, lastapp="Hangup")]).values()
        assert (c.did, c.for_fairline) == (did, for_fairline)

    @given(st.randoms(use_true_random=False))
    @settings(max_examples=50)
    def test_the_order_of_the_lines_does_not_matter(self, rnd: random.Random) -> None:
        records = list(parse_asterisk_cdr(io.StringIO(RECORDED, newline="")))
        shuffled = records[:]
        rnd.shuffle(shuffled)
        assert inbound_calls(shuffled) == inbound_calls(records)


class TestWindow:
    def test_since_is_in_and_until_is_out(self) -> None:
        w = Window(T0, T0 + timedelta(hours=1))
        assert T0 in w
        assert T0 - timedelta(microseconds=1) not in w
        assert T0 + timedelta(hours=1) not in w
        assert T0 + timedelta(hours=10) in Window(T0)

    def test_until_must_come_after_since(self) -> None:
        with pytest.raises(ValueError, match="--until .* must be after --since"):
            Window(T0, T0)

    def test_times_must_be_aware(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Window(datetime(2026, 11, 25))


class TestReconcile:
    def test_calls_on_both_sides_are_no_difference(self) -> None:
        found = reconcile([call("1"), call("2", answered=True)], [cdr("1"), cdr("2")], WINDOW, now=LATER)
        assert (found.matched, found.differences, found.asterisk_calls, found.fairline_cdrs) == (2, 0, 2, 2)
        assert found.unsettled == ()

    def test_nothing_on_either_side_is_no_difference(self) -> None:
        found = reconcile([], [], WINDOW, now=LATER)
        assert (found.matched, found.differences) == (0, 0)

    @pytest.mark.parametrize(("path", "reason"), [
        (CallPath.FALLBACK, "fairline was not connected: the dialplan fallback (fairline-fallback) served the call"),
        (CallPath.REFUSED, ("fairline was not connected: the dialplan announced all-circuits-busy and released "
                            "the call (503)")),
        (CallPath.FAIRLINE, ("fairline took the call but has no CDR of it: it stopped before the call ended, or "
                             "the CDR still waits in its spool for PostgreSQL")),
    ])
    def test_a_call_only_asterisk_has_is_missing_in_fairline_with_why(self, path: CallPath, reason: str) -> None:
        lost = call("2", path=path)
        found = reconcile([call("1"), lost], [cdr("1")], WINDOW, now=LATER)
        assert found.missing_in_fairline == (MissingInFairline(lost, reason),)
        assert (found.matched, found.differences, found.missing_in_asterisk) == (1, 1, ())

    def test_a_call_over_a_concurrent_call_limit_is_counted_apart_and_no_difference(self) -> None:
        """The dialplan refused it (busy) before fairline, by design: fairline has no CDR of it (decision 0026)."""
        busy = call("2", path=CallPath.LIMITED)
        found = reconcile([call("1"), busy], [cdr("1")], WINDOW, now=LATER)
        assert (found.limited, found.differences, found.asterisk_calls, found.not_for_fairline) == (1, 0, 1, 0)
        assert not busy.for_fairline

    def test_a_cdr_asterisk_has_no_record_of_is_missing_in_asterisk(self) -> None:
        found = reconcile([call("1")], [cdr("1"), cdr("2", start=T0 + timedelta(seconds=1))], WINDOW, now=LATER)
        assert found.missing_in_asterisk == (MissingInAsterisk(cdr("2", start=T0 + timedelta(seconds=1)),
                                                               "Asterisk's CDR file has no record of this channel"),)

    def test_a_cdr_of_a_call_asterisk_died_with_is_counted_apart_and_no_difference(self) -> None:
        """Asterisk was killed with the call up: no record of it in its file; fairline's CDR says its end is
        estimated (issue 17). Expected, not a difference; a CDR without the flag still is one."""
        died = dataclasses.replace(cdr("2", start=T0 + timedelta(seconds=1)), end_estimated=True)
        found = reconcile([call("1")], [cdr("1"), died], WINDOW, now=LATER)
        assert (found.lost_with_asterisk, found.differences, found.fairline_cdrs) == (1, 0, 2)
        plain = reconcile([call("1")], [cdr("1"), cdr("2", start=T0 + timedelta(seconds=1))], WINDOW, now=LATER)
        assert (plain.lost_with_asterisk, plain.differences) == (0, 1)

    def test_a_cdr_from_before_the_file_begins_blames_rotation(self) -> None:
        early = cdr("0", start=T0 - timedelta(minutes=5))
        [missing] = reconcile([call("1")], [early, cdr("1")], WINDOW, now=LATER).missing_in_asterisk
        assert missing.reason == (f"started before the first call in Asterisk's CDR file ({T0.isoformat()}): "
                                  "the file was rotated, or Asterisk was not recording yet")

    def test_cdrs_against_an_empty_file_ask_whether_asterisk_records_at_all(self) -> None:
        [missing] = reconcile([], [cdr("1")], WINDOW, now=LATER).missing_in_asterisk
        assert "no inbound calls at all: is cdr_custom loaded" in missing.reason

    def test_calls_that_just_ended_are_not_judged_yet_on_either_side(self) -> None:
        now = T0 + timedelta(seconds=5) + SETTLE - timedelta(milliseconds=1)
        found = reconcile([call("a")], [cdr("f")], WINDOW, now=now)
        assert (found.unsettled, found.differences) == (("a", "f"), 0)
        found = reconcile([call("a")], [cdr("f")], WINDOW, now=now + timedelta(milliseconds=1))
        assert (found.unsettled, found.differences) == ((), 2)

    def test_the_settle_margin_can_be_zero_but_not_negative(self) -> None:
        assert reconcile([call("a")], [], WINDOW, now=T0 + timedelta(seconds=5), settle=timedelta(0)).differences == 1
        with pytest.raises(ValueError, match="settle must be 0 or more"):
            reconcile([], [], WINDOW, now=LATER, settle=timedelta(seconds=-1))

    def test_a_call_on_both_sides_counts_at_once_however_recently_it_ended(self) -> None:
        found = reconcile([call("1")], [cdr("1")], WINDOW, now=T0 + timedelta(seconds=5))
        assert (found.matched, found.unsettled) == (1, ())

    def test_calls_outside_the_window_are_not_compared(self) -> None:
        w = Window(T0, T0 + timedelta(minutes=1))
        before, after = T0 - timedelta(seconds=1), T0 + timedelta(minutes=1)
        found = reconcile([call("a", start=before), call("b", start=after), call("in", start=T0)],
                          [cdr("c", start=before), cdr("d", start=after), cdr("in", start=T0)], w, now=LATER)
        assert (found.matched, found.differences, found.asterisk_calls, found.fairline_cdrs) == (1, 0, 1, 1)

    def test_a_call_whose_sides_disagree_slightly_on_its_start_is_still_one_call_at_the_window_edge(self) -> None:
        w = Window(T0)
        found = reconcile([call("1", start=T0 - timedelta(milliseconds=3))], [cdr("1", start=T0)], w, now=LATER)
        assert (found.matched, found.differences) == (1, 0)
        found = reconcile([call("1", start=T0)], [cdr("1", start=T0 - timedelta(milliseconds=3))], w, now=LATER)
        assert (found.matched, found.differences) == (1, 0)

    def test_historic_imports_are_not_expected_in_asterisks_file_but_count_as_present(self) -> None:
        found = reconcile([call("1")], [cdr("1", source="import"), cdr("old", source="import")], WINDOW, now=LATER)
        assert (found.matched, found.differences, found.fairline_cdrs) == (1, 0, 0)

    def test_cdrs_imported_from_asterisk_are_compared_like_live_ones(self) -> None:
        found = reconcile([], [cdr("1", source="asterisk")], WINDOW, now=LATER)
        assert found.differences == 1

    def test_calls_the_dialplan_refused_before_fairline_are_counted_apart(self) -> None:
        refused = call("i", path=CallPath.REFUSED, did=None)
        found = reconcile([refused], [], WINDOW, now=LATER)
        assert (found.not_for_fairline, found.differences, found.asterisk_calls) == (1, 0, 0)

    def test_differences_are_listed_by_start(self) -> None:
        calls = [call(str(i), start=T0 + timedelta(seconds=10 - i)) for i in range(5)]
        found = reconcile(calls, [], WINDOW, now=LATER)
        assert [m.call.call_id for m in found.missing_in_fairline] == ["4", "3", "2", "1", "0"]

    @given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(-60, 60), st.booleans()), max_size=30))
    def test_every_call_of_the_window_is_matched_missing_on_one_side_or_unsettled(
        self, sides: list[tuple[bool, bool, int, bool]]
    ) -> None:
        w = Window(T0)
        now = T0 + timedelta(seconds=70)
        asterisk = [call(str(i), start=T0 + timedelta(seconds=s)) for i, (a, _, s, _) in enumerate(sides) if a]
        fairline = [cdr(str(i), start=T0 + timedelta(seconds=s), source="live" if live else "asterisk")
                    for i, (_, f, s, live) in enumerate(sides) if f]
        found = reconcile(asterisk, fairline, w, now=now)
        in_window = {str(i) for i, (a, f, s, _) in enumerate(sides) if (a or f) and s >= 0}
        listed = ([str(m.call.call_id) for m in found.missing_in_fairline]
                  + [m.cdr.call_id for m in found.missing_in_asterisk] + list(found.unsettled))
        assert len(listed) == len(set(listed))
        assert found.matched + len(listed) == len(in_window)
        assert set(listed) <= in_window
        both = {str(i) for i, (a, f, s, _) in enumerate(sides) if a and f and s >= 0}
        assert found.matched == len(both)


class TestNotImportableYet:
    """Issue 17: an import must not beat fairline's own, richer CDR, which may still wait in its spool."""

    def test_a_call_fairline_took_whose_cdr_waits_in_the_spool_is_not_imported(self) -> None:
        reason = not_importable_yet(call("node1-100.1"), {"node1-100.1": "cdrs.jsonl"})
        assert reason is not None and "(cdrs.jsonl)" in reason and "not in PostgreSQL yet" in reason

    def test_nor_one_set_aside_for_a_person(self) -> None:
        reason = not_importable_yet(call("100.1"), {"100.1": "dead-letter.jsonl"})
        assert reason is not None and "dead-letter.jsonl" in reason

    def test_nor_any_call_fairline_took_when_the_spool_cannot_be_read(self) -> None:
        reason = not_importable_yet(call("100.1"), None)
        assert reason is not None and "--spool-dir" in reason

    def test_a_call_fairline_took_and_never_wrote_is_imported(self) -> None:
        """It stopped before the call ended: Asterisk's record is all there is."""
        assert not_importable_yet(call("100.1"), {"100.2": "cdrs.jsonl"}) is None

    @pytest.mark.parametrize("path", [CallPath.FALLBACK, CallPath.REFUSED])
    def test_a_call_fairline_never_saw_is_imported_even_without_the_spool(self, path: CallPath) -> None:
        assert not_importable_yet(call("100.1", path=path), None) is None


class TestNodes:
    def test_a_file_speaks_for_the_nodes_its_call_ids_name(self) -> None:
        assert nodes([call("node1-100.1"), call("node1-100.2"), call("a-b-100.4")]) == {"node1", "a-b", ""}

    def test_cdrs_that_name_no_node_are_compared_with_every_file(self) -> None:
        """Calls from before systemname was set, or stored by hand: they could be any node's."""
        assert nodes([call("node1-100.1")]) == {"node1", ""}


class TestImportFromAsterisk:
    DIRECTORY: ClassVar[dict[str, DirectoryEntry]] = {"+31201230006": DirectoryEntry("acme", NumberType.LOCAL),
                 "+318001234567": DirectoryEntry("acme", NumberType.TOLLFREE)}

    def test_an_answered_fallback_call_is_priced_as_an_import_and_marked_as_from_asterisk(self) -> None:
        start = datetime(2026, 11, 23, 17, 59, 30, tzinfo=UTC)  # 18:59:30 in Amsterdam: peak, then off-peak
        c = AsteriskCall(call_id="1795622151.8", linkedid="1795622151.8", channel="PJSIP/carrier-in-00000008",
                         did="+318001234567", caller="+31612345678", started_at=start,
                         answered_at=start + timedelta(seconds=10), ended_at=start + timedelta(seconds=100),
                         disposition="ANSWERED", path=CallPath.FALLBACK, dialled=True)
        rated = asterisk_cdr(c, self.DIRECTORY, RATES)
        assert (rated.source, rated.customer_id, rated.number_type) == ("asterisk", "acme", NumberType.TOLLFREE)
        assert (rated.call.call_id, rated.call.did, rated.call.caller) == ("1795622151.8", "+318001234567",
                                                                           "+31612345678")
        assert (rated.call.started_at, rated.call.answered_at, rated.call.ended_at) == (
            start, start + timedelta(seconds=10), start + timedelta(seconds=100))
        assert (rated.call.disposition, rated.call.hangup_cause) == (Disposition.ANSWERED, None)
        assert (rated.price.billable_seconds, rated.price.peak_seconds, rated.price.offpeak_seconds) == (90, 20, 70)
        assert rated.price.list_price_eur == Decimal("0.1217")
        assert rated.rating_error is None
        assert rated.billing_month == date(2026, 11, 1)

    def test_a_number_in_another_form_is_found_under_its_e164(self) -> None:
        rated = asterisk_cdr(call(did="31201230006", answered=True), self.DIRECTORY, RATES)
        assert (rated.call.did, rated.customer_id) == ("+31201230006", "acme")

    def test_a_number_not_in_the_directory_is_not_in_service_and_costs_nothing(self) -> None:
        rated = asterisk_cdr(call(did="+31209999999", path=CallPath.REFUSED, disposition="FAILED"),
                             self.DIRECTORY, RATES)
        assert (rated.customer_id, rated.number_type, rated.call.disposition) == (None, None, Disposition.UNALLOCATED)
        assert (rated.call.did, rated.price.list_price_eur, rated.source) == ("+31209999999", Decimal(0), "asterisk")

    def test_a_did_that_is_no_number_is_kept_as_dialled(self) -> None:
        rated = asterisk_cdr(call(did="+1:x", path=CallPath.REFUSED), self.DIRECTORY, RATES)
        assert (rated.call.did, rated.call.disposition) == ("+1:x", Disposition.UNALLOCATED)

    @pytest.mark.parametrize(("answered", "disposition", "dialled", "expected"), [
        (True, "ANSWERED", True, Disposition.ANSWERED),
        (True, "ANSWERED", False, Disposition.ANSWERED),  # an announcement-only number in the fallback
        (False, "BUSY", True, Disposition.BUSY),
        (False, "NO ANSWER", True, Disposition.NO_ANSWER),
        (False, "NO ANSWER", False, Disposition.ABANDONED),
        (False, "FAILED", True, Disposition.UNREACHABLE),
        (False, "CONGESTION", True, Disposition.UNREACHABLE),
        (False, "FAILED", False, Disposition.FAILED),  # the fallback's 503 for a number it has no route for
    ])
    def test_asterisks_disposition_becomes_fairlines(self, answered: bool, disposition: str, dialled: bool,
                                                     expected: Disposition) -> None:
        c = call(did="+31201230006", answered=answered, disposition=disposition, dialled=dialled)
        assert asterisk_cdr(c, self.DIRECTORY, RATES).call.disposition is expected

    def test_a_call_whose_record_does_not_show_the_number_cannot_be_imported(self) -> None:
        with pytest.raises(NotImportable, match="does not show the number dialled"):
            asterisk_cdr(call(did=None), self.DIRECTORY, RATES)

    @pytest.mark.parametrize(("did", "expected"), [
        ("+31201230006", "+31201230006"), ("31201230006", "+31201230006"), (" +31 20 123 0006", "+31201230006"),
        ("0123", None), ("+1:x", None), ("", None),
    ])
    def test_e164(self, did: str, expected: str | None) -> None:
        assert e164(did) == expected


# ------------------------------------------------------------------ the command


def parser(load_rates: billing_cli.RatesLoader | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairline")
    reconcile_cli.register(p.add_subparsers(dest="command", required=True), load_rates=load_rates)
    return p


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


class TestArguments:
    def test_help_names_the_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            parser(load_rates=lambda path: RATES).parse_args(["reconcile", "--help"])
        out = capsys.readouterr().out
        for option in ("--since", "--until", "--asterisk-cdr", "--database-url", "--settle", "--json", "--import",
                       "--config"):
            assert option in out

    @pytest.mark.parametrize(("text", "expected"), [
        ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
        ("2026-11-25T14:00", datetime(2026, 11, 25, 14, tzinfo=UTC)),
        ("2026-11-25 14:00:00Z", datetime(2026, 11, 25, 14, tzinfo=UTC)),
        ("2026-11-25T14:00:00+01:00", datetime(2026, 11, 25, 13, tzinfo=UTC)),
    ])
    def test_since_is_an_iso_date_or_time_in_utc_without_an_offset(self, text: str, expected: datetime) -> None:
        args = parser().parse_args(["reconcile", "--since", text])
        assert args.since == expected
        assert args.since.utcoffset() == timedelta(0)
        assert (args.until, args.settle, args.json, args.import_missing) == (None, SETTLE, False, False)

    @pytest.mark.parametrize("text", ["yesterday", "25-11-2026", "2026-11-25T25:00", ""])
    def test_a_bad_time_is_refused(self, text: str, capsys: pytest.CaptureFixture[str]) -> None:
        err = usage_error(capsys, "reconcile", "--since", text)
        assert "argument --since: expected an ISO 8601 date or time" in err

    @pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("2.5", 2.5), ("86400", 86400)])
    def test_settle_is_seconds(self, text: str, seconds: float) -> None:
        args = parser().parse_args(["reconcile", "--since", "2026-11-25", "--settle", text])
        assert args.settle == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["-1", "86401", "nan", "soon"])
    def test_a_bad_settle_margin_is_refused(self, text: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert "argument --settle: expected seconds from 0 to 86400" in usage_error(
            capsys, "reconcile", "--since", "2026-11-25", f"--settle={text}")

    def test_config_is_offered_only_when_the_program_can_load_one(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert "unrecognized arguments: --config" in usage_error(
            capsys, "reconcile", "--since", "2026-11-25", "--config", "f.yaml")


class TestCommandErrors:
    def run(self, capsys: pytest.CaptureFixture[str], *argv: str,
            load_rates: billing_cli.RatesLoader | None = None) -> tuple[int, str]:
        args = parser(load_rates).parse_args(["reconcile", *argv])
        fill_from_environment(args, os.environ)  # as fairline's composition root does
        status = args.fn(args)
        return status, capsys.readouterr().err

    def test_until_before_since_is_bad_input(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        status, err = self.run(capsys, "--since", "2026-11-25", "--until", "2026-11-24",
                               "--asterisk-cdr", str(tmp_path / "x"))
        assert status == 2
        assert "must be after --since" in err

    def test_without_a_file_the_command_says_how_to_give_one(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("FAIRLINE_ASTERISK_CDR", raising=False)
        assert self.run(capsys, "--since", "2026-11-25") == (
            2, "fairline: no Asterisk CDR file given: use --asterisk-cdr FILE or set FAIRLINE_ASTERISK_CDR\n")

    def test_a_missing_file_is_bad_input(self, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FAIRLINE_ASTERISK_CDR", str(tmp_path / "nope.csv"))
        assert self.run(capsys, "--since", "2026-11-25") == (
            2, f"fairline: cannot read {tmp_path / 'nope.csv'}: No such file or directory\n")

    def test_a_file_in_another_format_is_bad_input_with_the_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        path = tmp_path / "Master.csv"
        path.write_text(line() + '"","+31612345678","+31201234567","from-carrier"\n')
        status, err = self.run(capsys, "--since", "2026-11-25", "--asterisk-cdr", str(path))
        assert status == 2
        assert err.startswith(f"fairline: {path}: line 2: expected 15 fields starting with 'fairline-cdr-1'")

    def test_without_a_database_the_command_says_how_to_give_one(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        path = tmp_path / "fairline-cdr.csv"
        path.write_text(RECORDED)
        assert self.run(capsys, "--since", "2026-11-25", "--asterisk-cdr", str(path)) == (
            2, "fairline: no database given: use --database-url URL or set DATABASE_URL\n")

    def test_a_bad_tariff_file_is_bad_input_when_importing(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def refuse(path: Path) -> RateTable:
            raise ValueError(f"{path}:3: tariff[0].setup_eur: expected a decimal")

        path = tmp_path / "fairline-cdr.csv"
        path.write_text(RECORDED)
        assert self.run(capsys, "--since", "2026-11-25", "--asterisk-cdr", str(path), "--import",
                        "--config", "f.yaml", "--database-url", "postgresql://h/db", load_rates=refuse) == (
            2, "fairline: f.yaml:3: tariff[0].setup_eur: expected a decimal\n")


def sample() -> tuple[Reconciliation, list[object]]:
    lost = call("1795622151.8", path=CallPath.FALLBACK, did="+31201230006", answered=True, dialled=True)
    ghost = cdr("1795622200.3", start=T0 + timedelta(minutes=2))
    found = reconcile([lost, call("1")], [cdr("1"), ghost], Window(T0 - timedelta(minutes=1)), now=LATER)
    return found, [lost, ghost]


class TestOutput:
    def test_the_table_lists_each_side_with_reasons(self) -> None:
        found, _ = sample()
        out = io.StringIO()
        reconcile_cli.write_table(out, found, [], [])
        assert out.getvalue().splitlines() == [
            "Calls started 2026-11-25 14:59:00 .. now UTC: Asterisk 2, fairline 2, in both 1",
            "",
            "missing in fairline: 1",
            "call id       started (UTC)        number        caller        Asterisk  reason",
            ("1795622151.8  2026-11-25 15:00:00  +31201230006  +31612345678  ANSWERED  fairline was not connected: "
             "the dialplan fallback (fairline-fallback) served the call"),
            "",
            "missing in Asterisk: 1",
            "call id       started (UTC)        number        source  reason",
            "1795622200.3  2026-11-25 15:02:00  +31201234567  live    Asterisk's CDR file has no record of this channel",
            "",
            "1 missing in fairline, 1 missing in Asterisk",
        ]

    def test_no_differences_says_so(self) -> None:
        found = reconcile([call("1")], [cdr("1")], Window(T0, T0 + timedelta(hours=1)), now=T0)
        out = io.StringIO()
        reconcile_cli.write_table(out, found, [], [])
        assert out.getvalue() == ("Calls started 2026-11-25 15:00:00 .. 2026-11-25 16:00:00 UTC: Asterisk 1, "
                                  "fairline 1, in both 1\nno differences\n")

    def test_unsettled_calls_are_mentioned(self) -> None:
        found = reconcile([call("1")], [], WINDOW, now=T0 + timedelta(seconds=6))
        out = io.StringIO()
        reconcile_cli.write_table(out, found, [], [])
        assert "1 on one side only ended after 2026-11-25 14:59:56 UTC: compared next time\n" in out.getvalue()

    def test_imports_are_listed_before_the_comparison_after_them(self) -> None:
        found, [lost, _] = sample()
        assert isinstance(lost, AsteriskCall)
        rated = asterisk_cdr(lost, {"+31201230006": DirectoryEntry("acme", NumberType.LOCAL)}, RATES)
        out = io.StringIO()
        reconcile_cli.write_table(out, found, [rated], [("1795622112.1", "call 1795622112.1: no number")])
        lines = out.getvalue().splitlines()
        assert lines[0] == "imported 1795622151.8: +31201230006 answered, 4 s, 0.0447 EUR (source asterisk)"
        assert lines[1] == "not imported 1795622112.1: call 1795622112.1: no number"

    def test_json_has_both_sides_and_the_window(self) -> None:
        found, _ = sample()
        out = io.StringIO()
        reconcile_cli.write_json(out, found, None, [])
        doc = json.loads(out.getvalue())
        assert doc["since"] == "2026-11-25T14:59:00+00:00"
        assert doc["until"] is None
        assert (doc["asterisk_calls"], doc["fairline_cdrs"], doc["matched"], doc["unsettled"]) == (2, 2, 1, [])
        assert doc["missing_in_fairline"] == [{
            "call_id": "1795622151.8", "linkedid": "1795622151.8", "channel": "PJSIP/carrier-in-00000001",
            "did": "+31201230006", "caller": "+31612345678", "started_at": "2026-11-25T15:00:00+00:00",
            "answered_at": "2026-11-25T15:00:01+00:00", "ended_at": "2026-11-25T15:00:05+00:00",
            "asterisk_disposition": "ANSWERED", "path": "fallback",
            "reason": "fairline was not connected: the dialplan fallback (fairline-fallback) served the call"}]
        assert doc["missing_in_asterisk"] == [{
            "call_id": "1795622200.3", "did": "+31201234567", "started_at": "2026-11-25T15:02:00+00:00",
            "ended_at": "2026-11-25T15:02:05+00:00", "source": "live",
            "reason": "Asterisk's CDR file has no record of this channel"}]
        assert "imported" not in doc

    def test_json_after_import_lists_what_was_imported(self) -> None:
        found, [lost, _] = sample()
        assert isinstance(lost, AsteriskCall)
        rated = asterisk_cdr(lost, {}, RATES)
        out = io.StringIO()
        reconcile_cli.write_json(out, found, [rated], [("x", "why")])
        doc = json.loads(out.getvalue())
        assert doc["imported"] == [{"call_id": "1795622151.8", "did": "+31201230006", "disposition": "answered",
                                    "customer_id": None, "billable_seconds": 0, "list_price_eur": "0.0000",
                                    "rating_error": None}]
        assert doc["not_imported"] == [{"call_id": "x", "reason": "why"}]

    def test_times_with_an_offset_print_in_utc(self) -> None:
        cet = timezone(timedelta(hours=1))
        found = reconcile([], [], Window(datetime(2026, 11, 25, 16, tzinfo=cet)), now=LATER)
        out = io.StringIO()
        reconcile_cli.write_table(out, found, [], [])
        assert out.getvalue().startswith("Calls started 2026-11-25 15:00:00 .. now UTC")
