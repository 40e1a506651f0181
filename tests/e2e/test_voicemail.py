"""Voicemail with real SIP, real audio, PostgreSQL and a real SMTP server on loopback (aiosmtpd), issue 18.

+31201230401 rings a phone that never answers for 2 s, then takes a message for customer e2e-voicemail;
+31201230402 goes straight to the box of e2e-voicemail-short (messages of at most 3 s). The caller plays
sipp's G.711 speech once answered, and hangs up (or is hung up on). fairline mails through the SMTP server
this module runs on a port of its own: no server listening is "SMTP down"; one that answers 550 refuses.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.e2e.conftest import SCENARIOS, LiveStack, poll

pytestmark = pytest.mark.e2e

NOBODY_ANSWERS = "+31201230401"
SHORT_BOX = "+31201230402"
SENDER = "voicemail@fairline.test"
PCAP = "/usr/share/sip-tester/g711a.pcap"


class Inbox:
    """An SMTP server's handler: keeps what it takes, or refuses every recipient with 550."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture(scope="module")
def smtp_port(live_stack: LiveStack) -> Iterator[int]:
    """fairline restarted with its SMTP settings pointing at a free loopback port (nothing listens yet)."""
    import stack as stackmod  # asterisk-docker/, on the path through conftest

    port = stackmod.free_port()
    values = {"FAIRLINE_SMTP_HOST": "127.0.0.1", "FAIRLINE_SMTP_PORT": str(port), "FAIRLINE_SMTP_FROM": SENDER}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    s = live_stack.stack
    try:
        if s.fairline is not None and s.fairline.poll() is None:
            s.fairline.terminate()
            s.fairline.wait(timeout=30)
        s.start_fairline()
        yield port
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def smtp_server(port: int, inbox: Inbox) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def caller(live: LiveStack, name: str, *, talk_ms: int, quiet_ms: int = 0) -> str:
    """A caller who, once answered, listens `quiet_ms`, then speaks (6.4 s) while staying `talk_ms`, and hangs up.

    (Asterisk ends a recording that gets no audio frame at all for 4 s: the speech must come after the greeting.)
    """
    path: Path = live.stack.state_dir / f"uac_voicemail_{name}.xml"
    path.write_text((SCENARIOS / "uac_recorded.xml").read_text()
                    .replace("[before_audio]", f'<pause milliseconds="{quiet_ms}"/>' if quiet_ms else "")
                    .replace("[talk_ms]", str(talk_ms)))
    return str(path)


def caller_hung_up_on(live: LiveStack) -> str:
    """A caller who plays speech once answered and talks on until fairline hangs up."""
    recorded = (SCENARIOS / "uac_recorded.xml").read_text().replace("[before_audio]", "")
    answered = (SCENARIOS / "uac_answered.xml").read_text()
    head = recorded[:recorded.index('<pause milliseconds="[talk_ms]"/>')]
    tail = answered[answered.index('<recv request="BYE"/>'):]
    path: Path = live.stack.state_dir / "uac_voicemail_hung_up_on.xml"
    path.write_text(head + tail)
    return str(path)


def voicemail_rows(live: LiveStack) -> list[dict[str, Any]]:
    out = live.stack.psql("fairline", "SELECT coalesce(json_agg(v ORDER BY started_at), '[]') FROM voicemails v")
    return list(json.loads(out))


def wait_row(live: LiveStack, check: Any, timeout: float = 60) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def ready() -> bool:
        found[:] = voicemail_rows(live)
        return len(found) == 1 and bool(check(found[0]))

    assert poll(ready, timeout=timeout), f"voicemails: {found}"
    return found[0]


