"""The real stack for end-to-end tests: PostgreSQL, Asterisk 22 in its root filesystem, `fairline run`.

Started once per test session on free ports (so a running `make up` is not
disturbed) with a freshly created database; each test starts from an empty
CDR table. Tests never use $DATABASE_URL: they drop and create their database.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
from decimal import Decimal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402
from rating.commands import billing_cli  # noqa: E402
from rating.core.cdr import RatedCdr  # noqa: E402
from rating.storage.database import insert_cdrs, migrate  # noqa: E402
from tests.e2e.sipp import SCENARIOS, place_calls  # noqa: E402


class LiveStack:
    """The running stack plus what tests need to look at it."""

    def __init__(self, stack: stackmod.Stack) -> None:
        self.stack = stack
        self.log_offset = 0

    def call(self, did: str, scenario: str, **kw: Any) -> Any:
        return place_calls(self.stack, did, SCENARIOS / scenario, **kw)

    def cdrs(self) -> list[dict[str, Any]]:
        out = self.stack.psql("fairline", "SELECT coalesce(json_agg(c ORDER BY started_at), '[]') FROM cdrs c")
        return list(json.loads(out, parse_float=Decimal))

    def wait_cdrs(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Poll until n CDRs are stored (they are written just after the call ends)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.cdrs()
            if len(rows) >= n or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def logs(self) -> list[dict[str, Any]]:
        """fairline's JSON log lines since this test started."""
        text = self.stack.log("fairline").read_bytes()[self.log_offset:].decode(errors="replace")
        lines = []
        for line in text.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines


def instance_name() -> str:
    """This test process's stack: FAIRLINE_TEST_INSTANCE (default `test`), plus the xdist worker's id."""
    base = os.environ.get("FAIRLINE_TEST_INSTANCE", "test")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"{base}-{worker}" if worker else base


@pytest.fixture(scope="session")
def live_stack() -> Iterator[LiveStack]:
    stackmod.install_prerequisites()
    # FAIRLINE_TEST_INSTANCE lets two test runs share a machine without sharing Asterisk or PostgreSQL;
    # each worker of `pytest -n N` runs a stack of its own (test-gw0, test-gw1, ...).
    s = stackmod.Stack.create(instance_name(), stackmod.Ports.free())
    s.external_database_url = None
    # A copy the reload test may change; also what the fallback dialplan is made from.
    s.app_config = s.state_dir / "fairline.yaml"
    shutil.copyfile(ROOT / "tests" / "e2e" / "fairline.yaml", s.app_config)
    s.start(with_fairline=False)
    try:
        s.psql("postgres", "DROP DATABASE IF EXISTS fairline WITH (FORCE)")
        s.psql("postgres", "CREATE DATABASE fairline")
        s.log("fairline").write_bytes(b"")  # the tests read this session's log only
        # Asterisk's own CDRs of earlier sessions are not this database's calls (fairline reconcile reads them).
        (s.asterisk_dir / "log" / "cdr-custom" / "fairline-cdr.csv").unlink(missing_ok=True)
        s.start_fairline()
        yield LiveStack(s)
    finally:
        s.stop()


@pytest.fixture
def live(live_stack: LiveStack) -> LiveStack:
    """The stack with an empty CDR table and fairline running."""
    s = live_stack.stack
    if s.fairline is None or s.fairline.poll() is not None:
        s.start_fairline()
    empty_cdr_table(live_stack)
    live_stack.log_offset = s.log("fairline").stat().st_size
    return live_stack


SCRATCH_DATABASE = "fairline_scratch"


