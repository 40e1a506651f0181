"""Load shedding (decision 0016): estimate how long a new call would wait, hand late ones to the dialplan.

A new call whose StasisStart reaches fairline later than `shed_after_s` (counting the round
trips routing would still take) goes to the dialplan fallback at once, one request instead of
routing, so Asterisk's event queue drains; and the dialplan is told what share of new calls
to let into the app at all (ari_app/core/admission.py holds the policy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from datetime import datetime, timezone

import structlog

from ari_app.core import admission
from ari_app.ari.client import AriClient
from ari_app.core.events import CallStarted, TargetDialed
from ari_app.errors import AriError, ChannelGone
from ari_app.runtime.names import ADMIT_VARIABLE, SHED_CONTEXT, SHED_LABEL
from plumbing.clock import utc_now
from plumbing.metrics import LatencyHistogram

# A routed call's first step: subscribe, then continue into Dial() (decision 0017).
ROUTE_ROUND_TRIPS = 2
LATENCY_WEIGHT = 0.2  # of the newest request in the running estimate of ARI's latency


class Shedding:
    """The latency estimates, the decision to shed one call, and the share of calls admitted."""

    def __init__(self, ari: AriClient, log: structlog.typing.FilteringBoundLogger, *,
                 shed_after_s: float | None, calls: Container[str],
                 route: Callable[[CallStarted], None]) -> None:
        self.ari = ari
        self.log = log
        self.shed_after_s = shed_after_s
        self.calls = calls  # the calls fairline handles: never shed
        self.route = route  # a call that could not be shed is routed after all
        self.calls_shed = 0
        self.admission = admission.Admission()
        # Running estimates of one ARI request's round trip, and of how long Asterisk takes from
        # fairline's continue into Dial() to dialling (where an overloaded Asterisk keeps callers
        # waiting). Each halves every second without news, so an overload that has passed does not
        # go on shedding the first calls after a quiet spell.
        self.request_latency = admission.RunningEstimate(LATENCY_WEIGHT)
        self.dial_delay = admission.RunningEstimate(LATENCY_WEIGHT)
        self._dial_sent: dict[str, datetime] = {}
        # Where a new call's wait before routing went, for /metrics: Asterisk's part (the channel's
        # creation to its StasisStart: the dialplan, the app's event queue) and fairline's (StasisStart
        # sent to handled: the websocket and the event loop). Issue 15: which of the two falls behind.
        self.asterisk_delay = LatencyHistogram()
        self.event_delay = LatencyHistogram()
        # Since when fairline handles events: a call that came in while it was not listening (down,
        # reconnecting, adopting) waited for that, not for an overload, and is not shed for it.
        self.listening_since = datetime.min.replace(tzinfo=timezone.utc)

    @property
    def request_latency_s(self) -> float:
        return self.request_latency.at(time.monotonic())

    @property
    def dial_delay_s(self) -> float:
        return self.dial_delay.at(time.monotonic())

    def note_latency(self, seconds: float) -> None:
        """One ARI request's round trip, into the running estimate (shed calls keep it current too)."""
        self.request_latency.note(seconds, time.monotonic())

    def dial_sent(self, call_id: str) -> None:
        """fairline continued the call into Dial(): its Dial event tells how long Asterisk took to act on it."""
        self._dial_sent[call_id] = utc_now()

    def target_dialed(self, event: TargetDialed) -> None:
        if event.channel_id in self._dial_sent:
            self.dial_delay.note(max(0.0, (event.at - self._dial_sent.pop(event.channel_id)).total_seconds()),
                                 time.monotonic())

    def forget(self, call_id: str) -> None:
        """The call ended."""
        self._dial_sent.pop(call_id, None)

    def started(self, event: CallStarted) -> None:
        """A new call's StasisStart is handled now: note how long Asterisk and fairline each took to get here."""
        if event.started_at >= self.listening_since:  # not a call that waited for fairline to connect
            self.asterisk_delay.observe(max(0.0, (event.at - event.started_at).total_seconds()))
            self.event_delay.observe(max(0.0, (utc_now() - event.at).total_seconds()))

    def lagging(self, event: CallStarted) -> bool:
        """Would routing this call keep its caller waiting past the budget? (decision 0016)

        The wait so far counts from the channel's creation (its StasisStart may be on time while
        Asterisk itself is behind), and routing needs ROUTE_ROUND_TRIPS round trips at the latency
        Asterisk answers them with now.
        """
        if self.shed_after_s is None or event.channel_id in self.calls:
            return False
        return self._expected_wait(event) > self.shed_after_s

    def _expected_wait(self, event: CallStarted) -> float:
        waited = (utc_now() - max(min(event.at, event.started_at), self.listening_since)).total_seconds()
        return waited + ROUTE_ROUND_TRIPS * self.request_latency_s + self.dial_delay_s

    async def shed(self, event: CallStarted) -> None:
        """Hand a new call to the dialplan fallback (the number's first target), as if fairline were down."""
        self.calls_shed += 1
        self.log.warning("call.shed", call_id=event.channel_id, did=event.did,
                         lag_s=round((utc_now() - min(event.at, event.started_at)).total_seconds(), 3),
                         asterisk_s=round(max(0.0, (event.at - event.started_at).total_seconds()), 3),
                         expected_wait_s=round(self._expected_wait(event), 3), reason="overload")
        try:
            started = time.monotonic()
            await self.ari.request("POST", f"/channels/{event.channel_id}/continue",
                                   {"context": SHED_CONTEXT, "extension": event.did, "label": SHED_LABEL})
            self.note_latency(time.monotonic() - started)
        except ChannelGone:
            pass
        except AriError as exc:  # the call stays in the app: route it after all rather than leave it
            self.log.error("call.shed_failed", call_id=event.channel_id, error=str(exc))
            self.route(event)
        if (percent := self.admission.shed(time.monotonic())) is not None:
            await self.admit(percent)

    def routed(self) -> int | None:
        """A new call is routed: the share to admit now, when the load is gone and more may come in."""
        return self.admission.routed(time.monotonic())

    async def restart(self) -> None:
        """A new connection: whatever share an earlier fairline left, all calls again."""
        self.admission = admission.Admission()
        await self.admit(self.admission.percent)

    async def admit(self, percent: int) -> None:
        """Tell the dialplan what share of new calls to let into the app (a global variable)."""
        try:
            await self.ari.request("POST", "/asterisk/variable", {"variable": ADMIT_VARIABLE, "value": str(percent)})
        except AriError as exc:  # the calls it would have kept away come to the app and are shed one by one
            self.log.error("call.admission_failed", percent=percent, error=str(exc))
            return
        log = self.log.warning if percent < 100 else self.log.info
        log("call.admission", percent=percent)
