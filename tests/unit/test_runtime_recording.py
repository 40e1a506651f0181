"""Recording at run time, with a fake ARI: the snoop and its recording are asked for when the target
answers, the finished file is moved into the recordings directory, and only then is the CDR submitted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
import wave
from pathlib import Path

from structlog.testing import capture_logs

from ari_app.config.jurisdictions import shipped_law
from ari_app.core.model import Config, Recording
from ari_app.errors import AriError
from ari_app.runtime.app import App, RecordingDirs
from ari_app.runtime.names import RECORDER_SUFFIX
from rating.core.cdr import RatedCdr
from rating.core.tariff import DEFAULT_RATES
from tests.unit.test_runtime import (
    CHANNEL,
    ROUTED_CONFIG,
    FakeAri,
    channel_event,
    feed,
    recorded,
    turn_until,
    workers_done,
)

RECORDER = f"{CHANNEL}{RECORDER_SUFFIX}"
SNOOP = ("POST", f"/channels/{CHANNEL}/snoop", {"spy": "both", "whisper": "none", "app": "fairline",
                                                 "appArgs": "recording", "snoopId": RECORDER})
RECORD = ("POST", f"/channels/{RECORDER}/record", {"name": CHANNEL, "format": "wav", "ifExists": "overwrite",
                                                   "beep": "false", "terminateOn": "none"})
# The recorded call comes from a Dutch mobile to a Dutch number: recorded without notice.
RECORDING_ON = dataclasses.replace(ROUTED_CONFIG, recording=Recording(law=shipped_law()), customers={
    cid: dataclasses.replace(c, recording=True) for cid, c in ROUTED_CONFIG.customers.items()})


def dial_answered(timestamp: str) -> str:
    return json.dumps({"type": "Dial", "timestamp": f"2026-11-25T{timestamp}+0000", "dialstatus": "ANSWER",
                       "dialstring": "", "caller": {"id": CHANNEL}, "peer": {"id": "peer-1"}})


def dial_started(timestamp: str) -> str:
    return json.dumps({"type": "Dial", "timestamp": f"2026-11-25T{timestamp}+0000", "dialstatus": "",
                       "dialstring": "+31612345601@carrier-out", "caller": {"id": CHANNEL}, "peer": {"id": "peer-1"}})


def recorder_up(timestamp: str) -> str:
    [start] = [json.loads(m) for m in recorded(types=["StasisStart"])]
    start["channel"]["id"], start["args"] = RECORDER, ["recording"]
    start["timestamp"] = f"2026-11-25T{timestamp}+0000"
    return json.dumps(start)


def recording_finished(timestamp: str, kind: str = "RecordingFinished") -> str:
    return json.dumps({"type": kind, "timestamp": f"2026-11-25T{timestamp}+0000",
                       "recording": {"name": CHANNEL, "format": "wav", "state": "done",
                                     "target_uri": f"channel:{RECORDER}"}})


def write_wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x02" * int(8000 * seconds))


def app_recording(ari: FakeAri, tmp_path: Path, config: Config = RECORDING_ON) -> tuple[App, list[RatedCdr]]:
    submitted: list[RatedCdr] = []
    app = App(ari, config, DEFAULT_RATES, submitted.append,  # type: ignore[arg-type]
              recording_dirs=RecordingDirs(asterisk=tmp_path / "asterisk", store=tmp_path / "recordings"))
    return app, submitted


async def storing_done(app: App) -> None:
    """Storing runs in a thread: wait for it on the wall clock (bounded), not in event-loop turns."""
    if app._tasks:
        await asyncio.wait(set(app._tasks), timeout=10)


async def answered_call(app: App, ari: FakeAri) -> None:
    feed(app, recorded(types=["StasisStart"]))
    await turn_until(lambda: any(r[1].endswith("/continue") for r in ari.requests), "the call handed to Dial()")
    feed(app, [channel_event("StasisEnd", "13:17:15.870"), dial_started("13:17:15.900"),
               dial_answered("13:17:17.000")])
    await turn_until(lambda: SNOOP in ari.requests, "the snoop")


async def test_the_target_answering_starts_a_snoop_and_its_recording_once_it_is_in_the_app(tmp_path: Path) -> None:
    ari = FakeAri()
    app, _ = app_recording(ari, tmp_path)

    await answered_call(app, ari)
    assert RECORD not in ari.requests  # the snoop channel is not in the app yet
    feed(app, [recorder_up("13:17:17.010")])
    await turn_until(lambda: RECORD in ari.requests, "the recording")
    # The terms go on the recorder first (the caller's channel is in Dial(): ARI cannot set its variables).
    [terms] = [r for r in ari.requests if r[1] == f"/channels/{RECORDER}/variable"]
    assert terms[2] is not None and terms[2]["value"].startswith("one_party|")
    assert ari.requests.index(terms) < ari.requests.index(RECORD)
    assert not any(r[1] == f"/channels/{CHANNEL}/variable" and (r[2] or {}).get("variable") == "FAIRLINE_RECORDING"
                   for r in ari.requests)


async def test_the_cdr_is_submitted_once_the_file_is_stored_privately_with_its_hash(tmp_path: Path) -> None:
    ari = FakeAri()
    app, submitted = app_recording(ari, tmp_path)
    await answered_call(app, ari)
    feed(app, [recorder_up("13:17:17.010"), channel_event("ChannelDestroyed", "13:17:47.000", cause=16)])
    await turn_until(lambda: RECORD in ari.requests, "the recording")
    assert submitted == []  # waiting for the file

    write_wav(tmp_path / "asterisk" / f"{CHANNEL}.wav", 30)
    feed(app, [recording_finished("13:17:47.050")])
    await storing_done(app)
    await turn_until(lambda: bool(submitted), "the CDR")
    await workers_done(app)

    [cdr] = submitted
    stored = cdr.call.recording
    assert stored is not None and cdr.call.recording_mode == "one_party"
    path = Path(stored.path)
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(stored.duration_seconds) == "30.000"
    assert not (tmp_path / "asterisk" / f"{CHANNEL}.wav").exists()
    assert cdr.call.ended_at.isoformat().startswith("2026-11-25T13:17:47")


async def test_a_recording_that_cannot_be_stored_is_logged_loudly_and_the_cdr_says_why(tmp_path: Path) -> None:
    ari = FakeAri()
    app, submitted = app_recording(ari, tmp_path)
    await answered_call(app, ari)
    feed(app, [recorder_up("13:17:17.010"), channel_event("ChannelDestroyed", "13:17:47.000", cause=16)])

    with capture_logs() as logs:
        feed(app, [recording_finished("13:17:47.050")])  # but Asterisk's file is not there
        await storing_done(app)
        await turn_until(lambda: bool(submitted), "the CDR")

    [cdr] = submitted
    assert cdr.call.recorded is False
    assert cdr.call.recording_evidence is not None and "recording lost:" in cdr.call.recording_evidence
    assert [e["log_level"] for e in logs if e["event"] == "recording.not_stored"] == ["error"]


async def test_a_failing_snoop_leaves_the_call_connected_and_unrecorded(tmp_path: Path) -> None:
    ari = FakeAri(failures={SNOOP[:2]: AriError("POST", SNOOP[1], 500, "boom")})
    app, submitted = app_recording(ari, tmp_path)
    await answered_call(app, ari)

    feed(app, [channel_event("ChannelDestroyed", "13:17:47.000", cause=16)])
    await turn_until(lambda: bool(submitted), "the CDR")

    [cdr] = submitted
    assert cdr.call.recorded is False
    assert "could not start" in (cdr.call.recording_evidence or "")
    assert not any(r[0] == "DELETE" for r in ari.requests)  # nobody was hung up for it


async def test_without_a_recordings_directory_nothing_is_recorded_and_the_call_goes_on(tmp_path: Path) -> None:
    ari = FakeAri()
    submitted: list[RatedCdr] = []
    app = App(ari, RECORDING_ON, DEFAULT_RATES, submitted.append)  # type: ignore[arg-type]
    feed(app, recorded(types=["StasisStart"]))
    await turn_until(lambda: any(r[1].endswith("/continue") for r in ari.requests), "the call handed to Dial()")
    feed(app, [dial_started("13:17:15.900"), dial_answered("13:17:17.000"),
               channel_event("ChannelDestroyed", "13:17:47.000", cause=16)])
    await turn_until(lambda: bool(submitted), "the CDR")

    assert SNOOP not in ari.requests
    assert "recording is not set up" in (submitted[0].call.recording_evidence or "")
