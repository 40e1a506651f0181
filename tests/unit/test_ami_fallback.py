"""Publishing the fallback dialplan over AMI, against AMI exchanges recorded from Asterisk 22.

tests/fixtures/ami/publish.txt is what Asterisk answered fairline's AMI user (read = none,
write = config) to Login, Reload of pbx_config (with fairline-fallback.conf beside it published,
its digest added), ShowDialPlan of the extension `digest` in fairline-fallback, Command,
ShowDialPlan of `digest` where there is none, and Logoff; login_refused.txt its answer to a
wrong secret. A small server replays them per action.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ari_app.ami.fallback import digest_of, publish_fallback, with_digest
from ari_app.ami.session import AmiSession
from ari_app.errors import AmiRefused, AmiUnauthorized, AmiUnreachable, FallbackNotLoaded
from ari_app.settings import AmiSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
PUBLISHED = (FIXTURES / "fairline-fallback.conf").read_text()
EOM = b"\r\n\r\n"


def recorded(name: str) -> tuple[bytes, dict[str, list[bytes]]]:
    """A recording's greeting line, and its messages by the ActionID they answered."""
    data = (FIXTURES / name).read_bytes()
    greeting, _, rest = data.partition(b"\r\n")
    answers: dict[str, list[bytes]] = {}
    for block in rest.split(EOM):
        headers = dict(line.split(b": ", 1) for line in block.split(b"\r\n") if b": " in line)
        if b"ActionID" in headers:
            answers.setdefault(headers[b"ActionID"].decode(), []).append(block)
    return greeting + b"\r\n", answers


# The recorded action each action fairline sends is answered with.
REPLIES = {("Login", ""): "login", ("Reload", ""): "reload", ("ShowDialPlan", "fairline-fallback"): "show",
           ("ShowDialPlan", "from-carrier"): "nodigest", ("Command", ""): "cmd", ("Logoff", ""): "bye"}


@dataclasses.dataclass
class FakeAsterisk:
    port: int
    received: list[dict[str, str]]


@pytest.fixture
async def asterisk(request: pytest.FixtureRequest) -> AsyncIterator[FakeAsterisk]:
    recording = getattr(request, "param", "publish.txt")
    greeting, answers = recorded(recording)
    received: list[dict[str, str]] = []
    sessions: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sessions.append(asyncio.current_task())  # type: ignore[arg-type]
        writer.write(greeting)
        try:
            while True:
                block = await reader.readuntil(EOM)
                action = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
                received.append(action)
                key = REPLIES.get((action["Action"], action.get("Context", "")), "")
                for reply in answers.get(key, []):
                    reply = reply.replace(f"ActionID: {key}".encode(), f"ActionID: {action['ActionID']}".encode())
                    writer.write(reply + EOM)
                await writer.drain()
                if action["Action"] == "Logoff" or recording == "login_refused.txt":
                    break  # Asterisk closes the session after a goodbye or a refused login
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield FakeAsterisk(server.sockets[0].getsockname()[1], received)
    await asyncio.gather(*sessions, return_exceptions=True)


def settings(port: int, tmp_path: Path) -> AmiSettings:
    return AmiSettings(host="127.0.0.1", port=port, user="fairline", secret="s3cr3t-xQ7pL2mN9vR4",
                       fallback_file=tmp_path / "fairline-fallback.conf", secrets_file=tmp_path / "secrets.env")


