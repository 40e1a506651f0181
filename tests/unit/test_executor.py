"""The executor: each action of the call flow becomes the ARI request(s) it stands for, with a fake ARI.

The timers (AwaitDigit, AwaitRecording) ask nothing of ARI; when they fire is covered in test_runtime_recording.py,
JoinQueue in test_queue_runtime.py.
"""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from ari_app.core import flow
from ari_app.runtime.app import App
from ari_app.runtime.recorder import RecordingDirs
from rating.core.cdr import CallRecord, Disposition
from rating.core.tariff import RateTable, TrafficRates
from tests.unit.test_runtime import FakeAri, app_with

CALL = "c1"
LONG_DIAL = "&".join(f"PJSIP/+3161234560{n}@carrier-out" for n in range(1, 4)) + ",20"

REQUESTS: list[Any] = [
    pytest.param(flow.Answer(), [("POST", "/channels/c1/answer", None)], id="answer"),
    pytest.param(flow.Progress(), [("POST", "/channels/c1/progress", None)], id="progress"),
    pytest.param(flow.Play("sound:hello-world", "c1-hello"),
                 [("POST", "/channels/c1/play", {"media": "sound:hello-world", "playbackId": "c1-hello"})], id="play"),
    pytest.param(flow.Hangup(flow.ReleaseReason.BUSY), [("DELETE", "/channels/c1", {"reason": "busy"})], id="hangup"),
    pytest.param(flow.Dial("PJSIP/+31612345601@carrier-out,20", follow=False),
                 [("POST", "/channels/c1/continue", {"context": "fairline-dial",
                                                     "extension": "PJSIP/+31612345601@carrier-out,20",
                                                     "priority": "1"})], id="dial"),
    pytest.param(flow.Dial("PJSIP/+31612345601@carrier-out,20", follow=True),
                 [("POST", "/applications/fairline/subscription", {"eventSource": "channel:c1"}),
                  ("POST", "/channels/c1/continue", {"context": "fairline-dial",
                                                     "extension": "PJSIP/+31612345601@carrier-out,20",
                                                     "priority": "1"})], id="dial-following-subscribes-first"),
    pytest.param(flow.Dial(LONG_DIAL, follow=True),
                 [("POST", "/applications/fairline/subscription", {"eventSource": "channel:c1"}),
                  ("POST", "/channels/c1/variable", {"variable": "FAIRLINE_DIAL", "value": LONG_DIAL}),
                  ("POST", "/channels/c1/continue", {"context": "fairline-dial", "extension": "s", "priority": "1"})],
                 id="long-dial-following-sets-the-variable-and-subscribes-then-continues"),
    pytest.param(flow.StartMoh(), [("POST", "/channels/c1/moh", None)], id="start-moh"),
    pytest.param(flow.StopMoh(), [("DELETE", "/channels/c1/moh", None)], id="stop-moh"),
    pytest.param(flow.StopPlayback("c1-hello"), [("DELETE", "/playbacks/c1-hello", None)], id="stop-playback"),
    pytest.param(flow.Bridge("c1-agent-1"),
                 [("POST", "/bridges", {"type": "mixing", "bridgeId": "c1-bridge"}),
                  ("POST", "/bridges/c1-bridge/addChannel", {"channel": "c1,c1-agent-1"})], id="bridge"),
    pytest.param(flow.DestroyBridge(), [("DELETE", "/bridges/c1-bridge", None)], id="destroy-bridge"),
    pytest.param(flow.AwaitDigit(5), [], id="await-digit-is-a-timer"),
    pytest.param(flow.AwaitRecording(), [], id="await-recording-is-a-timer"),
    pytest.param(flow.PlayGreeting("vm-intro", "c1-0-greeting"),
                 [("POST", "/channels/c1/play", {"media": "sound:vm-intro", "playbackId": "c1-0-greeting"})],
                 id="play-greeting-of-a-sound"),
    pytest.param(flow.RecordMessage(90),
                 [("POST", "/channels/c1/record", {"name": "c1-voicemail", "format": "wav", "maxDurationSeconds": "90",
                                                   "maxSilenceSeconds": "0", "ifExists": "overwrite", "beep": "true",
                                                   "terminateOn": "#"})], id="record-message-after-a-beep"),
    pytest.param(flow.AwaitMessage(), [], id="await-message-is-a-timer"),
]


def live(app: App) -> App:
    """An app that handles call c1 (as if it had started), so actions that need a live call run."""
    app.feed(flow.Adopted(CALL, datetime(2026, 11, 25, 13, 0, tzinfo=UTC), "+31201234567", None,
                          datetime(2026, 11, 25, 13, 0, tzinfo=UTC), None, flow.Found.DIALING))
    return app


class TestExecute:
    @pytest.mark.parametrize(("action", "requests"), REQUESTS)
    async def test_each_action_is_the_ari_request_it_stands_for(self, action: flow.Action,
                                                                 requests: list[Any]) -> None:
        ari = FakeAri()
        app, _ = app_with(ari)

        await app.executor.execute(CALL, action, structlog.get_logger())

        assert sorted(ari.requests, key=repr) == sorted(requests, key=repr)  # gathered requests: any order
        assert [r[1] for r in ari.requests][-1:] == [r[1] for r in requests][-1:]  # the continue comes last

    async def test_start_recording_snoops_on_a_live_call(self, tmp_path: Path) -> None:
        ari = FakeAri()
        app, _ = app_with(ari)
        app.recorder.dirs = RecordingDirs(tmp_path / "asterisk", tmp_path / "store")
        live(app)
        ari.requests.clear()

        await app.executor.execute(CALL, flow.StartRecording(), structlog.get_logger())

        assert ari.requests == [("POST", "/channels/c1/snoop", {
            "spy": "both", "whisper": "none", "app": "fairline", "appArgs": "recording", "snoopId": "c1-recorder"})]

    async def test_start_recording_of_an_ended_call_asks_nothing(self) -> None:
        ari = FakeAri()
        app, _ = app_with(ari)

        await app.executor.execute(CALL, flow.StartRecording(), structlog.get_logger())

        assert ari.requests == []

    async def test_write_cdr_submits_the_priced_call(self) -> None:
        app, submitted = app_with(FakeAri())
        at = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
        record = CallRecord(CALL, "+31201234567", None, at, None, at, Disposition.NO_ANSWER, 19)

        await app.executor.execute(CALL, flow.WriteCdr(record), structlog.get_logger())

        assert [cdr.call for cdr in submitted] == [record]

    async def test_write_cdr_prices_with_the_tariff_a_reload_set(self) -> None:
        """cli's reload sets app.rates with the new configuration: the next CDR is priced with it."""
        app, submitted = app_with(FakeAri())
        at = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
        record = CallRecord(CALL, "+31201234567", None, at, at, at + timedelta(seconds=60), Disposition.ANSWERED, 16)
        app.rates = RateTable((TrafficRates(date(2020, 1, 1), Decimal("1.0000"), Decimal("0.0000"),
                                            Decimal("0.0000")),))

        await app.executor.execute(CALL, flow.WriteCdr(record), structlog.get_logger())

        assert [cdr.price.setup_eur for cdr in submitted] == [Decimal("1.0000")]

    def test_every_action_type_is_covered_here(self) -> None:
        covered = {type(p.values[0]) for p in REQUESTS} | {flow.StartRecording, flow.WriteCdr, flow.JoinQueue}
        assert covered == set(typing.get_args(flow.Action))
