"""Publish the fallback dialplan: put the generated context where Asterisk reads it, reload, verify.

The file is replaced atomically (a reload never reads half of it); `Reload` of pbx_config then
makes Asterisk swap the whole dialplan at once (calls already in it go on). The file ends with
one more extension, `digest`, whose NoOp carries the SHA-256 of the text above it; Asterisk must
then show that digest in fairline-fallback (`ShowDialPlan` of that one extension), or publishing
failed: the reload read another file, or not this one to its end. Both actions need the AMI
class `config` and nothing else (decision 0022, docs/operations.md).

Why one extension and not the whole listing: for 5,000 numbers Asterisk lists 10,000
priorities, and panoramisk parses them in the event loop that runs it; measured, that held
the loop for up to 100 ms at a time (30 ms from a worker thread, through the GIL). The call
path's loop must not wait on that. The carrier cannot reach `digest`: `from-carrier` jumps
into fairline-fallback only for a DID of digits and `+`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

from ari_app.ami.session import AmiSession
from ari_app.dialplan_gen import CONTEXT
from ari_app.errors import AmiRefused, FallbackNotLoaded
from ari_app.settings import AmiSettings
from plumbing.durable import fsync_dir, write_all

RELOAD_MODULE = "pbx_config.so"  # the module that reads extensions.conf (and the file it includes)
DIGEST_EXTENSION = "digest"


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackPublished:
    """What was published: the file, the digest Asterisk showed for it, the extensions (numbers) of fairline-fallback."""

    file: Path
    digest: str
    extensions: int


def digest_of(text: str) -> str:
    """What the `digest` extension of a published file carries: `sha256:` and the hex digest of `text`."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def with_digest(text: str) -> str:
    """`text` (from `fallback_dialplan`, which ends inside the context) with the `digest` extension after it."""
    return (f"{text}\n; Added by `fairline dialplan publish`: the SHA-256 of the text above, which it asks\n"
            f"; Asterisk for after the reload to know that Asterisk runs this file.\n"
            f"exten => {DIGEST_EXTENSION},1,NoOp({digest_of(text)})\n")


async def publish_fallback(ami: AmiSettings, text: str, *, timeout: float = 10.0) -> FallbackPublished:
    """Make `text` (from `fallback_dialplan`) the context fairline-fallback that Asterisk runs.

    Raises AmiUnreachable, AmiUnauthorized, AmiRefused (e.g. the AMI user lacks the class
    `config`) or FallbackNotLoaded (the file could not be written, or Asterisk does not show
    this text's digest after the reload). Callers publish one text at a time per Asterisk: a
    second publish between this one's write and its check would fail the check.
    """
    async with AmiSession(ami, timeout=timeout) as session:
        # Only once Asterisk has taken the user: a file written for a refused session would wait
        # there for whoever reloads next.
        digest, extensions = await asyncio.to_thread(_write_fallback, ami.fallback_file, text)
        await _reload(session, deadline=asyncio.get_running_loop().time() + timeout)
        try:
            listed = await session.action_list("ShowDialPlan", Context=CONTEXT, Extension=DIGEST_EXTENSION)
        except AmiRefused as exc:
            if "Did not find" not in exc.message:
                raise
            listed = []
    shown = [m.get("AppData", "") for m in listed
             if m.get("Event") == "ListDialplan" and m.get("Context") == CONTEXT
             and m.get("Extension") == DIGEST_EXTENSION and m.get("Application") == "NoOp"]
    if shown != [digest]:
        raise FallbackNotLoaded(
            f"Asterisk reloaded but does not run the file just written to {ami.fallback_file}: its {CONTEXT} "
            f"context shows {' '.join(shown) or 'no digest'} where {digest} was written; is that the file "
            f"extensions.conf includes (FAIRLINE_ASTERISK_FALLBACK)? Asterisk's log says what it read")
    return FallbackPublished(ami.fallback_file, digest, extensions)


def _write_fallback(path: Path, text: str) -> tuple[str, int]:
    """Write `text` and its digest extension to `path`; the digest, and the extensions of fairline-fallback.

    In a worker thread: for 5,000 numbers the text is 1.6 MB, and hashing, copying and counting it took
    the event loop 5-14 ms at once (docs/performance.md); hashlib lets go of the GIL while it hashes.
    """
    _replace_file(path, with_digest(text))
    fallback = text.split(f"[{CONTEXT}]", 1)[-1]  # the file's other contexts come before it (dialplan_gen.py)
    return digest_of(text), fallback.count("\nexten => ")


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
