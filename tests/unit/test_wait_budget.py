"""One minute per caller, in total (decision 0029): what is left at run time, and the worst case of every path."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ari_app.core.model import (
    CONFIRM_SECONDS,
    Announce,
    ForwardTo,
    Number,
    OpeningHours,
    Queue,
    Route,
    Strategy,
    Target,
    TargetKind,
    ToQueue,
    Window,
)
from ari_app.core.queueing import QueueSpec, RingStrategy
from ari_app.core.wait_budget import OVERFLOW_NOTICE_SECONDS, TOTAL_WAIT_SECONDS, Overrun, overruns, remaining
from rating.core.cdr import QueueOutcome, QueueVisit
from rating.core.tariff import NumberType

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
HOPS = 5


def visit(entered: float, waited: float, queue: str = "q") -> QueueVisit:
    return QueueVisit(queue, T0 + timedelta(seconds=entered), Decimal(str(waited)), QueueOutcome.OVERFLOWED)


class TestRemaining:
    def test_a_first_queue_gets_the_whole_minute(self) -> None:
        assert remaining((), T0) == TOTAL_WAIT_SECONDS == 60

    def test_the_minute_runs_on_from_the_first_queue_between_visits_too(self) -> None:
        """Queue a from 0 to 30 s, then "please hold" and a route ringing 8 s: the next queue gets 19.5 s."""
        assert remaining((visit(0, 30),), T0 + timedelta(seconds=40.5)) == 19.5

    def test_only_the_first_visit_starts_the_clock(self) -> None:
        assert remaining((visit(0, 20), visit(25, 20, "b")), T0 + timedelta(seconds=50)) == 10

    def test_nothing_left_is_zero_or_less(self) -> None:
        assert remaining((visit(0, 60),), T0 + timedelta(seconds=63)) == -3


def phone(e164: str, ring: int = 20) -> Target:
    """A phone that need not confirm: rings exactly its ring time (a confirming one: test below)."""
    return Target(e164, TargetKind.MOBILE, ring, confirm=False)


def number(e164: str, route: Route, outside: Route | None = None) -> Number:
    hours = OpeningHours(ZoneInfo("Europe/Amsterdam"), ((Window(480, 1080),),) * 7) if outside else None
    return Number(e164, "acme", NumberType.LOCAL, route=route, hours=hours, outside_hours=outside)


def rings(*seconds: int, then: Announce | ForwardTo | ToQueue = Announce("x"),
          strategy: Strategy = Strategy.SEQUENTIAL) -> Route:
    return Route(strategy, tuple(phone(f"+3161234560{i}", s) for i, s in enumerate(seconds)), then)


def straight(queue: str) -> Route:
    return Route(Strategy.SIMULTANEOUS, (), ToQueue(queue))


def queue(name: str, cap: int, overflow: Announce | ForwardTo | Target = Announce("x")) -> Queue:
    return Queue("acme", QueueSpec(name, ("+31612340001",), RingStrategy.RINGALL, 15, 0, cap), overflow)


N1, N2, N3 = "+31201230601", "+31201230602", "+31201230603"


def check(numbers: list[Number], queues: list[Queue], hops: int = HOPS) -> list[Overrun]:
    return overruns(MappingProxyType({n.e164: n for n in numbers}),
                    MappingProxyType({q.spec.name: q for q in queues}), max_hops=hops)


class TestPaths:
    def test_one_queue_of_a_minute_behind_ringing_is_fine_ringing_before_the_first_queue_does_not_count(self) -> None:
        assert check([number(N1, rings(20, 20, then=ToQueue("a")))], [queue("a", 60)]) == []

    def test_two_queues_of_a_minute_each_are_refused(self) -> None:
        [found] = check([number(N1, straight("a")), number(N2, straight("b"))],
                        [queue("a", 60, ForwardTo(N2)), queue("b", 60)])
        assert (found.queue, found.seconds, found.over) == ("b", 123, 63)
        assert str(found) == (f"{N1} -> queue a (up to 60 s) -> please hold (3 s) -> {N2} -> queue b (up to 60 s): "
                              "60 + 3 + 0 + 60 = 123 s")

    def test_ringing_between_queues_counts(self) -> None:
        ok = [queue("a", 30, ForwardTo(N2)), queue("b", 60 - 30 - OVERFLOW_NOTICE_SECONDS - 15)]
        assert check([number(N1, straight("a")), number(N2, rings(15, then=ToQueue("b")))], ok) == []
        over = [queue("a", 30, ForwardTo(N2)), queue("b", 13)]
        [found] = check([number(N1, straight("a")), number(N2, rings(15, then=ToQueue("b")))], over)
        assert found.seconds == 61 and f"{N2} (rings 15 s)" in str(found)

    def test_a_phone_that_must_confirm_counts_its_confirmation_time_too(self) -> None:
        """Decision 0031: the caller hears ringing while the phone's person hears the prompt and presses 1."""
        confirming = Route(Strategy.SEQUENTIAL, (dataclasses.replace(phone("+31612345600", 10), confirm=None),),
                           ToQueue("b"))
        [found] = check([number(N1, straight("a")), number(N2, confirming)], [queue("a", 10, ForwardTo(N2)),
                                                                            queue("b", 10)])
        assert found.seconds == 10 + OVERFLOW_NOTICE_SECONDS + 10 + CONFIRM_SECONDS + 10

    @pytest.mark.parametrize(("strategy", "rung"), [(Strategy.SEQUENTIAL, 25), (Strategy.SIMULTANEOUS, 15)])
    def test_a_route_rings_its_targets_one_after_the_other_or_together(self, strategy: Strategy, rung: int) -> None:
        [found] = check([number(N1, straight("a")), number(N2, rings(10, 15, then=ToQueue("b"), strategy=strategy))],
                        [queue("a", 50, ForwardTo(N2)), queue("b", 1)])
        assert found.seconds == 50 + 3 + rung + 1

    def test_forwards_between_queues_count_each_route_s_ringing(self) -> None:
        [found] = check([number(N1, straight("a")), number(N2, rings(5, then=ForwardTo(N3))),
                         number(N3, rings(7, then=ToQueue("b")))],
                        [queue("a", 40, ForwardTo(N2)), queue("b", 10)])
        assert found.seconds == 40 + 3 + 5 + 7 + 10

    def test_what_follows_the_last_queue_does_not_count(self) -> None:
        """An overflow phone, or a number whose route ends in an announcement: where the minute sends the caller."""
        assert check([number(N1, straight("a")), number(N2, rings(120, 120))],
                     [queue("a", 60, ForwardTo(N2))]) == []
        assert check([number(N1, straight("a"))], [queue("a", 60, phone("+31612340009"))]) == []

    def test_the_route_outside_opening_hours_is_walked_too(self) -> None:
        [found] = check([number(N1, straight("a")), number(N2, rings(5), outside=straight("b"))],
                        [queue("a", 40, ForwardTo(N2)), queue("b", 30)])
        assert found.queue == "b" and found.seconds == 73

    def test_the_hop_limit_ends_a_path_as_it_ends_the_call(self) -> None:
        """With no hop left the flow plays the no-answer announcement instead of forwarding to b's number."""
        numbers = [number(N1, straight("a")), number(N2, straight("b"))]
        queues = [queue("a", 60, ForwardTo(N2)), queue("b", 60)]
        assert check(numbers, queues, hops=0) == []
        assert check(numbers, queues, hops=1) != []

    def test_a_path_is_reported_at_the_first_queue_that_passes_and_once_for_all_numbers_into_it(self) -> None:
        numbers = [number(N1, straight("a")), number(N2, rings(5, then=ToQueue("a"))), number(N3, straight("b"))]
        found = check(numbers, [queue("a", 50, ForwardTo(N3)), queue("b", 20)])
        # a (50) -> b passes at 73 s; from N2 the same stretch from queue a on: reported once, from N1.
        assert [(f.queue, f.path[0].what) for f in found] == [("b", N1)]

    def test_a_forward_to_a_number_not_configured_ends_the_path(self) -> None:
        assert check([number(N1, straight("a"))], [queue("a", 60, ForwardTo(N2))]) == []


