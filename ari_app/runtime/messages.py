"""Voicemail at run time: a customer's greeting put where Asterisk plays it, the caller's message recorded and stored.

The message is recorded on the caller's own channel (ARI `record`, with Asterisk's beep first, # to end) as
X-voicemail for call X; once Asterisk has finished it, it is moved into the recordings directory beside the
call recordings (recording_store.py: hashed, private) and the flow is told. The CDR carries it to PostgreSQL,
whose `voicemails` row is the outbox the mailer works from (decision 0027).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import structlog

from ari_app import recording_store
from ari_app.ari.client import AriClient
from ari_app.core import flow, voicemail
from ari_app.core.events import MessageEnded
from ari_app.errors import AriError, ChannelGone
from ari_app.runtime.recorder import RecordingDirs
from plumbing.clock import utc_now

Log = structlog.typing.FilteringBoundLogger


class Messages:
    """Greetings and messages of voicemail boxes, for the calls of one fairline."""

    def __init__(self, ari: AriClient, log: Log, dirs: RecordingDirs | None, *,
                 feed: Callable[[flow.RecordingEvent], None]) -> None:
        self.ari = ari
        self.log = log
        self.dirs = dirs
        self.feed = feed

    async def greet(self, call_id: str, action: flow.PlayGreeting, log: Log) -> None:
        """Play the box's greeting; a customer's file that cannot be put in place gives the default greeting,
        never silence."""
        media = voicemail.greeting_media(action.greeting)
        if isinstance(action.greeting, voicemail.GreetingFile):
            try:
                await asyncio.to_thread(self._install, action.greeting)
            except (OSError, ValueError) as exc:
                log.error("voicemail.greeting_not_installed", file=action.greeting.path, error=str(exc),
                          instead=voicemail.DEFAULT_GREETING)
                media = voicemail.greeting_media(voicemail.DEFAULT_GREETING)
        await self.ari.request("POST", f"/channels/{call_id}/play", {"media": media, "playbackId": action.playback_id})
        log.info("voicemail.greeting", media=media)

    def _install(self, greeting: voicemail.GreetingFile) -> None:
        """Copy the greeting into Asterisk's recordings directory under its hash's name, once."""
        if self.dirs is None:
            raise ValueError("no Asterisk recordings directory configured")
        dest = greeting_path(self.dirs, greeting)
        if dest.exists():  # named by its content: a file there is this greeting
            return
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            shutil.copyfile(greeting.path, tmp)
            os.chmod(tmp, 0o644)  # Asterisk's user reads it; a greeting is no secret
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()

    async def record(self, call_id: str, action: flow.RecordMessage, log: Log) -> None:
        """Record the caller after a beep; a refusal is reported to the flow (the caller hears why)."""
        try:
            await self.ari.request("POST", f"/channels/{call_id}/record", {
                "name": f"{call_id}{voicemail.SUFFIX}", "format": "wav", "maxDurationSeconds": str(action.max_seconds),
                "maxSilenceSeconds": "0", "ifExists": "overwrite", "beep": "true", "terminateOn": "#"})
        except AriError as exc:
            log.error("voicemail.not_recorded", error=str(exc))
            self.feed(flow.MessageLost(call_id, utc_now(), f"could not start recording: {exc}"))
            if isinstance(exc, ChannelGone):
                raise
            return
        log.info("voicemail.recording", max_seconds=action.max_seconds)

    async def store(self, event: MessageEnded) -> None:
        """Move the finished message from Asterisk's spool into the recordings directory, hashed; tell the flow."""
        call_id, log = event.channel_id, self.log.bind(call_id=event.channel_id)
        if event.failed is not None or self.dirs is None:
            log.error("voicemail.lost", reason=event.failed or "no recordings directory")
            self.feed(flow.MessageLost(call_id, event.at, event.failed or "no recordings directory"))
            return
        name = f"{call_id}{voicemail.SUFFIX}"
        source = self.dirs.asterisk / f"{name}.wav"
        try:
            stored = await asyncio.to_thread(recording_store.store, source, self.dirs.store, name, event.at)
        except recording_store.RecordingStoreError as exc:
            # Loud: the message is at risk; a file still in Asterisk's spool can be recovered by hand.
            log.error("voicemail.not_stored", error=str(exc), source=str(source))
            self.feed(flow.MessageLost(call_id, event.at, str(exc)))
            return
        log.info("voicemail.stored", file=stored.path, seconds=str(stored.duration_seconds), sha256=stored.sha256)
        self.feed(flow.MessageStored(call_id, event.at, stored))


def greeting_path(dirs: RecordingDirs, greeting: voicemail.GreetingFile) -> Path:
    """Where a customer's greeting is put for Asterisk (for tests and the operator's eye)."""
    return dirs.asterisk / f"{greeting.name}.wav"
