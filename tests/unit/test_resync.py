"""After a reconnect (issue 17): what a call missed is derived from what Asterisk shows, and fed to its flow,
so no caller waits in silence for an event that was lost; a call that ended unseen gets its true end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ari_app.config.yaml_loader import parse
from ari_app.core import flow, resync
from ari_app.core.events import CallDestroyed, CallLeft, CallStarted, DialReturned, PlaybackDone
from ari_app.core.flow import Call
from ari_app.runtime.resync import ends_in_cdr_file
from rating.core.reconcile import ASTERISK_CDR_FIELDS, ASTERISK_CDR_FORMAT

CONFIG = parse((Path(__file__).resolve().parents[2] / "tests" / "e2e" / "fairline.yaml").read_text(), "e2e")
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
ID = "1765101600.17"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def run(*events: object) -> Call:
    call = Call(ID)
    for event in events:
        call, _ = flow.step(call, event, CONFIG)  # type: ignore[arg-type]
    return call


def started(did: str) -> CallStarted:
    return CallStarted(ID, at(0), did, "+31612345678", at(0), "Ring")


ANNOUNCING = run(started("+31201234567"))  # announcement-only: hello-world plays
DIALING = run(started("+31201230009"))  # rings a phone in the dialplan's Dial()
IN_DIAL = run(started("+31201230009"), CallLeft(ID, at(0.1)))  # handed over: in Dial()


def test_the_phases_hold_what_is_awaited() -> None:
    assert ANNOUNCING.phase is flow.Phase.ANNOUNCING and resync.awaited_playback(ANNOUNCING)
    assert DIALING.phase is flow.Phase.DIALING and resync.awaited_playback(DIALING) is None
    assert resync.agent_channel(run(started("+31201230009"))) is None


def test_an_announcement_that_ended_unseen_ends_as_if_seen() -> None:
    [done] = resync.missed(ANNOUNCING, resync.Seen(True, (), True, playback_over=True), at(20))
    assert done == PlaybackDone(ID, at(20), str(resync.awaited_playback(ANNOUNCING)), failed=False)
    after, actions = flow.step(ANNOUNCING, done, CONFIG)
    assert after.phase is flow.Phase.RELEASING and actions  # the caller is released, not left in silence


def test_an_announcement_still_playing_is_left_to_play() -> None:
    assert resync.missed(ANNOUNCING, resync.Seen(True, (), True, playback_over=False), at(20)) == []


def test_a_dial_that_returned_unseen_returns_now_with_its_status() -> None:
    seen = resync.Seen(True, ("dialed", "NOANSWER", "+31201230009"), answered=False)
    [returned] = resync.missed(IN_DIAL, seen, at(9))
    assert returned == DialReturned(ID, at(9), "NOANSWER", "+31201230009", "+31612345678", at(0), False)
    after, actions = flow.step(IN_DIAL, returned, CONFIG)
    assert after.phase is flow.Phase.ANNOUNCING  # the route's no_answer: vm-nobodyavail, then the release


def test_a_hand_over_and_return_both_missed_are_fed_in_order() -> None:
    seen = resync.Seen(True, ("dialed", "BUSY", "+31201230009"), answered=False)
    events = resync.missed(DIALING, seen, at(9))
    assert [type(e) for e in events] == [CallLeft, DialReturned]
    call = DIALING
    for event in events:
        call, _ = flow.step(call, event, CONFIG)
    assert call.phase is flow.Phase.ANNOUNCING


def test_a_call_still_in_dial_misses_only_its_hand_over() -> None:
    in_dial = resync.Seen(False, (), answered=False)
    assert resync.missed(DIALING, in_dial, at(1)) == [CallLeft(ID, at(1))]
    assert resync.missed(IN_DIAL, in_dial, at(1)) == []


def test_stasis_args_name_only_our_app() -> None:
    assert resync.stasis_args("fairline,dialed,ANSWER,+31201230009", "fairline") == ("dialed", "ANSWER", "+31201230009")
    assert resync.stasis_args("other,dialed", "fairline") is None
    assert resync.stasis_args("fairline", "fairline") == ()


def test_a_call_ended_unseen_with_an_estimated_end_says_so_in_its_cdr() -> None:
    _, actions = flow.step(ANNOUNCING, CallDestroyed(ID, at(7), None, estimated=True), CONFIG)
    [cdr] = [a.record for a in actions if isinstance(a, flow.WriteCdr)]
    assert cdr.ended_at == at(7) and cdr.end_estimated
    _, actions = flow.step(ANNOUNCING, CallDestroyed(ID, at(7), 16), CONFIG)
    assert not [a.record for a in actions if isinstance(a, flow.WriteCdr)][0].end_estimated


def cdr_line(uniqueid: str, end: float, sequence: int = 1) -> str:
    fields = dict.fromkeys(ASTERISK_CDR_FIELDS, "")
    fields.update({ASTERISK_CDR_FIELDS[0]: ASTERISK_CDR_FORMAT, "uniqueid": uniqueid, "linkedid": uniqueid,
                   "sequence": str(sequence), "start": f"{end - 30:.6f}", "answer": "0", "end": f"{end:.6f}",
                   "disposition": "ANSWERED"})
    return ",".join(f'"{fields[name]}"' for name in ASTERISK_CDR_FIELDS) + "\n"


def test_the_end_of_a_call_is_read_from_the_tail_of_asterisks_cdr_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fairline-cdr.csv"
    end = at(42).timestamp()
    path.write_text(cdr_line("old", end - 100) * 200 + cdr_line(ID, end - 5, 1) + cdr_line(ID, end, 2)
                    + cdr_line("other", end))
    monkeypatch.setattr("ari_app.runtime.resync.TAIL_BYTES", 1000)  # only the last lines are read
    assert ends_in_cdr_file(path, {ID, "missing"}) == {ID: at(42)}
    assert ends_in_cdr_file(tmp_path / "none.csv", {ID}) == {}


def test_a_dial_return_fed_after_a_reconnect_and_then_delivered_is_dropped_once() -> None:
    """Dial() returned between the reconnect and the look at the channel: Asterisk delivers it too."""
    from ari_app.runtime.resync import Resync

    fed: list[object] = []
    r = Resync(None, None, queues=None, calls=list, feed=fed.append, asterisk_cdr=None)  # type: ignore[arg-type]
    returned = DialReturned(ID, at(9), "BUSY", "+31201230002", "+31612345678", at(0), False)
    r.returned.add(ID)
    next_step = run(started("+31201230002"))  # sequential: the next phone's Dial() has not begun
    assert isinstance(next_step.state, flow.Dialing) and not next_step.state.in_dialplan
    assert r.stale(returned, next_step) is True
    assert r.stale(returned, next_step) is False  # once only
    r.returned.add(ID)
    in_dial = run(started("+31201230002"), CallLeft(ID, at(0.1)))  # its Dial() began: a return is its own
    assert r.stale(returned, in_dial) is False