@pytest.fixture
def scratch_database(live_stack: LiveStack) -> Iterator[str]:
    """The URL of a fresh, migrated database of its own on the stack's PostgreSQL, dropped after the test.

    For tests that store configuration versions: the stack's running fairline watches its own database
    and would apply them (decision 0021), changing the numbers the other tests call.
    """
    s = live_stack.stack
    s.psql("postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
    s.psql("postgres", f"CREATE DATABASE {SCRATCH_DATABASE}")
    url = s.database_url.rsplit("/", 1)[0] + "/" + SCRATCH_DATABASE

    async def migrated() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(migrated())
    yield url
    s.psql("postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")


@pytest.fixture
async def pool(live_stack: LiveStack) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the stack's database, migrated; for tests of the storage edge."""
    conn = await asyncpg.connect(live_stack.stack.database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(live_stack.stack.database_url, min_size=1, max_size=2)
    yield pool
    pool.terminate()  # its connections may be dead after a PostgreSQL restart: no polite goodbye needed


# A recorded call's CDR waits up to 10 s for its recording (ari_app RECORDING_GRACE_S); a spool
# replay is retried every second: 30 s is ample, and only a call that never ends takes it all.
QUIET_TIMEOUT_S = 30.0


def empty_cdr_table(live: LiveStack) -> None:
    """Empty the CDR table once the calls of earlier tests are over and their CDRs stored.

    A CDR that landed afterwards would be taken for one of the next test's calls.
    """
    busy: list[str] = []

    def quiet() -> bool:
        busy[:] = still_busy(live)
        return not busy

    if not poll(quiet, timeout=QUIET_TIMEOUT_S):
        pytest.fail(f"the calls of earlier tests still run after {QUIET_TIMEOUT_S:.0f} s: {'; '.join(busy)}")
    live.stack.psql("fairline", "TRUNCATE cdrs CASCADE")  # and the recordings rows that point at them


def still_busy(live: LiveStack) -> list[str]:
    """What earlier calls still have going on, from Asterisk to the CDR table; [] when all is done.

    In the order a call ends: its channels leave Asterisk, fairline forgets it and submits its
    CDR, the CDR writer stores it in the database (or the spool, replayed once the database answers).
    """
    s = live.stack
    try:
        channels = s.asterisk_rx("core show channels count")
    except stackmod.StackError as exc:
        return [f"Asterisk does not answer: {exc}"]
    active = re.search(r"(\d+) active channels?", channels)
    if active is None or int(active.group(1)) > 0:
        return [f"Asterisk: {channels.strip().splitlines()[0] if channels.strip() else channels!r}"]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.ports.status}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError as exc:
        return [f"fairline's /metrics does not answer: {exc}"]
    metrics = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    busy = [f"{name} {metrics.get(name)}" for name in
            ("fairline_calls_in_progress", "fairline_cdrs_pending", "fairline_cdr_spool_depth")
            if float(metrics.get(name, "nan")) != 0]
    # fairline forgets an ended call before its worker has submitted the CDR (`call.ended`);
    # in between, neither calls_in_progress nor cdrs_pending counts it.
    lines = _whole_log(live)
    ended = {e.get("call_id") for e in lines if e.get("event") == "call.phase" and e.get("phase") == "ended"}
    submitted = {e.get("call_id") for e in lines if e.get("event") == "call.ended"}
    busy += [f"call {call_id}: ended, its CDR not yet submitted" for call_id in sorted(ended - submitted, key=str)]
    return busy


def _whole_log(live: LiveStack) -> list[dict[str, Any]]:
    offset, live.log_offset = live.log_offset, 0
    try:
        return live.logs()
    finally:
        live.log_offset = offset


@dataclasses.dataclass
class StackDb:
    """The stack's database for the storage and billing tests: SQL, rows as dicts, CDRs stored as the app does."""

    live: LiveStack
    capsys: pytest.CaptureFixture[str]

    @property
    def url(self) -> str:
        return str(self.live.stack.database_url)

    def sql(self, sql: str) -> str:
        return str(self.live.stack.psql("fairline", sql)).strip()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return list(json.loads(self.sql(f"SELECT coalesce(json_agg(q), '[]') FROM ({sql}) q")))

    def fairline(self, *argv: str) -> tuple[int, str, str]:
        """Run the billing command `fairline ARGV --database-url URL` in-process; exit status, stdout, stderr."""
        parser = argparse.ArgumentParser(prog="fairline")
        billing_cli.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args([*argv, "--database-url", self.url])
        self.capsys.readouterr()
        status = args.fn(args)
        out, err = self.capsys.readouterr()
        return status, out, err

    def store(self, cdrs: list[RatedCdr]) -> set[str]:
        """insert_cdrs on a connection of its own; the call ids that were new."""
        async def insert() -> set[str]:
            conn = await asyncpg.connect(self.url)
            try:
                return await insert_cdrs(conn, cdrs)
            finally:
                await conn.close()

        return asyncio.run(insert())


def talk(live: LiveStack, seconds: float) -> str:
    """A caller scenario that is answered, stays `seconds`, then hangs up."""
    path: Path = live.stack.state_dir / f"uac_talk_{seconds:g}.xml"
    text = (SCENARIOS / "uac_talk.xml").read_text().replace('<pause milliseconds="2000"/>',
                                                           f'<pause milliseconds="{int(seconds * 1000)}"/>')
    path.write_text(text)
    return str(path)


def poll(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()
