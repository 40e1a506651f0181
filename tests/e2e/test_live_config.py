"""A version stored in PostgreSQL reaches every fairline on the database, and Asterisk's dialplan
fallback follows it (issue 16, decisions 0021 and 0022)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ari_app.runtime.live_config import PUBLISH_EVERY_S
from tests.e2e.conftest import LiveStack, poll, stackmod

pytestmark = pytest.mark.e2e

ROUTED = "+31201230006"  # its route's first target, +31201230925, answers and hangs up after 2 s
OLD_TARGET = "+31201230925"
NEW_TARGET = "+31612340775"
FAIRLINE = Path(sys.executable).parent / "fairline"


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        body: dict[str, Any] = json.load(response)
        return body


def version_at(port: int) -> str | None:
    try:
        return healthz(port)["config"]["version"]  # type: ignore[no-any-return]
    except OSError:  # not listening yet
        return None


@pytest.fixture
def second_fairline(live: LiveStack, tmp_path: Path) -> Iterator[int]:
    """Another `fairline run` on the same database and Asterisk (a node, as far as the store can tell), under
    a Stasis app of its own so that it takes no calls, and without AMI: only one node publishes to an
    Asterisk. Yields its status port."""
    port = stackmod.free_port()
    env = dict(live.stack.fairline_env(), FAIRLINE_ARI_APP="fairline-second", FAIRLINE_SPOOL_DIR=str(tmp_path / "spool"),
               FAIRLINE_RECORDINGS_DIR=str(tmp_path / "recordings"), FAIRLINE_STATUS_PORT=str(port),
               FAIRLINE_AMI_PORT="0")
    log = open(tmp_path / "second.log", "ab")
    proc = subprocess.Popen([str(FAIRLINE), "run", "--log-format", "json"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert poll(lambda: version_at(port) is not None, timeout=30), (tmp_path / "second.log").read_text()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_a_stored_version_reaches_every_fairline_and_the_fallback(live: LiveStack, second_fairline: int,
                                                                   tmp_path: Path) -> None:
    s = live.stack
    first_port = s.ports.status
    running = version_at(first_port)
    assert running is not None and version_at(second_fairline) == running  # both on the store's newest
    assert f"PJSIP/{OLD_TARGET}@carrier-out" in s.asterisk_rx(f"dialplan show {ROUTED}@fairline-fallback")

    original = s.app_config.read_text()
    changed = tmp_path / "fairline.yaml"
    changed.write_text(original.replace(f'targets: ["{OLD_TARGET}"]', f'targets: ["{NEW_TARGET}"]'))
    applied = subprocess.run([str(FAIRLINE), "config", "apply", str(changed), "--author", "sam", "--role", "staff",
                              "--reason", "the shop's mobile first"], capture_output=True, text=True, timeout=60,
                             env=s.fairline_env())
    try:
        assert applied.returncode == 0, applied.stderr
        new = applied.stdout.splitlines()[-1].split()[1]  # "stored v13 (made from v12, by sam as staff)"
        assert new != running
        # Both nodes run it within a second or so; the first has Asterisk's fallback follow it (publishing
        # at most every PUBLISH_EVERY_S: Asterisk reloads its whole dialplan each time).
        assert poll(lambda: version_at(first_port) == new and version_at(second_fairline) == new, timeout=5)
        assert poll(lambda: f"Dial(PJSIP/{NEW_TARGET}@carrier-out,5)"
                    in s.asterisk_rx(f"dialplan show {ROUTED}@fairline-fallback"), timeout=PUBLISH_EVERY_S + 10)
        [done] = [e for e in live.logs() if e.get("event") == "config.applied"]
        assert (done["version"], done["was"]) == (new, running)
        assert any(e.get("event") == "fallback.published" and e.get("version") == new for e in live.logs())
    finally:
        back = subprocess.run([str(FAIRLINE), "config", "apply", str(s.app_config), "--author", "sam",
                               "--reason", "back as the tests expect"], capture_output=True, text=True, timeout=60,
                              env=s.fairline_env())
        assert back.returncode == 0, back.stderr
        assert poll(lambda: f"PJSIP/{OLD_TARGET}@carrier-out"
                    in s.asterisk_rx(f"dialplan show {ROUTED}@fairline-fallback"), timeout=PUBLISH_EVERY_S + 10)
