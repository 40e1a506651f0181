"""Checking a configuration version without holding the event loop (issue 16).

libyaml composes a document in C without letting go of the GIL: in a worker thread, checking a
5,000-number version held fairline's event loop for 100-250 ms at a time, and calls being set up
were shed (docs/performance.md, bench/config_apply.py). So a child process checks the version and
hands the Config back in pickled pieces: everything but the numbers, then the numbers in chunks,
which the loop unpickles one at a time (about a millisecond each), letting other work run between.
"""

from __future__ import annotations

import asyncio
import copyreg
import dataclasses
import gc
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from types import MappingProxyType
from typing import Any

from ari_app.config.yaml_loader import parse
from ari_app.core.model import Config

CHUNK = 100  # numbers per piece: unpickled in under a millisecond



def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


# The model keeps its mappings read-only; a pickled one comes back read-only too.
copyreg.pickle(MappingProxyType, lambda m: (read_only, (dict(m),)))

_pool: ProcessPoolExecutor | None = None


def _in_the_background() -> None:
    """The child yields the CPU to the call path: on a machine whose cores Asterisk and fairline's loop
    keep busy, a second of YAML at full priority kept the loop off the CPU for 100 ms and more."""
    os.nice(10)


def check_in_pieces(text: str, source: str) -> list[bytes]:
    """In the child: check `text` as the loader does (ConfigError names `source`); the Config in pickled pieces."""
    config = parse(text, source)
    numbers = list(config.numbers.items())
    rest = dataclasses.replace(config, numbers=MappingProxyType({}))
    return [pickle.dumps(rest)] + [pickle.dumps(numbers[i:i + CHUNK]) for i in range(0, len(numbers), CHUNK)]


async def parse_off_loop(text: str, source: str) -> Config:
    """The Config of `text`, checked in a child process; raises ConfigError as `parse` does."""
    global _pool
    if _pool is None:  # one child, started at the first version and kept: later versions start at once
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_in_the_background)
    pieces = await asyncio.get_running_loop().run_in_executor(_pool, check_in_pieces, text, source)
    rest: Config = pickle.loads(pieces[0])
    numbers: dict[str, Any] = {}
    for piece in pieces[1:]:
        await asyncio.sleep(0)  # the loop's other work runs between pieces
        numbers.update(pickle.loads(piece))
    config = dataclasses.replace(rest, numbers=MappingProxyType(numbers))
    # A 5,000-number version is some 100,000 objects: the collector's full passes over them held the loop
    # 9-52 ms each. Out of its sight they go, as what fairline loaded at start did (cli.py); they are freed
    # by reference counting all the same once no call uses the version (a Config holds no cycles).
    gc.freeze()
    return config