class TestPublishFallback:
    async def test_writes_the_file_with_its_digest_reloads_pbx_config_and_finds_the_digest_in_asterisk(
            self, asterisk: FakeAsterisk, tmp_path: Path) -> None:
        done = await publish_fallback(settings(asterisk.port, tmp_path), PUBLISHED)

        assert done.file.read_text() == with_digest(PUBLISHED)
        assert (done.digest, done.extensions) == (digest_of(PUBLISHED), 21)
        assert done.digest == "sha256:5e194e319c18bef747c449ef1602548f82d5b1594b9fa678dc03008daeeafb29"
        assert [a["Action"] for a in asterisk.received] == ["Login", "Reload", "ShowDialPlan", "Logoff"]
        assert asterisk.received[0]["Events"] == "off"
        assert asterisk.received[1]["Module"] == "pbx_config.so"
        assert (asterisk.received[2]["Context"], asterisk.received[2]["Extension"]) == ("fairline-fallback", "digest")
        assert not list(tmp_path.glob(".*.tmp"))

    async def test_asterisk_showing_another_digest_is_an_error_naming_the_file_setting(
            self, asterisk: FakeAsterisk, tmp_path: Path) -> None:
        changed = PUBLISHED.replace("PJSIP/+31612340003@carrier-out,5", "PJSIP/+31612340009@carrier-out,5")

        with pytest.raises(FallbackNotLoaded, match=r"shows sha256:5e194e31.* where "
                                                    + digest_of(changed) + ".*FAIRLINE_ASTERISK_FALLBACK"):
            await publish_fallback(settings(asterisk.port, tmp_path), changed)

    @pytest.mark.parametrize("asterisk", ["login_refused.txt"], indirect=True)
    async def test_a_refused_login_names_the_secrets_file_and_writes_nothing(
            self, asterisk: FakeAsterisk, tmp_path: Path) -> None:
        with pytest.raises(AmiUnauthorized, match="AMI_USER and AMI_SECRET in the secrets file .*secrets.env") as exc:
            await publish_fallback(settings(asterisk.port, tmp_path), PUBLISHED)

        assert "s3cr3t" not in str(exc.value)
        assert not (tmp_path / "fairline-fallback.conf").exists()

    async def test_nothing_listening_is_unreachable_and_names_the_settings(self, tmp_path: Path) -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()

        with pytest.raises(AmiUnreachable, match=f"127.0.0.1:{port}: cannot connect .*FAIRLINE_AMI_PORT"):
            await publish_fallback(settings(port, tmp_path), PUBLISHED)

    async def test_a_directory_fairline_cannot_write_is_named(self, asterisk: FakeAsterisk, tmp_path: Path) -> None:
        ami = dataclasses.replace(settings(asterisk.port, tmp_path), fallback_file=tmp_path / "missing" / "f.conf")

        with pytest.raises(FallbackNotLoaded, match="cannot write .*missing/f.conf.*FAIRLINE_ASTERISK_FALLBACK"):
            await publish_fallback(ami, PUBLISHED)


class TestAmiSession:
    async def test_an_action_asterisk_refuses_raises_with_its_message(self, asterisk: FakeAsterisk,
                                                                      tmp_path: Path) -> None:
        async with AmiSession(settings(asterisk.port, tmp_path)) as ami:
            with pytest.raises(AmiRefused) as refused:
                await ami.action("Command", Command="core show version")
            with pytest.raises(AmiRefused, match="Did not find extension digest@from-carrier"):
                await ami.action_list("ShowDialPlan", Context="from-carrier", Extension="digest")
        assert (refused.value.action, refused.value.message) == ("Command", "Permission denied")

    async def test_an_asterisk_that_never_answers_times_out(self, tmp_path: Path) -> None:
        ended = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until fairline gives up and closes
            writer.close()
            ended.set()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            with pytest.raises(AmiUnreachable, match="no answer to Login within 0.2 s"):
                async with AmiSession(settings(server.sockets[0].getsockname()[1], tmp_path), timeout=0.2):
                    pass
            await asyncio.wait_for(ended.wait(), timeout=5)



class TestDigest:
    def test_the_digest_extension_follows_the_text_in_its_context(self) -> None:
        published = with_digest(PUBLISHED)

        assert published.startswith(PUBLISHED)
        assert published.endswith(f"\nexten => digest,1,NoOp({digest_of(PUBLISHED)})\n")
        assert "[" not in published[len(PUBLISHED):]  # no other context in between: it lands in fairline-fallback

    def test_any_change_of_the_text_changes_the_digest(self) -> None:
        assert digest_of(PUBLISHED) != digest_of(PUBLISHED.replace(",5)", ",6)", 1))
        assert digest_of(PUBLISHED) == "sha256:" + "5e194e319c18bef747c449ef1602548f82d5b1594b9fa678dc03008daeeafb29"
