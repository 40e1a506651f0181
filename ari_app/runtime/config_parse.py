"""Checking a configuration version without holding the event loop (issue 16).

libyaml composes a document in C without letting go of the GIL: in a worker thread, checking a
5,000-number version held fairline's event loop for 100-250 ms at a time, and calls being set up
were shed (docs/performance.md, bench/config_apply.py). So a child process checks each version,
and derives there what fairline needs of it besides the Config (`Prepared`): the fallback
dialplan, a digest of what the number directory holds, whether US states may be needed. Worker
threads would hold the GIL for those too.

The child keeps the last version it checked, and checks the next one against it: only the items
of `numbers:` whose text changed are read again (yaml_loader.check). It answers with what changed
against that version when fairline holds it too (its token), else with the whole Config: the part
outside the numbers, then the numbers in chunks, which the loop unpickles one at a time (about a
millisecond each), letting other work run between.
"""

from __future__ import annotations

import asyncio
import copyreg
import dataclasses
import gc
import hashlib
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import MappingProxyType
from typing import Any

from ari_app.config.yaml_loader import Checked, check
from ari_app.core.model import Config, Number
from ari_app.dialplan_gen import fallback_dialplan

CHUNK = 100  # numbers per piece: unpickled in under a millisecond


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


# The model keeps its mappings read-only; a pickled one comes back read-only too.
copyreg.pickle(MappingProxyType, lambda m: (read_only, (dict(m),)))


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    """A version as what changed against the one the child checked before (same everything but numbers)."""

    numbers: dict[str, Number]  # new or changed, by E.164
    order: list[str] | None  # every number, in the file's order; None: the same numbers in the same order


@dataclasses.dataclass(frozen=True, slots=True)
class Derived:
    """What fairline derives from a version besides its Config."""

    fallback: str  # the dialplan fallback (dialplan_gen.py)
    directory: str  # a digest of the customers and numbers rows the version gives the directory tables
    needs_us_states: bool  # Config.needs_us_states


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """A checked version, ready to switch to."""

    config: Config
    derived: Derived


def directory_rows(config: Config) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """What the directory tables hold of `config`: customers (id, name), numbers (E.164, customer, type)."""
    return ([(c.customer_id, c.name) for c in config.customers.values()],
            [(n.e164, n.customer_id, n.number_type.value) for n in config.numbers.values()])


def derive(config: Config) -> Derived:
    return Derived(fallback_dialplan(config), hashlib.sha256(repr(directory_rows(config)).encode()).hexdigest(),
                   config.needs_us_states)


_pool: ProcessPoolExecutor | None = None
_base: tuple[str, Config] | None = None  # in fairline: the child's last version, with its token
_last: tuple[str, Checked] | None = None  # in the child: the last version it checked, with its token


def _in_the_background() -> None:
    """The child yields the CPU to the call path: on a machine whose cores Asterisk and fairline's loop
    keep busy, a second of YAML at full priority kept the loop off the CPU for 100 ms and more. A
    fairline whose loop runs at a real-time priority (docs/operations.md) would pass it on to the
    child, which would then take a core from Asterisk for seconds: the child runs as usual."""
    if os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.nice(10)


def check_in_child(text: str, source: str, base: str | None) -> tuple[str, Derived, Changes | list[bytes]]:
    """In the child: check `text` (ConfigError names `source`); its token, what derives from it, and the
    Changes against the version of token `base` when the child checked that one last, else the whole
    Config in pickled pieces."""
    global _last
    previous = _last
    checked = check(text, source, previous[1] if previous is not None else None)
    token = os.urandom(8).hex()
    _last = (token, checked)
    config = checked.config
    if previous is not None and previous[0] == base:
        changes = _changes(previous[1].config, config)
        if changes is not None:
            return token, derive(config), changes
    numbers = list(config.numbers.items())
    rest = dataclasses.replace(config, numbers=MappingProxyType({}))
    return token, derive(config), [pickle.dumps(rest)] + [pickle.dumps(numbers[i:i + CHUNK])
                                                           for i in range(0, len(numbers), CHUNK)]


def _changes(old: Config, new: Config) -> Changes | None:
    """`new` as Changes against `old`, or None when more than numbers changed, or more numbers than one
    piece holds (those come in pieces, unpickled one at a time)."""
    nothing: MappingProxyType[str, Number] = MappingProxyType({})
    if dataclasses.replace(old, numbers=nothing, text="") != dataclasses.replace(new, numbers=nothing, text=""):
        return None
    changed = {e164: number for e164, number in new.numbers.items()
               if (before := old.numbers.get(e164)) is not number and before != number}
    if len(changed) > CHUNK:
        return None
    order = None if list(old.numbers) == list(new.numbers) else list(new.numbers)
    return Changes(changed, order)


def prime_in_child(text: str) -> str:
    """In the child: check the version fairline started with, as the base of the next; its token."""
    global _last
    _last = (os.urandom(8).hex(), check(text, "the configuration in force"))
    return _last[0]


async def _in_child(fn: Any, *args: Any) -> Any:
    global _pool
    for attempt in (1, 2):
        if _pool is None:  # one child, started at the first use and kept: later versions start at once
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_in_the_background)
        try:
            return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)
        except BrokenProcessPool:
            # The child died (killed, out of memory): once more in a new one, which knows no version yet
            # and so answers with the whole Config.
            _pool = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def prime(config: Config) -> None:
    """Let the child check `config` (the version in force at start), so that the first new version
    is checked against it, as every later one is against the one before."""
    global _base
    token = await _in_child(prime_in_child, config.text)
    if _base is None:  # no version was checked meanwhile
        _base = (token, config)


async def prepare_off_loop(text: str, source: str) -> Prepared:
    """`text` checked and prepared in a child process; raises ConfigError as `parse` does."""
    global _base
    token, derived, answer = await _in_child(check_in_child, text, source, _base[0] if _base is not None else None)
    if isinstance(answer, Changes):
        assert _base is not None
        base = _base[1]
        if answer.order is None:
            numbers = dict(base.numbers)
            numbers.update(answer.numbers)
        else:
            numbers = {e164: answer.numbers[e164] if e164 in answer.numbers else base.numbers[e164]
                       for e164 in answer.order}
        config = dataclasses.replace(base, numbers=MappingProxyType(numbers), text=text)
    else:
        rest: Config = pickle.loads(answer[0])
        numbers = {}
        for piece in answer[1:]:
            await asyncio.sleep(0)  # the loop's other work runs between pieces
            numbers.update(pickle.loads(piece))
        config = dataclasses.replace(rest, numbers=MappingProxyType(numbers))
    _base = (token, config)
    # A 5,000-number version is some 100,000 objects: the collector's full passes over them held the loop
    # 9-52 ms each. Out of its sight they go, as what fairline loaded at start did (cli.py); they are freed
    # by reference counting all the same once no call uses the version (a Config holds no cycles).
    gc.freeze()
    return Prepared(config, derived)
