"""The voicemails table on the stack's PostgreSQL: rows land with their CDRs, the outbox's claim and marks,
and retention (purge deletes mailed messages only, inside the recordings directory only)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from rating.core.cdr import CallRecord, Disposition, RatedCdr, RecordingFile, rate_record
from rating.core.tariff import DEFAULT_RATES, NumberType
from rating.storage import voicemails
from rating.storage.database import insert_cdrs

pytestmark = pytest.mark.e2e

ENDED = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


def message_cdr(call_id: str, file: Path) -> RatedCdr:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(file), "synth", "2", "sine", "300"],
                   check=True)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    message = RecordingFile(str(file), digest, ENDED - timedelta(seconds=2), ENDED, Decimal("2"))
    call = CallRecord(call_id, "+31201230401", "+31612345678", ENDED - timedelta(seconds=30),
                      ENDED - timedelta(seconds=10), ENDED, Disposition.ANSWERED, 16, voicemail=message)
    return rate_record(call, "e2e-voicemail", NumberType.LOCAL, DEFAULT_RATES)


def test_messages_land_with_their_cdrs_are_claimed_once_and_purged_only_once_mailed(scratch_database: str,
                                                                                   tmp_path: Path) -> None:
    """On a database of its own: the stack's fairline, which may be mailing, must not claim these rows."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cdrs = [message_cdr("vm-sent", recordings / "vm-sent-voicemail.wav"),
            message_cdr("vm-unsent", recordings / "vm-unsent-voicemail.wav"),
            message_cdr("vm-outside", outside / "vm-outside-voicemail.wav")]
    flags: list[asyncpg.Record] = []
    listed: list[str] = []

    async def work() -> tuple[set[str], set[str], tuple[voicemails.Voicemail, ...], voicemails.Purge]:
        conn = await asyncpg.connect(scratch_database)
        try:
            new = await insert_cdrs(conn, cdrs)
            again = await insert_cdrs(conn, cdrs)  # a replayed spool doubles nothing
            now = datetime.now(UTC) + timedelta(seconds=1)  # the rows are due from their insert on
            claimed = await voicemails.claim_due(conn, now=now, lease_s=300, limit=10)
            assert await voicemails.claim_due(conn, now=now, lease_s=300, limit=10) == ()  # leased: once
            for call_id in ("vm-sent", "vm-outside"):
                await voicemails.mark_sent(conn, call_id, to=["office@voicemail.test"], now=now)
            await voicemails.mark_failed(conn, "vm-unsent", status="retrying", error="ConnectionRefusedError",
                                         to=["office@voicemail.test"], next_attempt_at=now + timedelta(seconds=10))
            done = await voicemails.purge(conn, ended_before=now, now=now, recordings_dir=recordings)
            flags.extend(await conn.fetch("SELECT call_id, voicemail FROM cdrs"))
            listed.extend(f"{r[0]}|{r[1]}|{r[2]}|{r[3]}" for r in await conn.fetch(
                "SELECT call_id, email_status, email_attempts, purged_at IS NOT NULL FROM voicemails ORDER BY call_id"))
            return new, again, claimed, done
        finally:
            await conn.close()

    new, again, claimed, done = asyncio.run(work())
    assert new == {"vm-sent", "vm-unsent", "vm-outside"} and again == set()
    assert sorted(v.call_id for v in claimed) == ["vm-outside", "vm-sent", "vm-unsent"]
    assert all(v.email_status == "pending" and v.customer_id == "e2e-voicemail" for v in claimed)
    assert [v.call_id for v in done.purged] == ["vm-sent"]
    assert [v.call_id for v in done.unsent] == ["vm-unsent"]
    assert [v.call_id for v, _ in done.failed] == ["vm-outside"]
    assert not (recordings / "vm-sent-voicemail.wav").exists()
    assert (recordings / "vm-unsent-voicemail.wav").exists() and (outside / "vm-outside-voicemail.wav").exists()
    assert len(flags) == 3 and all(r["voicemail"] for r in flags)  # the CDRs say a message was left, purged or not
    assert listed == ["vm-outside|sent|1|False", "vm-sent|sent|1|True", "vm-unsent|retrying|1|False"]
