"""The event loop's health: how late it wakes up (lag), and what held it when it stalled.

A ticker task sleeps TICK_S at a time and notes how much later than asked it woke: that lag is
what every call's next event waited on top of its own work, a histogram in /metrics, and the longest
one of late (RecentMax: the last 10 to 20 s), exact where the histogram's buckets give bounds. A
tick of 50 ms samples the loop 20 times a second, enough for a p99 in production; a stall shorter
than a tick can fall between two sleeps unseen, so measuring short stalls wants a tick of 1 ms
(`--loop-tick-ms`, bench/config_apply.py), which costs the loop a wake-up every millisecond. A watchdog
thread looks at the ticker's heartbeat; when the loop has not come round for longer than the
stall threshold, it logs the stack the loop's thread is running at that moment (once per stall),
which names the code that holds the loop: asyncio's own slow-callback report needs debug mode,
which costs every call, and speaks only after the callback has returned.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from types import TracebackType

import structlog

from plumbing.metrics import LatencyHistogram, RecentMax

TICK_S = 0.05
LAG_MAX_WINDOW_S = 10.0  # the longest lag is kept 10-20 s: a scrape every 10 s or more often sees every stall
STALL_S = 0.1  # a stall this long is logged with its stack
# Lag buckets, in seconds: a healthy loop wakes within a millisecond; a stall past the
# shedding budget (150 ms) delays every caller in set-up. Fine steps below 5 ms and 20 ms, the
# bounds issue 15 holds the loop to at 100 calls/s: a p99 in the 4 ms bucket shows it under 5.
LAG_BOUNDS_S: tuple[float, ...] = (0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.15, 0.25,
                                   0.5, 1.0, 2.5)


class LoopWatch:
    """Measures the running loop's lag while in `async with`; logs the stack of each stall."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger, *, tick_s: float = TICK_S,
                 stall_s: float = STALL_S) -> None:
        self.log = log
        self.tick_s = tick_s
        self.stall_s = stall_s
        self.lag = LatencyHistogram(LAG_BOUNDS_S)
        self._recent_lag = RecentMax(LAG_MAX_WINDOW_S)
        self.stalls = 0  # stalls logged
        self._beat = time.monotonic()  # the ticker's last turn
        self._loop_thread = threading.get_ident()
        self._done = threading.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._watchdog: threading.Thread | None = None

    @property
    def lag_max(self) -> float:
        """The longest lag in the last LAG_MAX_WINDOW_S (to twice that), in seconds; 0.0 before any tick."""
        return self._recent_lag.value(time.monotonic())

    async def __aenter__(self) -> LoopWatch:
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="loop-watch")
        self._watchdog = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._watchdog.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
        if self._watchdog is not None:
            self._watchdog.join(timeout=1.0)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.tick_s
            await asyncio.sleep(self.tick_s)
            lag = max(0.0, loop.time() - asked)
            self.lag.observe(lag)
            self._beat = time.monotonic()
            self._recent_lag.observe(lag, self._beat)

    def _watch(self) -> None:
        """In its own thread: a loop that has not ticked for stall_s is logged with what it runs."""
        reported = 0.0  # the heartbeat already reported: one line per stall
        while not self._done.wait(self.stall_s / 4):
            beat = self._beat
            held = time.monotonic() - beat - self.tick_s
            if held < self.stall_s or beat == reported:
                continue
            reported = beat
            self.stalls += 1
            frame = sys._current_frames().get(self._loop_thread)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(the loop's thread is gone)"
            self.log.warning("loop.stalled", held_ms=round(held * 1000), stack=stack)
