"""Background tasks that neither vanish nor lose their exception.

The event loop keeps only a weak reference to a task, so a task nobody holds may be
garbage-collected mid-run; and an exception nobody retrieves is reported, if at all,
as "Task exception was never retrieved" long after. `spawn` holds a reference until
the task ends and logs its exception as an event when it does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()  # every spawned task until it ends: the loop holds them weakly


def spawn(coro: Coroutine[Any, Any, T], *, name: str, log: structlog.typing.FilteringBoundLogger,
          crashed: str = "task.crashed", keep: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[T]:
    """Run `coro` as a task named `name`; an exception it ends with is logged as `crashed`.

    `keep`, when given, also holds the task until it ends (for an owner that waits for its tasks,
    e.g. on shutdown).
    """
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    if keep is not None:
        keep.add(task)

    def done(t: asyncio.Task[T]) -> None:
        _running.discard(t)
        if keep is not None:
            keep.discard(t)
        if not t.cancelled() and (exc := t.exception()) is not None:
            log.error(crashed, task=t.get_name(), exc_info=exc)

    task.add_done_callback(done)
    return task