def sox_seconds(path: Path) -> float:
    return float(subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def fairline_list(live: LiveStack) -> str:
    exe = Path(sys.executable).parent / "fairline"
    done = subprocess.run([str(exe), "voicemail", "list"], capture_output=True, text=True, timeout=60,
                          env=live.stack.fairline_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_call_nobody_answers_leaves_a_message_mailed_with_its_wav(live: LiveStack, smtp_port: int,
                                                                     tmp_path: Path) -> None:
    inbox = Inbox()
    server = smtp_server(smtp_port, inbox)
    try:
        result = live.call(NOBODY_ANSWERS, caller(live, "mailed", quiet_ms=6000, talk_ms=4000), caller="+31612345401", timeout=60)
        assert result.returncode == 0, result.stderr
        [cdr] = live.wait_cdrs(1, timeout=30)
        row = wait_row(live, lambda r: r["email_status"] == "sent")
        assert poll(lambda: len(inbox.messages) == 1, timeout=10)
    finally:
        server.stop()

    assert cdr["voicemail"] is True and cdr["disposition"] == "answered" and cdr["caller"] == "+31612345401"
    assert row["call_id"] == cdr["call_id"] and row["email_attempts"] == 1 and row["last_error"] is None
    assert sorted(row["emailed_to"]) == ["boss@voicemail.test", "office@voicemail.test"]
    stored = Path(row["file"])
    assert stored.name == f"{cdr['call_id']}-voicemail.wav"
    assert stored.parent.parent.parent == live.stack.state_dir / "recordings"  # beside the call recordings
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == row["sha256"]

    [(recipients, message)] = inbox.messages
    assert sorted(recipients) == ["boss@voicemail.test", "office@voicemail.test"]
    assert message["From"] == SENDER and NOBODY_ANSWERS in message["Subject"] and "+31612345401" in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    wav = tmp_path / "attached.wav"
    wav.write_bytes(attachment.get_content())
    assert hashlib.sha256(wav.read_bytes()).hexdigest() == row["sha256"]  # the message as stored, whole
    seconds = sox_seconds(wav)
    # The caller hung up mid-message, while speaking (10 s after the answer, the greeting took about 6 s):
    # what they said after the beep is all there.
    assert abs(seconds - float(row["duration_seconds"])) < 0.01
    assert 2.0 < seconds < 6.0, seconds


def test_a_message_ends_at_its_length_and_the_caller_hears_it_saved(live: LiveStack, smtp_port: int) -> None:
    inbox = Inbox()
    server = smtp_server(smtp_port, inbox)
    try:
        result = live.call(SHORT_BOX, caller_hung_up_on(live), caller="+31612345402", timeout=60)
        assert result.returncode == 0, result.stderr  # fairline hung up after "your message has been saved"
        row = wait_row(live, lambda r: r["email_status"] == "sent")
    finally:
        server.stop()
    # Ended by the box's 3 s, not by the caller, who would talk on: Asterisk counts the length on its own
    # clock, so frames it had buffered on a loaded machine can add a little.
    assert 2.5 <= float(row["duration_seconds"]) < 6.0
    played = [e.get("media") for e in live.logs() if e.get("event") == "call.playing"]
    assert "sound:vm-msgsaved" in played


def test_smtp_down_then_up_mails_the_message_later(live: LiveStack, smtp_port: int) -> None:
    result = live.call(NOBODY_ANSWERS, caller(live, "down", talk_ms=9000), caller="+31612345403", timeout=60)
    assert result.returncode == 0, result.stderr
    retrying = wait_row(live, lambda r: r["email_status"] == "retrying" and r["email_attempts"] >= 1)
    assert "Connection refused" in retrying["last_error"] or "ConnectionRefused" in retrying["last_error"]
    listed = fairline_list(live)
    assert retrying["call_id"] in listed and "retrying" in listed

    inbox = Inbox()
    server = smtp_server(smtp_port, inbox)
    try:
        sent = wait_row(live, lambda r: r["email_status"] == "sent", timeout=60)  # the first retry is 10 s on
        assert poll(lambda: len(inbox.messages) == 1, timeout=10)
    finally:
        server.stop()
    assert sent["email_attempts"] >= 2 and sent["sha256"] == retrying["sha256"]
    [(_, message)] = inbox.messages
    [attachment] = list(message.iter_attachments())
    assert hashlib.sha256(attachment.get_content()).hexdigest() == sent["sha256"]


def test_an_smtp_server_that_refuses_keeps_the_message_listed_as_failed(live: LiveStack, smtp_port: int) -> None:
    server = smtp_server(smtp_port, Inbox(refuse=True))
    try:
        result = live.call(NOBODY_ANSWERS, caller(live, "refused", talk_ms=9000), caller="+31612345404", timeout=60)
        assert result.returncode == 0, result.stderr
        failed = wait_row(live, lambda r: r["email_status"] == "failed")
    finally:
        server.stop()
    assert "550" in failed["last_error"] and failed["sent_at"] is None
    assert Path(failed["file"]).exists()  # kept, and tried again
    listed = fairline_list(live)
    assert failed["call_id"] in listed and "failed" in listed
