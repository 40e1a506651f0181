"""A customer's uploaded voicemail greeting: converted by sox, kept in PostgreSQL, written into the
greetings directory, and put into force by a new configuration version with the customer as author
(decision 0036). The checks are console/core/greeting_check.py; the files' life on each node is
rating/storage/greetings.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

import asyncpg
import structlog
import yaml

from ari_app.config.yaml_loader import parse
from ari_app.config_versions import number_changes
from console.core.greeting_check import MAX_SECONDS, RATE, AudioType, Converted, GreetingRefused, check_converted
from rating.storage import greetings
from rating.storage.config_store import StaleBase, StoredVersion, newest_version, store_version

log = structlog.get_logger(__name__)

SOX_TIMEOUT_S = 30.0
STALE_RETRIES = 3


class NoVoicemailBox(Exception):
    """The customer has no voicemail box in the newest version: there is nothing to greet with."""


async def convert(upload: bytes, kind: AudioType) -> Converted:
    """The upload as Asterisk plays it (8 kHz, 16-bit, mono WAV), cut after MAX_SECONDS + 1 s so a long
    file is never converted whole; GreetingRefused when sox cannot read it or the result is out of bounds.
    Repeatable (`-R`: the same dither every time), so one file uploaded twice is one greeting."""
    with tempfile.TemporaryDirectory(prefix="fairline-greeting-") as work:
        source, target = Path(work) / "upload", Path(work) / "greeting.wav"
        await asyncio.to_thread(source.write_bytes, upload)
        try:
            sox = await asyncio.create_subprocess_exec(
                "sox", "-V1", "-R", "-t", kind, str(source), "-t", "wav", "-r", str(RATE), "-c", "1", "-b", "16",
                "-e", "signed-integer", str(target), "trim", "0", str(MAX_SECONDS + 1),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            log.error("console.sox_missing", hint="install sox (make setup): greetings cannot be converted")
            raise GreetingRefused("this console cannot convert audio just now (our side: sox is missing); "
                                  "please try again later") from None
        try:
            _, err = await asyncio.wait_for(sox.communicate(), SOX_TIMEOUT_S)
        except TimeoutError:
            sox.kill()
            await sox.wait()
            raise GreetingRefused("the file took too long to convert; upload a shorter greeting") from None
        if sox.returncode != 0:
            said = (err.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1]
            raise GreetingRefused(f"not audio this console can read, though it starts like a {kind.upper()} file "
                                  f"(sox: {said.removeprefix('sox FAIL formats: ')[:160]})")
        return check_converted(await asyncio.to_thread(target.read_bytes))


def with_greeting(text: str, customer_id: str, path: str) -> str:
    """`text` with customer `customer_id`'s voicemail box greeting `path` (`greeting_file`), instead of any
    greeting it had; everything else as written, comments included. NoVoicemailBox when it has no box."""
    box = _box(yaml.compose(text), customer_id)
    if box is None:
        raise NoVoicemailBox(customer_id)
    pairs = {k.value: (k, v) for k, v in box.value if isinstance(k, yaml.ScalarNode)}
    if "greeting_file" in pairs:
        _, value = pairs["greeting_file"]
        return text[:value.start_mark.index] + path + text[value.end_mark.index:]
    if "greeting" in pairs:
        key, value = pairs["greeting"]
        return (text[:key.start_mark.index] + "greeting_file" + text[key.end_mark.index:value.start_mark.index]
                + path + text[value.end_mark.index:])
    first: yaml.Node = box.value[0][0]
    at: int = first.start_mark.index
    if box.flow_style:
        return text[:at] + f"greeting_file: {path}, " + text[at:]
    indent: int = first.start_mark.column
    return text[:at] + f"greeting_file: {path}\n" + " " * indent + text[at:]


def _box(root: yaml.Node | None, customer_id: str) -> yaml.MappingNode | None:
    def get(node: yaml.Node, key: str) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    found: yaml.Node = v
                    return found
        return None

    customers = get(root, "customers") if root is not None else None
    if not isinstance(customers, yaml.SequenceNode):
        return None
    for item in customers.value:
        cid = get(item, "id")
        if isinstance(cid, yaml.ScalarNode) and cid.value == customer_id:
            box = get(item, "voicemail")
            return box if isinstance(box, yaml.MappingNode) and box.value else None
    return None


async def publish(conn: asyncpg.Connection, *, customer_id: str, greeting: Converted, greetings_dir: Path,
                  author: str) -> StoredVersion:
    """Keep the greeting, write its file here, and store the version whose box plays it (made from the newest;
    made again if another version landed meanwhile). NoVoicemailBox, or ConfigError if the version would not check."""
    sha = hashlib.sha256(greeting.audio).hexdigest()
    path = str(greetings.file_name(greetings_dir, sha))
    attempt = 0
    while True:
        attempt += 1
        newest = await newest_version(conn)
        if newest is None:
            raise NoVoicemailBox(customer_id)
        text = await asyncio.to_thread(with_greeting, newest.content, customer_id, path)
        if text == newest.content:
            return newest  # this greeting is in force already
        async with conn.transaction():
            await greetings.store(conn, sha256=sha, customer_id=customer_id, audio=greeting.audio,
                                  seconds=greeting.seconds, uploaded_by=author)
            await asyncio.to_thread(greetings.write, greetings_dir, sha, greeting.audio)
            # The same check `config apply` makes: a version that would not check is never stored.
            await asyncio.to_thread(parse, text, f"{newest.name} with {customer_id}'s greeting")
            changes = await asyncio.to_thread(number_changes, newest.content, text)
            try:
                return await store_version(conn, content=text, author=author, role="customer",
                                           reason="voicemail greeting uploaded in the console", based_on=newest.id,
                                           changes=changes)
            except StaleBase:
                if attempt == STALE_RETRIES:
                    raise

