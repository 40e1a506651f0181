"""An uploaded greeting on the real stack: a customer uploads it in the console (in process, on the stack's
database), the running fairline applies the customer's version, writes the greeting from PostgreSQL, and
Asterisk plays it to a caller who reaches the voicemail box. The version before is put back afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import re
import wave
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from starlette.testclient import TestClient

from ari_app.config_versions import number_changes
from console import storage
from console.app import create_app
from console.core import passwords
from console.settings import ConsoleSettings
from rating.storage.config_store import newest_version, store_version
from tests.e2e.conftest import LiveStack, poll
from tests.e2e.test_console_db import PASSWORD, csrf_of, post_form
from tests.e2e.test_console_media_db import sox
from tests.e2e.test_voicemail import SHORT_BOX, caller_hung_up_on

pytestmark = pytest.mark.e2e

EMAIL = "greeting@short.example"
CUSTOMER = "e2e-voicemail-short"  # tests/e2e/fairline.yaml: SHORT_BOX's box, greeting `beep`
GREETING_S = 4.0


async def _account_and_newest(url: str) -> tuple[int, str]:
    conn = await asyncpg.connect(url)
    try:
        if await storage.account(conn, EMAIL) is None:
            await storage.add_account(conn, email=EMAIL, name="Greeting Test", role="customer", customer_id=CUSTOMER,
                                      password_hash=passwords.hash_password(PASSWORD), now=datetime.now().astimezone())
        newest = await newest_version(conn)
        assert newest is not None
        return newest.id, newest.content
    finally:
        await conn.close()


async def _put_back(url: str, content: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        newest = await newest_version(conn)
        assert newest is not None
        back = await store_version(conn, content=content, author="test", role="admin", reason="greeting test done",
                                   based_on=newest.id, changes=number_changes(newest.content, content))
        return back.name
    finally:
        await conn.close()


def _applied(live: LiveStack, version: str) -> bool:
    return any(e.get("event") == "config.applied" and e.get("version") == version for e in live.logs())


def test_an_uploaded_greeting_is_played_to_a_caller_reaching_voicemail(live: LiveStack, tmp_path: Path) -> None:
    s = live.stack
    _, before = asyncio.run(_account_and_newest(s.database_url))
    app = create_app(ConsoleSettings(s.database_url, greetings_dir=s.state_dir / "greetings"))
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        assert post_form(c, "/login", {"email": EMAIL, "password": PASSWORD}).status_code == 303
        upload = sox(tmp_path / "hello.wav", GREETING_S)
        r = c.post("/greeting", data={"csrf_token": csrf_of(c, "/greeting")},
                   files={"greeting": ("hello.wav", upload.read_bytes(), "audio/wav")})
        assert r.status_code == 303, r.text
        version = r.headers["location"].removeprefix("/greeting?saved=")
    try:
        assert poll(lambda: _applied(live, version), timeout=30), f"fairline did not apply {version}"
        content = s.psql("fairline", f"SELECT content FROM config_versions WHERE id = {int(version[1:])}")
        [sha] = re.findall(r"greeting_file: \S+/([0-9a-f]{64})\.wav", content)
        result = live.call(SHORT_BOX, caller_hung_up_on(live), caller="+31612345403", timeout=60)
        assert result.returncode == 0, result.stderr
        events = live.logs()
        played = [e for e in events if e.get("event") == "voicemail.greeting"]
        assert [e["media"] for e in played] == [f"recording:fairline-greeting-{sha[:16]}"]
        # Where Asterisk reads it: its recordings directory, the very bytes uploaded (converted) and stored.
        in_asterisk = s.asterisk_dir / "spool" / "recording" / f"fairline-greeting-{sha[:16]}.wav"
        assert hashlib.sha256(in_asterisk.read_bytes()).hexdigest() == sha
        with wave.open(str(in_asterisk)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (8000, 1, int(GREETING_S * 8000))
        # Asterisk played it through: the message was recorded only after the greeting's length (a greeting
        # Asterisk could not play ends at once). A lower bound: a loaded machine only makes it later.
        [recording] = [e for e in events if e.get("event") == "voicemail.recording"]
        waited = (datetime.fromisoformat(recording["timestamp"]) - datetime.fromisoformat(played[0]["timestamp"]))
        assert waited.total_seconds() >= GREETING_S - 0.5, waited
    finally:
        back = asyncio.run(_put_back(s.database_url, before))
        assert poll(lambda: _applied(live, back), timeout=30)
