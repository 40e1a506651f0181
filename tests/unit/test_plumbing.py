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

    async def test_the_longest_lag_is_exact_where_the_buckets_give_bounds(self) -> None:
        from plumbing.loop_watch import LoopWatch

        async with LoopWatch(structlog.get_logger(), tick_s=0.001, stall_s=10) as watch:
            assert watch.lag_max == 0.0  # no tick yet
            await asyncio.sleep(0.05)
            hold_the_loop(0.03)
            await asyncio.sleep(0.05)
        # The hold in the 0.05 bucket, and the longest lag itself: at least the hold less the tick the
        # ticker was into when it began (a busy machine may add).
        assert 0.03 - 0.001 <= watch.lag_max < 0.03 + 1.0
        assert dict(watch.lag.cumulative())[0.02] < watch.lag.count

    async def test_a_quiet_loop_logs_no_stall(self) -> None:
        from plumbing.loop_watch import LoopWatch

        with capture_logs() as logs:
            async with LoopWatch(structlog.get_logger(), tick_s=0.01, stall_s=1.0) as watch:
                await asyncio.sleep(0.2)
        assert [e for e in logs if e["event"] == "loop.stalled"] == []
        assert watch.stalls == 0


class TestRecentMax:
    """The longest value of the last window to two windows; time is given, nothing sleeps."""

    def test_nothing_observed_is_zero(self) -> None:
        from plumbing.metrics import RecentMax

        assert RecentMax(10).value(now=5.0) == 0.0

    def test_the_largest_value_of_the_window_wins_whatever_the_order(self) -> None:
        from plumbing.metrics import RecentMax

        recent = RecentMax(10)
        for now, v in ((0.0, 0.002), (1.0, 0.031), (2.0, 0.004)):
            recent.observe(v, now)
        assert recent.value(now=3.0) == 0.031

    def test_a_value_is_kept_for_at_least_one_window_and_at_most_two(self) -> None:
        from plumbing.metrics import RecentMax

        recent = RecentMax(10)
        recent.observe(0.001, now=0.0)  # the first slot: 0-10 s
        recent.observe(0.05, now=9.9)
        recent.observe(0.002, now=12.0)  # the next: 10-20 s
        assert recent.value(now=19.8) == 0.05  # 9.9 s old: within one window
        assert recent.value(now=20.5) == 0.002  # the 0-10 s slot is past; the stall was 10.6 s ago
        assert recent.value(now=31.0) == 0.0  # both past

    def test_a_reader_every_window_sees_every_value(self) -> None:
        from plumbing.metrics import RecentMax

        recent, seen = RecentMax(10), []
        for tenth in range(1000):  # a value every 0.1 s for 100 s, one spike of 0.5 at 43.3 s
            now = tenth / 10
            recent.observe(0.5 if tenth == 433 else 0.001, now)
            if tenth % 100 == 0:
                seen.append(recent.value(now))
        assert seen.count(0.5) >= 1
        assert seen[0] == 0.001 and seen[-1] == 0.001  # long past, it no longer hides what came after

    def test_a_long_silence_forgets_both_slots(self) -> None:
        from plumbing.metrics import RecentMax

        recent = RecentMax(10)
        recent.observe(0.3, now=0.0)
        recent.observe(0.001, now=25.0)
        assert recent.value(now=26.0) == 0.001


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
