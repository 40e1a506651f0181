"""Recordings, voicemails and greetings in the console, over HTTP against the real PostgreSQL (a scratch database
per test): real WAV files stored the way fairline stores them, served only to their owner while kept and intact,
every serving in the audit; greeting uploads checked, converted by sox, kept in the database and put in force by a
customer's configuration version that `fairline config check` accepts and a node writes to its own disk."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml
from starlette.testclient import TestClient

from ari_app.config_versions import number_changes
from ari_app.recording_store import store
from ari_app.runtime.config_watch import ConfigWatch
from console.app import create_app
from console.core.greeting_check import MAX_UPLOAD_BYTES
from console.core.sessions import SessionPolicy
from console.settings import ConsoleSettings
from rating.storage import greetings
from rating.storage.config_store import newest_version, store_version
from rating.storage.database import migrate
from tests.e2e.conftest import LiveStack
from tests.e2e.test_console_db import (CONFIG, PASSWORD, T0, Clock, Console, _prepare, csrf_of, enrol, fairline,
                                       post_form)

pytestmark = pytest.mark.e2e

BOX = """    voicemail:
      email: office@acme.example   # the front desk
"""
WITH_BOX = CONFIG.replace("    name: Acme BV\n", "    name: Acme BV\n" + BOX)


def sox(out: Path, seconds: float, *, rate: int = 44100, channels: int = 2) -> Path:
    """A real WAV made by sox: a 440 Hz tone."""
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), "-b", "16", str(out), "synth", str(seconds),
                    "sine", "440", "vol", "0.3"], check=True, capture_output=True, timeout=60)
    return out


@dataclass
class Media:
    console: Console
    tmp_path: Path
    files: dict[str, Path]  # key (kind:call_id) -> stored file

    @property
    def greetings_dir(self) -> Path:
        return self.tmp_path / "greetings"

    def client(self) -> TestClient:
        app = create_app(ConsoleSettings(self.console.url, clock=self.console.clock, greetings_dir=self.greetings_dir,
                                         sessions=SessionPolicy(idle=timedelta(minutes=30),
                                                                absolute=timedelta(hours=12))))
        return self.console.stack.enter_context(TestClient(app, base_url="https://testserver", follow_redirects=False))

    def sign_in(self, email: str = "ann@acme.example") -> TestClient:
        return self.console.sign_in(email, address_client=self.client())

    def media_audit(self) -> list[tuple[str, str]]:
        return [(r["event"], r["detail"]) for r in self.console.sql(
            "SELECT event, detail FROM console_audit WHERE event LIKE 'media%' OR event = 'greeting_uploaded' "
            "ORDER BY id")]


async def _store_media(url: str, tmp_path: Path) -> dict[str, Path]:
    """Real WAVs moved into a recordings directory by recording_store.store, as the runtime does, with their rows."""
    recordings = tmp_path / "recordings"
    files: dict[str, Path] = {}
    conn = await asyncpg.connect(url)
    try:
        await store_version(conn, content=WITH_BOX, author="test", role="admin", reason="a box for acme",
                            based_on=1, changes=number_changes(CONFIG, WITH_BOX))
        for kind, call_id, seconds in (("recording", "acme-call-001", 1.5), ("voicemail", "acme-call-002", 2.0),
                                       ("recording", "acme-call-004", 1.0), ("recording", "acme-call-005", 1.0),
                                       ("recording", "bolt-call-1", 1.0)):
            cdr = await conn.fetchrow("SELECT started_at, ended_at FROM cdrs WHERE call_id = $1", call_id)
            name = call_id + ("-voicemail" if kind == "voicemail" else "")
            stored = store(sox(tmp_path / f"{name}.wav", seconds, rate=8000, channels=1), recordings, name,
                           cdr["ended_at"])
            files[f"{kind}:{call_id}"] = Path(stored.path)
            if kind == "recording":
                await conn.execute("UPDATE cdrs SET recorded = true, recording_mode = 'one_party' WHERE call_id = $1",
                                   call_id)
                await conn.execute(
                    """INSERT INTO recordings (call_id, file, started_at, ended_at, duration_seconds, sha256, mode)
                       VALUES ($1, $2, $3, $4, $5, $6, 'one_party')""",
                    call_id, stored.path, stored.started_at, stored.ended_at, stored.duration_seconds, stored.sha256)
            else:
                await conn.execute("UPDATE cdrs SET voicemail = true WHERE call_id = $1", call_id)
                await conn.execute(
                    """INSERT INTO voicemails (call_id, file, started_at, ended_at, duration_seconds, sha256,
                                               email_status, sent_at)
                       VALUES ($1, $2, $3, $4, $5, $6, 'sent', $4)""",
                    call_id, stored.path, stored.started_at, stored.ended_at, stored.duration_seconds, stored.sha256)
        # acme-call-004 was purged as `fairline recordings purge` does; acme-call-005's file changed since.
        files["recording:acme-call-004"].unlink()
        await conn.execute("UPDATE recordings SET purged_at = $1 WHERE call_id = 'acme-call-004'", T0)
        files["recording:acme-call-005"].write_bytes(files["recording:acme-call-001"].read_bytes())
    finally:
        await conn.close()
    return files


MEDIA_DATABASE = "fairline_console_media"


async def _execute(url: str, statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statements)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def media_database(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path,
                                                                                                       dict[str, Path]]]:
    """One database and one set of files for the module (a scratch database per test would cost seconds each);
    `media` puts back what a test may change."""
    s = live_stack.stack
    s.psql("postgres", f"DROP DATABASE IF EXISTS {MEDIA_DATABASE} WITH (FORCE)")
    s.psql("postgres", f"CREATE DATABASE {MEDIA_DATABASE}")
    url = s.database_url.rsplit("/", 1)[0] + "/" + MEDIA_DATABASE
    tmp_path = tmp_path_factory.mktemp("media")

    async def prepared() -> dict[str, Path]:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        await _prepare(url)
        return await _store_media(url, tmp_path)

    files = asyncio.run(prepared())
    yield url, tmp_path, files
    s.psql("postgres", f"DROP DATABASE IF EXISTS {MEDIA_DATABASE} WITH (FORCE)")


@pytest.fixture
def media(media_database: tuple[str, Path, dict[str, Path]]) -> Iterator[Media]:
    url, tmp_path, files = media_database
    made = Media(Console(url, Clock()), tmp_path, files)
    asyncio.run(_execute(url, """DELETE FROM config_version_changes WHERE version_id > 2;
                        DELETE FROM config_versions WHERE id > 2;
                        SELECT setval(pg_get_serial_sequence('config_versions', 'id'), 2);
                        DELETE FROM greetings; DELETE FROM console_audit; DELETE FROM console_sessions;
                        UPDATE console_users SET totp_secret = NULL, totp_last_step = NULL"""))
    shutil.rmtree(made.greetings_dir, ignore_errors=True)
    with made.console.stack:
        yield made


class TestRecordings:
    def test_the_list_holds_the_customer_s_own_newest_first_and_says_what_was_deleted(self, media: Media) -> None:
        c = media.sign_in()
        page = c.get("/recordings", params={"from": "2026-12-01"})
        assert page.status_code == 200
        order = [k for k in ("acme-call-001", "acme-call-002", "acme-call-004", "acme-call-005") if k in page.text]
        assert order == ["acme-call-001", "acme-call-002", "acme-call-004", "acme-call-005"]
        assert page.text.index("acme-call-001") < page.text.index("acme-call-002")  # the newer call first
        assert '<audio controls preload="none" src="/recordings/recording/acme-call-001">' in page.text
        assert 'src="/recordings/voicemail/acme-call-002"' in page.text and "voicemail message" in page.text
        assert "deleted 2026-12-07 (retention period over)" in page.text
        assert 'src="/recordings/recording/acme-call-004"' not in page.text
        assert "bolt" not in page.text.lower()
        assert "media-src 'self'" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]

    def test_the_list_pages_by_keyset(self, media: Media) -> None:
        from console import media_pages
        c = media.sign_in()
        old = media_pages.PAGE_SIZE
        media_pages.PAGE_SIZE = 2
        try:
            first = c.get("/recordings", params={"from": "2026-12-01"})
            nxt = first.text.split('<a href="/recordings?')[1].split('"')[0].replace("&amp;", "&")
            second = c.get("/recordings?" + nxt)
        finally:
            media_pages.PAGE_SIZE = old
        assert "acme-call-001" in first.text and "acme-call-002" in first.text and "acme-call-004" not in first.text
        assert "acme-call-004" in second.text and "acme-call-005" in second.text and "acme-call-001" not in second.text

    def test_a_call_with_a_recording_links_to_it_from_my_calls(self, media: Media) -> None:
        page = media.sign_in().get("/calls", params={"from": "2026-12-01"})
        assert ('href="/recordings?number=%2B31201110002&amp;from=2026-12-07&amp;to=2026-12-07#recording-acme-call-001"'
                '>recording</a>') in page.text
        assert '#voicemail-acme-call-002">voicemail</a>' in page.text
        assert page.text.count(">recording</a>") == 3  # 001, 004 and 005

    def test_the_player_gets_the_file_in_ranges_and_a_download_is_an_attachment(self, media: Media) -> None:
        c = media.sign_in()
        stored = media.files["recording:acme-call-001"].read_bytes()
        whole = c.get("/recordings/recording/acme-call-001")
        assert whole.status_code == 200 and whole.content == stored
        assert whole.headers["content-type"] == "audio/wav"
        assert whole.headers["content-disposition"].startswith('inline; filename="recording-31201110002-')
        assert whole.headers["accept-ranges"] == "bytes"
        part = c.get("/recordings/recording/acme-call-001", headers={"Range": "bytes=100-199"})
        assert (part.status_code, part.content) == (206, stored[100:200])
        assert part.headers["content-range"] == f"bytes 100-199/{len(stored)}"
        down = c.get("/recordings/voicemail/acme-call-002", params={"download": "1"})
        assert down.status_code == 200 and down.content == media.files["voicemail:acme-call-002"].read_bytes()
        assert down.headers["content-disposition"].startswith('attachment; filename="voicemail-31201110001-')
        assert media.media_audit() == [("media_played", "recording:acme-call-001"),
                                       ("media_downloaded", "voicemail:acme-call-002")]

    def test_a_purged_or_changed_file_gets_a_message_never_a_file(self, media: Media) -> None:
        c = media.sign_in()
        purged = c.get("/recordings/recording/acme-call-004", params={"download": "1"})
        assert purged.status_code == 410 and "deleted on 2026-12-07" in purged.text
        assert purged.headers["content-type"].startswith("text/html")
        changed = c.get("/recordings/recording/acme-call-005")
        assert changed.status_code == 410 and "not as it was stored" in changed.text
        assert b"RIFF" not in changed.content
        events = media.media_audit()
        assert events[0] == ("media_refused", "recording:acme-call-004: purged")
        assert events[1][0] == "media_refused" and "changed since it was stored" in events[1][1]


class TestGreetingUpload:
    def upload(self, c: TestClient, name: str, content: bytes, mime: str = "audio/wav") -> object:
        token = csrf_of(c, "/greeting")
        return c.post("/greeting", data={"csrf_token": token}, files={"greeting": (name, content, mime)})

    def test_a_customer_s_greeting_is_converted_kept_and_played_by_a_version_they_made(self, media: Media) -> None:
        c = media.sign_in()
        assert "the standard greeting (vm-intro)" in c.get("/greeting").text
        original = sox(media.tmp_path / "hello.wav", 3.0)  # 44.1 kHz stereo, as a phone or PC records
        r = self.upload(c, "hello.wav", original.read_bytes())
        assert (r.status_code, r.headers["location"]) == (303, "/greeting?saved=v3")  # type: ignore[attr-defined]
        assert "saved as configuration version v3" in c.get("/greeting?saved=v3").text
        row = media.console.sql("SELECT author, role, reason, content FROM config_versions WHERE id = 3")[0]
        assert (row["author"], row["role"]) == ("ann@acme.example", "customer")
        box = next(x for x in yaml.safe_load(row["content"])["customers"] if x["id"] == "acme")["voicemail"]
        path = Path(box["greeting_file"])
        assert path.parent == media.greetings_dir.absolute() and "# the front desk" in row["content"]
        with wave.open(str(path)) as w:  # what Asterisk plays: 8 kHz, 16-bit, mono, 3 s
            assert (w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()) == (8000, 2, 1, 24000)
        stored = media.console.sql("SELECT sha256, customer_id, audio, uploaded_by FROM greetings")
        assert [(s["sha256"], s["customer_id"], s["uploaded_by"]) for s in stored] == [
            (path.stem, "acme", "ann@acme.example")]
        assert hashlib.sha256(stored[0]["audio"]).hexdigest() == path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "your own greeting" in c.get("/greeting").text
        assert media.media_audit() == [("greeting_uploaded", "v3: hello.wav (3.000 s)")]
        # `fairline config check` accepts the version as stored.
        exported = media.tmp_path / "v3.yaml"
        exported.write_text(row["content"])
        checked = fairline(media.console.url, "config", "check", str(exported))
        assert checked.returncode == 0, checked.stdout + checked.stderr

    def test_the_same_file_uploaded_twice_is_one_greeting_and_no_new_version(self, media: Media) -> None:
        c = media.sign_in()
        original = sox(media.tmp_path / "twice.wav", 2.0).read_bytes()
        assert self.upload(c, "twice.wav", original).headers["location"] == "/greeting?saved=v3"  # type: ignore[attr-defined]
        assert self.upload(c, "again.wav", original).headers["location"] == "/greeting?saved=v3"  # type: ignore[attr-defined]
        assert media.console.sql("SELECT count(*) FROM greetings")[0][0] == 1

    def test_a_node_without_the_file_writes_it_from_the_database_before_checking_the_version(
        self, media: Media
    ) -> None:
        import structlog
        c = media.sign_in()
        self.upload(c, "hello.wav", sox(media.tmp_path / "hello.wav", 2.0).read_bytes())
        path = next(media.greetings_dir.glob("*.wav"))
        path.unlink()  # another node: the console wrote the file on its own disk only
        applied: list[str] = []

        async def apply(_prepared: object, version: object) -> None:
            applied.append(version.name)  # type: ignore[attr-defined]

        async def catch_up() -> None:
            watch = ConfigWatch(media.console.url, fetch_newest=newest_version, apply=apply,  # type: ignore[arg-type]
                                spool_dir=media.tmp_path, running=None, log=structlog.get_logger(),
                                greetings_dir=media.greetings_dir.absolute())
            conn = await asyncpg.connect(media.console.url)
            try:
                await watch.catch_up(conn)
            finally:
                await conn.close()

        asyncio.run(catch_up())
        assert applied == ["v3"] and hashlib.sha256(path.read_bytes()).hexdigest() == path.stem

    @pytest.mark.parametrize(("name", "make", "message"), [
        ("greeting.wav", lambda tmp: b"Hello, this is not audio at all.\n" * 10,
         "not an audio file this console reads (whatever its name says)"),
        ("greeting.mp3", lambda tmp: b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 500, "an MP3 file"),
        ("broken.wav", lambda tmp: b"RIFF\x00\x10\x00\x00WAVEfmt " + b"\x07" * 4000,
         "not audio this console can read, though it starts like a WAV file"),
        ("long.wav", lambda tmp: sox(tmp / "long.wav", 75, rate=8000, channels=1).read_bytes(),
         "longer than 60 seconds"),
        ("big.wav", lambda tmp: b"RIFF" + b"\x00" * MAX_UPLOAD_BYTES, "the file is 12.0 MiB; at most 12 MiB"),
        ("empty.wav", lambda tmp: b"", "the file is empty"),
    ], ids=["text", "mp3", "broken-wav", "too-long", "too-big", "empty"])
    def test_a_bad_upload_is_refused_next_to_the_field_and_saves_nothing(self, media: Media, name: str,
                                                                         make: object, message: str) -> None:
        c = media.sign_in()
        r = self.upload(c, name, make(media.tmp_path))  # type: ignore[operator]
        assert r.status_code == 400  # type: ignore[attr-defined]
        text = r.text  # type: ignore[attr-defined]
        assert 'aria-invalid="true" aria-describedby="greeting-error"' in text
        assert f'<p class="error" id="greeting-error" role="alert">' in text and message in text
        assert media.console.sql("SELECT count(*) FROM config_versions")[0][0] == 2
        assert media.console.sql("SELECT count(*) FROM greetings")[0][0] == 0
        assert not media.greetings_dir.exists() or not any(media.greetings_dir.iterdir())

    def test_an_upload_far_over_the_limit_is_not_even_read(self, media: Media) -> None:
        c = media.sign_in()
        r = self.upload(c, "huge.wav", b"RIFF" + b"\x00" * (2 * MAX_UPLOAD_BYTES + 1))
        assert r.status_code == 413  # type: ignore[attr-defined]
        assert media.console.sql("SELECT count(*) FROM config_versions")[0][0] == 2

    def test_a_customer_without_a_voicemail_box_is_told_and_cannot_upload(self, media: Media) -> None:
        c = media.sign_in("bob@bolt.example")
        assert "no voicemail box yet" in c.get("/greeting").text
        r = self.upload(c, "a.wav", sox(media.tmp_path / "a.wav", 1).read_bytes())
        assert r.status_code == 400 and "no voicemail box yet" in r.text  # type: ignore[attr-defined]
        assert media.console.sql("SELECT count(*) FROM greetings")[0][0] == 0


class TestAuthorization:
    """Another customer's recordings, made-up ids and paths, staff, and no session: refused, nothing leaked.
    One sign-in per test, every path tried in it (a sign-in costs an argon2 hash)."""

    CUSTOMER_REFUSED = [
        "/recordings/recording/bolt-call-1", "/recordings/recording/bolt-call-1?download=1",
        "/recordings/voicemail/acme-call-001", "/recordings/recording/acme-call-002", "/recordings/secret/acme-call-001",
        "/recordings/recording/..%2F..%2Fetc%2Fpasswd", "/recordings/recording/%2Fetc%2Fpasswd",
        "/recordings/recording/nobody", "/recordings?number=%2B31209990001",
    ]

    def test_a_customer_gets_not_found_for_what_is_not_theirs(self, media: Media) -> None:
        c = media.sign_in()
        answers = {path: (r.status_code, r.text) for path in self.CUSTOMER_REFUSED for r in [c.get(path)]}
        assert answers == {path: (404, "Not found") for path in self.CUSTOMER_REFUSED}
        assert media.media_audit() == []

    def test_staff_pages_are_not_these(self, media: Media) -> None:
        c = media.client()
        post_form(c, "/login", {"email": "sam@fairline.example", "password": PASSWORD})
        enrol(media.console, c, "sam@fairline.example")
        paths = ["/recordings", "/recordings/recording/acme-call-001", "/greeting"]
        assert {p: (r.status_code, r.text) for p in paths for r in [c.get(p)]} == {p: (404, "Not found") for p in paths}

    def test_without_a_session_every_page_leads_to_the_login_and_an_upload_is_refused(self, media: Media) -> None:
        c = media.client()
        paths = ["/recordings", "/recordings/recording/acme-call-001", "/recordings/recording/acme-call-001?download=1",
                 "/greeting"]
        answers = {p: (r.status_code, r.headers.get("location")) for p in paths for r in [c.get(p)]}
        assert answers == {p: (303, "/login") for p in paths}
        token = csrf_of(c, "/login")
        r = c.post("/greeting", data={"csrf_token": token}, files={"greeting": ("a.wav", b"RIFF", "audio/wav")})
        assert r.status_code == 403
        huge = c.post("/greeting", content=b"x" * (3 * MAX_UPLOAD_BYTES),
                      headers={"content-type": "multipart/form-data; boundary=x"})
        assert huge.status_code == 403  # refused before its body is read, as any action without a session
        assert media.console.sql("SELECT count(*) FROM greetings")[0][0] == 0