# ---- any configuration: the walk against a plain enumeration of the calls' paths

CAPS = st.integers(1, 60)
RINGS = st.integers(1, 40)


@st.composite
def configurations(draw: st.DrawFn) -> tuple[list[Number], list[Queue]]:
    names = [f"+3120123060{i}" for i in range(draw(st.integers(1, 5)))]
    queue_names = [f"q{i}" for i in range(draw(st.integers(0, 4)))]
    ends = [st.just(Announce("x")), *([st.sampled_from(names).map(ForwardTo)]),
            *([st.sampled_from(queue_names).map(ToQueue)] if queue_names else [])]

    def route() -> Route:
        if queue_names and draw(st.booleans()):
            return straight(draw(st.sampled_from(queue_names)))
        return rings(*draw(st.lists(RINGS, min_size=1, max_size=3)), then=draw(st.one_of(ends)),
                     strategy=draw(st.sampled_from(Strategy)))

    numbers = [number(n, route(), route() if draw(st.booleans()) else None) for n in names]
    overflow = st.one_of(st.just(Announce("x")), st.sampled_from(names).map(ForwardTo))
    return numbers, [queue(q, draw(CAPS), draw(overflow)) for q in queue_names]


def worst_minute(numbers: list[Number], queues: list[Queue], hops: int) -> int:
    """The longest a caller could be held in queues, over every call, by enumerating calls step by step."""
    by_number, by_queue = {n.e164: n for n in numbers}, {q.spec.name: q for q in queues}
    worst = 0
    # (where, hops so far, the minute so far or None before the first queue)
    todo: list[tuple[str, int, int | None]] = [(n.e164, 0, None) for n in numbers]
    while todo:
        where, hopped, minute = todo.pop()
        if where in by_queue:
            q = by_queue[where]
            out = (minute or 0) + q.spec.max_wait_seconds
            worst = max(worst, out)
            if isinstance(q.overflow, ForwardTo) and hopped < hops and out <= TOTAL_WAIT_SECONDS:
                todo.append((q.overflow.number, hopped + 1, out + OVERFLOW_NOTICE_SECONDS))
            continue
        n = by_number[where]
        for r in {n.route, n.outside_hours} - {None}:
            assert r is not None
            rung = sum(t.ring_seconds for t in r.targets) if r.strategy is Strategy.SEQUENTIAL else max(
                (t.ring_seconds for t in r.targets), default=0)
            later = None if minute is None else minute + rung
            if isinstance(r.no_answer, ToQueue):
                todo.append((r.no_answer.name, hopped, later))
            elif isinstance(r.no_answer, ForwardTo) and hopped < hops:
                todo.append((r.no_answer.number, hopped + 1, later))
    return worst


class TestAnyConfiguration:
    @settings(max_examples=300, deadline=None)
    @given(configurations(), st.integers(0, HOPS))
    def test_refused_exactly_when_some_call_could_be_held_past_the_minute(
            self, config: tuple[list[Number], list[Queue]], hops: int) -> None:
        numbers, queues = config
        assert bool(check(numbers, queues, hops)) == (worst_minute(numbers, queues, hops) > TOTAL_WAIT_SECONDS)

    @settings(max_examples=300, deadline=None)
    @given(configurations(), st.integers(0, HOPS))
    def test_each_overrun_adds_up_and_lowering_its_queue_by_the_excess_would_fit(
            self, config: tuple[list[Number], list[Queue]], hops: int) -> None:
        for found in check(*config, hops=hops):
            counted = [leg.seconds for leg in found.path if leg.counted]
            assert sum(counted) == found.seconds > TOTAL_WAIT_SECONDS
            assert found.path[-1].what == f"queue {found.queue}"
            assert found.seconds - found.over == TOTAL_WAIT_SECONDS
