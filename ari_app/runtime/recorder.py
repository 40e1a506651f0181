"""Recording a call: a snoop channel on the caller hears both parties and records; the file is then stored."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import structlog

from ari_app import recording_store
from ari_app.core import flow
from ari_app.ari.client import AriClient
from ari_app.ari.event_parser import SNOOP_LEG
from ari_app.core.events import RecordingEnded
from ari_app.errors import AriError
from ari_app.runtime.names import RECORDER_SUFFIX, RECORDING_VARIABLE
from plumbing.clock import utc_now


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingDirs:
    asterisk: Path  # where Asterisk writes recordings (its astspooldir/recording), as fairline sees that directory
    store: Path  # fairline's recordings directory: only fairline's user may read it


class Recorder:
    """Starts a call's recorder, records on it once it is in the app, stores the finished file."""

    def __init__(self, ari: AriClient, log: structlog.typing.FilteringBoundLogger, dirs: RecordingDirs | None, *,
                 call_of: Callable[[str], flow.Call | None], feed: Callable[[flow.RecordingEvent], None]) -> None:
        self.ari = ari
        self.log = log
        self.dirs = dirs
        self.call_of = call_of  # the live call of that id, None once it ended
        self.feed = feed

    async def start(self, call_id: str, log: structlog.typing.FilteringBoundLogger) -> None:
        """A snoop channel on the caller hears both parties; it records once it is in the app (RecorderUp)."""
        if self.dirs is None:
            log.error("recording.not_set_up", reason="no recordings directory configured")
            self.feed(flow.RecordingLost(call_id, utc_now(), "recording is not set up: no recordings directory"))
            return
        try:
            await self.ari.request("POST", f"/channels/{call_id}/snoop", {
                "spy": "both", "whisper": "none", "app": self.ari.app, "appArgs": SNOOP_LEG,
                "snoopId": f"{call_id}{RECORDER_SUFFIX}"})
        except AriError as exc:  # the call goes on unrecorded; never a reason to drop it
            log.error("recording.not_started", error=str(exc))
            self.feed(flow.RecordingLost(call_id, utc_now(), f"could not start: {exc}"))

    async def record(self, recorder_id: str) -> None:
        """Record on the snoop channel, which first gets the mode and evidence: a restarted fairline reads them there
        (the caller's own channel may be in Dial(), where ARI cannot set variables)."""
        call_id = recorder_id.removesuffix(RECORDER_SUFFIX)
        call = self.call_of(call_id)
        try:
            if call is not None and call.record_mode is not None:
                await self.ari.request("POST", f"/channels/{recorder_id}/variable", {
                    "variable": RECORDING_VARIABLE,
                    "value": f"{call.record_mode.value}|{call.record_evidence}"})
            await self.ari.request("POST", f"/channels/{recorder_id}/record", {
                "name": call_id, "format": "wav", "ifExists": "overwrite", "beep": "false", "terminateOn": "none"})
            self.log.info("recording.started", call_id=call_id)
        except AriError as exc:
            self.log.error("recording.not_started", call_id=call_id, error=str(exc))
            self.feed(flow.RecordingLost(call_id, utc_now(), f"could not start: {exc}"))

    async def store(self, event: RecordingEnded) -> None:
        """Move the finished file from Asterisk's spool into the recordings directory, hashed, then tell the flow."""
        call_id, log = event.channel_id, self.log.bind(call_id=event.channel_id)
        if event.failed is not None or self.dirs is None:
            log.error("recording.failed", reason=event.failed)
            self.feed(flow.RecordingLost(call_id, event.at, event.failed or "no recordings directory"))
            return
        source = self.dirs.asterisk / f"{call_id}.wav"
        try:
            stored = await asyncio.to_thread(recording_store.store, source, self.dirs.store, call_id, event.at)
        except recording_store.RecordingStoreError as exc:
            log.error("recording.not_stored", error=str(exc), source=str(source))  # loud: the recording is at risk
            self.feed(flow.RecordingLost(call_id, event.at, str(exc)))
            return
        log.info("recording.stored", file=stored.path, seconds=str(stored.duration_seconds))
        if self.call_of(call_id) is None:
            log.warning("recording.stored_after_cdr", file=stored.path)
        self.feed(flow.RecordingStored(call_id, event.at, stored))
