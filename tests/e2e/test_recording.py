"""Consent-aware recording with real SIP and real audio: sipp callers from several countries call a
recorded Dutch number (+31201230017) whose Dutch phone answers after 1 s.

The callers play sipp's G.711 speech (6.4 s) once answered; a caller asked for consent presses
1 or 2 as RFC 2833 DTMF, or nothing. The configuration makes Italy `forbidden`. What is checked:
the CDR and the recordings row (mode, evidence), the file (present, private, hash) and its audio
(sox: length and loudness).
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCENARIOS, LiveStack

pytestmark = pytest.mark.e2e

RECORDED = "+31201230017"
DUTCH, BRITISH, GERMAN, ITALIAN = "+31612345678", "+442071234567", "+4915123456789", "+393471234567"
PCAPS = Path("/usr/share/sip-tester")


def caller_scenario(live: LiveStack, name: str, *, talk_ms: int, key: str | None = None,
                    key_after_ms: int = 0) -> str:
    """The recorded caller's scenario; with `key`, it presses that key `key_after_ms` after the answer."""
    before = ""
    if key is not None:
        before = (f'<pause milliseconds="{key_after_ms}"/>\n  <nop><action><exec play_pcap_audio='
                  f'"{PCAPS / f"dtmf_2833_{key}.pcap"}"/></action></nop>\n  <pause milliseconds="500"/>')
    path: Path = live.stack.state_dir / f"uac_recorded_{name}.xml"
    path.write_text((SCENARIOS / "uac_recorded.xml").read_text()
                    .replace("[before_audio]", before).replace("[talk_ms]", str(talk_ms)))
    return str(path)


def only_cdr(live: LiveStack) -> dict[str, Any]:
    [row] = live.wait_cdrs(1, timeout=20)  # a recorded call's CDR waits for the stored file
    return row


def recording_row(live: LiveStack, call_id: str) -> dict[str, Any] | None:
    out = live.stack.psql("fairline", "SELECT coalesce(json_agg(r), '[]') FROM recordings r "
                                      f"WHERE call_id = '{call_id}'")
    rows = json.loads(out)
    return rows[0] if rows else None


def sox_stat(path: Path) -> dict[str, float]:
    """Length in seconds and RMS amplitude (0 for silence, up to 1) as sox measures them."""
    out = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True, check=True).stderr
    found = dict(re.findall(r"^(Length \(seconds\)|RMS\s+amplitude):\s+([0-9.]+)$", out, re.M))
    return {"length": float(found["Length (seconds)"]), "rms": float(found["RMS     amplitude"])}


def assert_recorded(live: LiveStack, row: dict[str, Any], mode: str, expected_s: float) -> dict[str, Any]:
    assert (row["recorded"], row["recording_mode"], row["answered_target"]) == (True, mode, "+31612340171")
    rec = recording_row(live, row["call_id"])
    assert rec is not None and rec["mode"] == mode and rec["evidence"] == row["recording_evidence"]
    path = Path(rec["file"])
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
    audio = sox_stat(path)
    assert abs(audio["length"] - float(rec["duration_seconds"])) < 0.1
    assert abs(audio["length"] - expected_s) < 1.5, (audio, expected_s)
    assert audio["rms"] > 0.01, audio  # the caller's speech, not silence
    return rec


def assert_not_recorded(live: LiveStack, row: dict[str, Any], mode: str, why: str) -> None:
    assert (row["recorded"], row["recording_mode"], row["answered_target"]) == (False, mode, "+31612340171")
    assert why in row["recording_evidence"]
    assert recording_row(live, row["call_id"]) is None
    assert not list((live.stack.state_dir / "recordings").rglob(f"{row['call_id']}.wav"))


def seconds(row: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(row[end]) - datetime.fromisoformat(row[start])).total_seconds()


def test_a_dutch_caller_to_a_dutch_number_is_recorded_silently(live: LiveStack) -> None:
    result = live.call(RECORDED, caller_scenario(live, "dutch", talk_ms=7000), caller=DUTCH)
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    # Answered when the phone answered: recorded from then to the caller's hang-up.
    assert_recorded(live, row, "one_party", seconds(row, "answered_at", "ended_at"))
    assert "recorded without notice: a participant may record" in row["recording_evidence"]
    assert not [e for e in live.logs() if e.get("event") == "call.playing"]  # nothing was played to the caller


def test_a_caller_from_a_notify_country_hears_the_notice_before_being_connected(live: LiveStack) -> None:
    result = live.call(RECORDED, caller_scenario(live, "british", talk_ms=7000), caller=BRITISH)
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert_recorded(live, row, "notify", seconds(row, "answered_at", "ended_at"))
    [played] = [e for e in live.logs() if e.get("event") == "call.playing"]
    assert played["media"] == "sound:conf-now-recording"
    notice_end = re.search(r"notice played in full, ended (\S+)", row["recording_evidence"])
    assert notice_end is not None
    assert datetime.fromisoformat(notice_end[1]) <= datetime.fromisoformat(row["answered_at"])


def test_a_caller_from_a_consent_country_who_presses_1_is_recorded(live: LiveStack) -> None:
    # Answered for the prompt; presses 1 after 5 s; the phone answers 1 s later; hangs up 8 s after the key.
    result = live.call(RECORDED, caller_scenario(live, "german-1", talk_ms=8000, key="1", key_after_ms=5000),
                       caller=GERMAN)
    assert result.returncode == 0, result.stderr
    row = only_cdr(live)
    assert_recorded(live, row, "consent", 13.5 - 6.2)
    assert re.search(r"caller pressed 1 \(agreed\) at ", row["recording_evidence"])


@pytest.mark.parametrize(("key", "why"), [("2", "not recorded: caller pressed 2 (refused)"),
                                          (None, "not recorded: no digit within 5 s of the prompt")],
                         ids=["pressed-2", "pressed-nothing"])
def test_a_consent_country_caller_who_refuses_or_stays_silent_is_connected_unrecorded(
        live: LiveStack, key: str | None, why: str) -> None:
    result = live.call(RECORDED, caller_scenario(live, f"german-{key}", talk_ms=14000, key=key, key_after_ms=5000),
                       caller=GERMAN)
    assert result.returncode == 0, result.stderr
    assert_not_recorded(live, only_cdr(live), "consent", why)


def test_a_forbidden_case_is_never_recorded(live: LiveStack) -> None:
    result = live.call(RECORDED, caller_scenario(live, "italian", talk_ms=4000), caller=ITALIAN)
    assert result.returncode == 0, result.stderr
    assert_not_recorded(live, only_cdr(live), "forbidden", "not recorded: the law forbids it")
