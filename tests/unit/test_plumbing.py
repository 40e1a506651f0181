"""plumbing: background tasks that neither vanish nor lose their exception; one spelling of now; bounded lines."""

from __future__ import annotations

import asyncio
import gc
import io
import time
from datetime import UTC

import pytest
import structlog
from structlog.testing import capture_logs

from plumbing import tasks
from plumbing.bounded_lines import LineTooLong, bounded_lines
from plumbing.clock import utc_now


class TestSpawn:
    async def test_a_task_nobody_holds_runs_to_its_end(self) -> None:
        """The loop holds tasks weakly: spawn keeps them alive until they end."""
        done = asyncio.Event()

        async def work() -> None:
            await asyncio.sleep(0.01)
            done.set()

        tasks.spawn(work(), name="unheld", log=structlog.get_logger())
        gc.collect()
        await asyncio.wait_for(done.wait(), timeout=2)

    async def test_an_exception_is_logged_with_the_task_name(self) -> None:
        async def work() -> None:
            raise RuntimeError("boom")

        with capture_logs() as logs:
            task = tasks.spawn(work(), name="doomed", log=structlog.get_logger(), crashed="thing.crashed")
            await asyncio.wait({task})
        assert [(e["event"], e["task"], e["log_level"]) for e in logs] == [("thing.crashed", "doomed", "error")]
        assert task not in tasks._running

    async def test_a_kept_task_leaves_its_owner_set_when_it_ends(self) -> None:
        keep: set[asyncio.Task[object]] = set()

        async def work() -> int:
            return 7

        task = tasks.spawn(work(), name="kept", log=structlog.get_logger(), keep=keep)
        assert keep == {task}
        assert await task == 7
        await asyncio.sleep(0)
        assert keep == set()

    async def test_a_cancelled_task_is_not_a_crash(self) -> None:
        with capture_logs() as logs:
            task = tasks.spawn(asyncio.sleep(10), name="cancelled", log=structlog.get_logger())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert logs == []


def test_now_is_aware_and_utc() -> None:
    assert utc_now().tzinfo is UTC


class TestScrub:
    @pytest.mark.parametrize(("url", "text"), [
        ("postgresql://fairline:s3cr%40t@db/fairline", "auth failed for s3cr@t and s3cr%40t"),
        ("postgresql://fairline@db/fairline?password=hunter2", "password hunter2 rejected"),
    ])
    def test_an_error_message_never_shows_the_urls_password(self, url: str, text: str) -> None:
        from plumbing.redaction import scrub

        scrubbed = scrub(text, url)
        assert "***" in scrubbed
        assert not any(secret in scrubbed for secret in ("s3cr@t", "s3cr%40t", "hunter2"))

    def test_a_url_without_a_password_leaves_the_text_alone(self) -> None:
        from plumbing.redaction import scrub

        assert scrub("connection refused", "postgresql://fairline@db/fairline") == "connection refused"


def hold_the_loop(seconds: float) -> None:
    """Work that forgets it runs in the event loop."""
    time.sleep(seconds)


class TestLoopWatch:
    async def test_a_stall_is_logged_once_with_the_stack_of_what_held_the_loop(self) -> None:
        from plumbing.loop_watch import LoopWatch

        with capture_logs() as logs:
            async with LoopWatch(structlog.get_logger(), tick_s=0.01, stall_s=0.1) as watch:
                await asyncio.sleep(0.05)  # a few quiet ticks first
                hold_the_loop(0.8)
                await asyncio.sleep(0.05)
        stalls = [e for e in logs if e["event"] == "loop.stalled"]
        assert len(stalls) == watch.stalls
        held = [e for e in stalls if "hold_the_loop" in e["stack"]]  # (a busy machine may add others)
        assert len(held) == 1
        assert held[0]["held_ms"] >= 100

    async def test_the_lag_histogram_counts_each_wake_up_and_the_stall_in_its_bucket(self) -> None:
        from plumbing.loop_watch import LoopWatch

        async with LoopWatch(structlog.get_logger(), tick_s=0.01, stall_s=10) as watch:
            await asyncio.sleep(0.1)
            hold_the_loop(0.3)
            await asyncio.sleep(0.05)
        assert watch.lag.count >= 3
        assert dict(watch.lag.cumulative())[0.25] < watch.lag.count  # the 0.3 s stall is above 0.25 s
        assert watch.stalls == 0  # under the threshold given: nothing logged

    async def test_a_quiet_loop_logs_no_stall(self) -> None:
        from plumbing.loop_watch import LoopWatch

        with capture_logs() as logs:
            async with LoopWatch(structlog.get_logger(), tick_s=0.01, stall_s=1.0) as watch:
                await asyncio.sleep(0.2)
        assert [e for e in logs if e["event"] == "loop.stalled"] == []
        assert watch.stalls == 0


class TestBoundedLines:
    class Recording(io.BytesIO):
        """A stream that remembers the longest piece it handed out."""

        longest = 0

        def readline(self, size: int | None = -1, /) -> bytes:
            piece = super().readline(size)
            self.longest = max(self.longest, len(piece))
            return piece

    def test_lines_come_whole_an_overlong_one_as_its_length_and_the_next_after_it(self) -> None:
        stream = io.BytesIO(b"one\n" + b"x" * 11 + b"\n" + b"0123456789\n\nlast")
        assert list(bounded_lines(stream, 10)) == [b"one\n", LineTooLong(11), b"0123456789\n", b"\n", b"last"]

    def test_an_overlong_last_line_without_an_end(self) -> None:
        assert list(bounded_lines(io.BytesIO(b"x" * 11), 10)) == [LineTooLong(11)]

    def test_a_fifty_megabyte_line_is_never_held_whole(self) -> None:
        stream = self.Recording(b"x" * (50 << 20) + b"\nnext\n")
        assert list(bounded_lines(stream, 1024)) == [LineTooLong(50 << 20), b"next\n"]
        assert stream.longest <= 64 * 1024
