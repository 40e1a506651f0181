"""What share of new calls the dialplan lets into fairline under overload (decision 0016). Pure: no I/O.

Loss-based overload control, as SIP overload control does it (RFC 7339): the dialplan sends
a new call to fairline with probability `percent`/100 and the rest straight to the fallback.
A call fairline sheds halves the share, at most once per DECREASE_EVERY_S, since Asterisk
needs about that long to show the effect (docs/performance.md measured 0.5 s against 1 s);
each INCREASE_EVERY_S without a shed call gives INCREASE_STEP points back. The share never
drops below MIN_PERCENT, so some calls keep reaching fairline and measuring the load.

What a shed is decided on, the caller's expected wait, is made of RunningEstimates.
"""

from __future__ import annotations

import dataclasses

MIN_PERCENT = 5
INCREASE_STEP = 10
DECREASE_EVERY_S = 0.5
INCREASE_EVERY_S = 1.0


@dataclasses.dataclass
class Admission:
    """The share of new calls admitted, in percent, and when it last changed (monotonic seconds)."""

    percent: int = 100
    changed_at: float = float("-inf")
    shed_at: float = float("-inf")

    def shed(self, now: float) -> int | None:
        """fairline shed a call at `now`: the new share, or None when it stays as it is."""
        self.shed_at = now
        if now - self.changed_at < DECREASE_EVERY_S or self.percent == MIN_PERCENT:
            return None
        self.percent = max(MIN_PERCENT, self.percent // 2)
        self.changed_at = now
        return self.percent

    def routed(self, now: float) -> int | None:
        """fairline routed a call at `now`: the new share once the load has been gone long enough, or None."""
        if self.percent == 100:
            return None
        quiet_since = max(self.shed_at, self.changed_at)
        steps = int((now - quiet_since) // INCREASE_EVERY_S)
        if steps < 1:
            return None
        self.percent = min(100, self.percent + steps * INCREASE_STEP)
        self.changed_at = now
        return self.percent


@dataclasses.dataclass
class RunningEstimate:
    """A running average of measured seconds that halves for every second without a new sample.

    Each sample moves it by `weight` of the difference. The halving lets an overload's figures
    fade once it is gone, when no new samples may come to pull them down.
    """

    weight: float
    value: float = 0.0
    noted_at: float = 0.0  # monotonic seconds of the last sample

    def at(self, now: float) -> float:
        """The estimate at monotonic time `now`."""
        return float(self.value * 0.5 ** (now - self.noted_at))

    def note(self, seconds: float, now: float) -> None:
        """A new sample, measured at `now`."""
        current = self.at(now)
        self.value, self.noted_at = current + self.weight * (seconds - current), now
