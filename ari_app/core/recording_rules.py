"""What the law lets fairline do with a call it is asked to record: pure decisions for the call flow.

The mode a call needs is the strictest of the places of the number, the caller and the
phone that answers (ari_app/core/consent.py, decision 0013). Which phone answers is known only
at the answer, so the flow decides twice: at the start, over every phone the number's route
may ring (so the caller hears the notice or is asked before anything rings), and again at
the answer with the phone that did, recording only when what the caller went through covers
what that phone's place asks for.
"""

from __future__ import annotations

from datetime import datetime

from ari_app.core.consent import Decision, Mode, mode_for_call
from ari_app.core.model import Config, Number, Target, ToQueue


def phones(config: Config, number: Number, at: datetime) -> tuple[str, ...]:
    """Every phone the number's route in force at `at` may ring: its targets, its queue's agents and overflow."""
    route = number.route_at(at)
    if route is None:
        return ()
    found = [t.e164 for t in route.targets]
    if isinstance(route.no_answer, ToQueue) and route.no_answer.name in config.queues:
        queue = config.queues[route.no_answer.name]
        found += queue.spec.agents
        if isinstance(queue.overflow, Target):
            found.append(queue.overflow.e164)
    return tuple(dict.fromkeys(found))


def decide(config: Config, number: Number, caller: str | None, at: datetime) -> Decision:
    """The strictest mode over the phones the call may reach, with the reasons."""
    law = config.recording.law
    decisions = [mode_for_call(law, number.e164, caller, phone) for phone in phones(config, number, at) or (None,)]
    return max(decisions, key=lambda d: d.mode.strictness)


def at_answer(config: Config, number: str, caller: str | None, phone: str) -> Decision:
    """The mode the call needs now that `phone` answered."""
    return mode_for_call(config.recording.law, number, caller, phone)


def covers(done: Mode | None, needed: Mode) -> bool:
    """Whether what the caller went through (`done`: silence, a notice, agreement) is enough for `needed`."""
    return done is not None and needed is not Mode.FORBIDDEN and done >= needed


def media(sounds: tuple[str, ...]) -> str:
    """ARI's media list for sounds played one after the other."""
    return ",".join(f"sound:{s}" for s in sounds)
