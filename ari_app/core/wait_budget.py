"""One minute per caller, in total (issue 18, decision 0029): what is left of a caller's minute, and which
configured paths could keep a caller waiting longer.

The minute starts when a queue first answers the caller and runs on, by the wall clock, until the caller
leaves the last queue of the call: every queue visit, the "please hold while I try" of an overflow, the
ringing of routes passed on the way to the next queue. Ringing before the first queue is an ordinary
unanswered forward, and what comes after the last queue is where the minute sends the caller: neither counts
(decision 0029 says why).

Pure: the call flow asks `remaining` at each queue it enters; the configuration loader asks `overruns`
and refuses the file when there are any.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from ari_app.core.model import (CONFIRM_SECONDS, Announce, AnswerConfirmation, ForwardTo, Number, Queue, Route,
                                 Strategy, Target, ToQueue)
from rating.core.cdr import QueueVisit

TOTAL_WAIT_SECONDS = 60  # the policy: no caller waits in queues for more than one minute, in total
# What an overflow to a number plays before that number's route (flow.OVERFLOWING, "pls-hold-while-try"):
# 2.4 s in Asterisk's English sounds, rounded up. The configuration check counts it; at run time the clock does.
OVERFLOW_NOTICE_SECONDS = 3


def remaining(visits: Sequence[QueueVisit], at: datetime) -> float:
    """Seconds left of the caller's minute at `at`, as they enter a queue after `visits` (may be 0 or less)."""
    if not visits:
        return float(TOTAL_WAIT_SECONDS)
    return TOTAL_WAIT_SECONDS - (at - visits[0].entered_at).total_seconds()


@dataclasses.dataclass(frozen=True, slots=True)
class Leg:
    """One stop on a path: a number (its route's worst-case ringing) or a queue (its cap), or the overflow's notice.

    `counted` is what the stop adds to the caller's minute: 0 before the first queue."""

    what: str  # "+31201230601", "queue support", "please hold"
    seconds: int
    counted: bool

    def __str__(self) -> str:
        if self.what.startswith("queue "):
            return f"{self.what} (up to {self.seconds} s)"
        if not self.counted or self.seconds == 0:  # before the first queue, or a route straight into a queue
            return self.what
        return f"{self.what} (rings {self.seconds} s)" if self.what.startswith("+") else f"{self.what} ({self.seconds} s)"


@dataclasses.dataclass(frozen=True, slots=True)
class Overrun:
    """A path on which a caller could still be held in queue `queue` past the minute."""

    queue: str
    path: tuple[Leg, ...]  # from the number dialled to `queue`
    seconds: int  # the worst-case minute at the moment `queue` lets the caller go

    @property
    def over(self) -> int:
        return self.seconds - TOTAL_WAIT_SECONDS

    def __str__(self) -> str:
        counted = " + ".join(str(leg.seconds) for leg in self.path if leg.counted)
        return f"{' -> '.join(map(str, self.path))}: {counted} = {self.seconds} s"


def ring_seconds(route: Route, confirmation: AnswerConfirmation = AnswerConfirmation()) -> int:
    """The longest a route rings before its no-answer: one Dial() for simultaneous, one after the other else.
    A phone that must confirm may take CONFIRM_SECONDS more, the caller still hearing ringing (decision 0031)."""
    if not route.targets:
        return 0
    rings = [t.ring_seconds + (CONFIRM_SECONDS if confirmation.applies(t) else 0) for t in route.targets]
    if route.strategy is Strategy.SIMULTANEOUS:
        return max(rings)
    return sum(rings)


def overruns(numbers: Mapping[str, Number], queues: Mapping[str, Queue], *, max_hops: int,
             confirmation: AnswerConfirmation = AnswerConfirmation()) -> list[Overrun]:
    """Every path, from any number, on which a caller could wait in queues for more than the minute.

    Walks what the call flow does: each route a number may have in force (opening hours or not), its
    no-answer (a number: one hop; a queue), each queue's overflow to a number (one hop, after the notice),
    up to `max_hops` hops, as the flow's hop limit. A path is reported at the first queue it passes the
    minute in; the same stretch from the first queue on, reached from several numbers, once (from the first
    number in `numbers`' order). Forwarding loops are the loader's to refuse; the hop limit ends them here.
    """
    found: dict[tuple[str, tuple[Leg, ...]], Overrun] = {}
    for e164 in numbers:
        for overrun in _number(_Walk(numbers, queues, max_hops, confirmation), e164, 0, None, ()):
            first = next(i for i, leg in enumerate(overrun.path) if leg.what.startswith("queue "))
            found.setdefault((overrun.queue, overrun.path[first:]), overrun)
    return list(found.values())


@dataclasses.dataclass(frozen=True, slots=True)
class _Walk:
    """What stays the same along every path."""

    numbers: Mapping[str, Number]
    queues: Mapping[str, Queue]
    max_hops: int
    confirmation: AnswerConfirmation


def _number(walk: _Walk, e164: str, hops: int, clock: int | None, path: tuple[Leg, ...]) -> Iterator[Overrun]:
    """`clock`: the caller's minute so far, None before the first queue."""
    number = walk.numbers.get(e164)
    if number is None:
        return
    for route in dict.fromkeys(r for r in (number.route, number.outside_hours) if r is not None):
        rings = ring_seconds(route, walk.confirmation)
        here = (*path, Leg(e164, rings, clock is not None))
        after = clock + rings if clock is not None else None
        match route.no_answer:
            case ToQueue(name=name):
                yield from _queue(walk, name, hops, after, here)
            case ForwardTo(number=forward) if hops + 1 <= walk.max_hops:
                yield from _number(walk, forward, hops + 1, after, here)
            case ForwardTo() | Announce():
                pass


def _queue(walk: _Walk, name: str, hops: int, clock: int | None, path: tuple[Leg, ...]) -> Iterator[Overrun]:
    queue = walk.queues.get(name)
    if queue is None:
        return
    cap = queue.spec.max_wait_seconds
    here = (*path, Leg(f"queue {name}", cap, True))
    leaves = (clock or 0) + cap
    if leaves > TOTAL_WAIT_SECONDS:
        yield Overrun(name, here, leaves)
        return  # further queues on this path pass it too: the first is the one to fix
    match queue.overflow:
        case ForwardTo(number=forward) if hops + 1 <= walk.max_hops:
            notice = Leg("please hold", OVERFLOW_NOTICE_SECONDS, True)
            yield from _number(walk, forward, hops + 1, leaves + OVERFLOW_NOTICE_SECONDS, (*here, notice))
        case ForwardTo() | Announce() | Target():
            pass
