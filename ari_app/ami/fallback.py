"""Publish the fallback dialplan: put the generated context where Asterisk reads it, reload, verify.

The file is replaced atomically (a reload never reads half of it); `Reload` of pbx_config then
makes Asterisk swap the whole dialplan at once (calls already in it go on), and `ShowDialPlan`
of the context must list exactly the priorities the text holds, or publishing failed. Both
actions need the AMI class `config` and nothing else (decision 0022, docs/operations.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections import Counter
from pathlib import Path

from ari_app.ami.session import AmiMessage, AmiSession
from ari_app.dialplan_gen import CONTEXT, DialplanPriority, priorities_of
from ari_app.errors import AmiRefused, FallbackNotLoaded
from ari_app.settings import AmiSettings
from plumbing.durable import fsync_dir, write_all

RELOAD_MODULE = "pbx_config.so"  # the module that reads extensions.conf (and the file it includes)


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackPublished:
    """What Asterisk shows after publishing: the file written and what the context now holds."""

    file: Path
    extensions: int
    priorities: int


async def publish_fallback(ami: AmiSettings, text: str, *, timeout: float = 10.0) -> FallbackPublished:
    """Make `text` (from `fallback_dialplan`) the context fairline-fallback that Asterisk runs.

    Raises AmiUnreachable, AmiUnauthorized, AmiRefused (e.g. the AMI user lacks the class
    `config`) or FallbackNotLoaded (the file could not be written, or Asterisk shows other
    priorities than `text` holds). Parsing and writing run in a worker thread: the event
    loop is not held up by a large configuration. Callers publish one text at a time per
    Asterisk: a second publish between this one's write and its check would fail the check.
    """
    expected = await asyncio.to_thread(priorities_of, text)
    async with AmiSession(ami, timeout=timeout) as session:
        # Only once Asterisk has taken the user: a file written for a refused session would wait
        # there for whoever reloads next.
        await asyncio.to_thread(_replace_file, ami.fallback_file, text)
        await _reload(session, deadline=asyncio.get_running_loop().time() + timeout)
        try:
            listed = await session.action_list("ShowDialPlan", Context=CONTEXT)
        except AmiRefused as exc:
            if "Did not find context" not in exc.message:
                raise
            listed = []  # an empty context is not shown at all
    shown = shown_priorities(listed)
    problem = difference(expected, shown)
    if problem is not None:
        raise FallbackNotLoaded(f"Asterisk reloaded {ami.fallback_file} but its {CONTEXT} context is not what was "
                                f"published: {problem}; is that the file extensions.conf includes "
                                f"(FAIRLINE_ASTERISK_FALLBACK)? Asterisk's log says why it skipped a line")
    return FallbackPublished(ami.fallback_file, len({p.extension for p in shown}), len(shown))


def _replace_file(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: a reader sees the old or the new file."""
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o644)  # Asterisk may run as another user than fairline; nothing secret is in it
            write_all(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise FallbackNotLoaded(f"cannot write the fallback dialplan to {path}: {exc.strerror}; "
                                f"FAIRLINE_ASTERISK_FALLBACK must name the file Asterisk's extensions.conf includes, "
                                f"in a directory fairline may write") from None


async def _reload(session: AmiSession, *, deadline: float) -> None:
    """Reload pbx_config; another reload under way (Asterisk runs one at a time) is waited out."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await session.action("Reload", Module=RELOAD_MODULE)
            return
        except AmiRefused as exc:
            if "in progress" not in exc.message or loop.time() > deadline:
                raise
        await asyncio.sleep(0.2)


def shown_priorities(listed: list[AmiMessage]) -> tuple[DialplanPriority, ...]:
    """The priorities of fairline-fallback in ShowDialPlan's answer (its ListDialplan events)."""
    return tuple(
        DialplanPriority(m["Extension"], int(m["Priority"]), m.get("Application", ""), m.get("AppData", ""))
        for m in listed
        if m.get("Event") == "ListDialplan" and m.get("Context") == CONTEXT and m.get("Priority", "").isdigit()
    )


def difference(expected: tuple[DialplanPriority, ...], shown: tuple[DialplanPriority, ...]) -> str | None:
    """The first way `shown` differs from `expected` (order aside), said for a person; None when equal."""
    missing = Counter(expected) - Counter(shown)
    extra = Counter(shown) - Counter(expected)
    if not missing and not extra:
        return None
    parts = []
    if missing:
        p = min(missing, key=_order)
        parts.append(f"{len(missing)} priority(ies) missing, e.g. {_say(p)}")
    if extra:
        p = min(extra, key=_order)
        parts.append(f"{len(extra)} not published, e.g. {_say(p)}")
    return "; ".join(parts)


def _order(p: DialplanPriority) -> tuple[str, int]:
    return p.extension, p.priority


def _say(p: DialplanPriority) -> str:
    return f"{p.extension},{p.priority},{p.application}({p.data})"
