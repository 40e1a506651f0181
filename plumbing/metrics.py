"""Counters for the /metrics exposition that are not a plain number: a latency histogram."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# Upper bounds of the write latency buckets, in seconds: a healthy local insert takes
# milliseconds; the last bounds reach the 10 s timeout after which an insert is an outage.
LATENCY_BOUNDS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistogram:
    """Durations counted into buckets by upper bound, as a Prometheus histogram reports them."""

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS_S) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) per bucket, ending with (inf, count)."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts):
            running += n
            out.append((bound, running))
        return out


class RecentMax:
    """The largest value observed lately: within the last `window_s` at least, `2 * window_s` at most.

    Two slots of `window_s` each, the older dropped as time moves on (Micrometer's TimeWindowMax, with
    two buffers): a reader that looks at least every `window_s` misses no value, and a value long past
    does not hide the ones after it, as a max since start would. `now` is injected: a monotonic clock.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._start: float | None = None  # when the current slot began
        self._current = 0.0
        self._previous = 0.0

    def _rotate(self, now: float) -> None:
        if self._start is None:
            self._start = now
            return
        slots = (now - self._start) // self.window_s  # slots gone by since the current one began
        if slots < 1:
            return
        # One slot on: the current becomes the previous; two or more: both are past.
        self._previous = self._current if slots == 1 else 0.0
        self._current = 0.0
        self._start = self._start + self.window_s if slots == 1 else now

    def observe(self, value: float, now: float) -> None:
        self._rotate(now)
        self._current = max(self._current, value)

    def value(self, now: float) -> float:
        self._rotate(now)
        return max(self._current, self._previous)
