"""Configuration reload: a valid file replaces the routes without dropping calls; an invalid one is refused."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveStack, poll, stackmod, talk

pytestmark = pytest.mark.e2e

BRUSSELS = "+3215123456"


def fairline(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "fairline"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30, env=dict(os.environ))


def recorded(stack: stackmod.Stack, text: str) -> bool:
    """Whether `text` is stored as a configuration version (False while the table does not exist yet)."""
    try:
        return int(stack.psql("fairline", "SELECT count(*) FROM config_versions WHERE content_hash = :'h'",
                              params={"h": hashlib.sha256(text.encode()).hexdigest()})) > 0
    except stackmod.StackError:
        return False


def test_reload_during_a_live_call_keeps_the_call_and_applies_the_new_numbers(live: LiveStack) -> None:
    s = live.stack
    original = s.app_config.read_text()
    # The version fairline started with is recorded in the background (on a fresh database, once the
    # migrations are in): count from when it is there, or the count below takes it for the reload's.
    assert poll(lambda: recorded(s, original), timeout=20)
    versions_before = int(s.psql("fairline", "SELECT count(*) FROM config_versions"))
    spool = str(s.state_dir / "spool")
    try:
        with ThreadPoolExecutor(1) as pool:
            # Answered after 1 s, then 10 s of talk: the reload comes well within the call, even on a busy machine.
            talking = pool.submit(live.call, "+31201230001", talk(live, 10))
            assert poll(lambda: any(e.get("event") == "call.phase" and e.get("phase") == "dialing"
                                    for e in live.logs()), timeout=10)
            s.app_config.write_text(original.replace(f'"{BRUSSELS}"', '"+3215123400"'))
            reload = fairline("reload", "--config", str(s.app_config), "--spool-dir", spool)
            assert reload.returncode == 0, reload.stderr
            assert poll(lambda: any(e.get("event") == "config.reloaded" for e in live.logs()), timeout=10)
            result = talking.result(timeout=30)
        assert result.returncode == 0, result.stderr  # the live call went on to its normal end

        [reloaded] = [e for e in live.logs() if e.get("event") == "config.reloaded"]
        assert reloaded["calls_in_progress"] == 1
        assert poll(lambda: len(live.cdrs()) == 1)
        assert live.cdrs()[0]["disposition"] == "answered"
        # The number taken out of the file is no longer in service.
        assert live.call(BRUSSELS, "uac_rejected.xml").returncode == 0
        assert [r["disposition"] for r in live.wait_cdrs(2)] == ["answered", "unallocated"]
        # The applied file is recorded as a new version (in the background).
        assert poll(lambda: int(s.psql("fairline", "SELECT count(*) FROM config_versions")) == versions_before + 1)
    finally:
        s.app_config.write_text(original)
        assert s.fairline is not None
        s.fairline.send_signal(signal.SIGHUP)
        assert poll(lambda: sum(e.get("event") == "config.reloaded" for e in live.logs()) >= 2)


def test_invalid_configuration_is_refused_and_the_old_one_keeps_routing(live: LiveStack) -> None:
    s = live.stack
    original = s.app_config.read_text()
    broken = original.replace('targets: ["+31612340032"]', 'targets: ["+4915112345678"]')  # German mobile
    assert broken != original
    try:
        s.app_config.write_text(broken)
        # The command checks first and does not disturb the running fairline.
        reload = fairline("reload", "--config", str(s.app_config), "--spool-dir", str(s.state_dir / "spool"))
        assert reload.returncode == 2
        assert "not reloading" in reload.stderr and "+4915112345678" in reload.stderr
        # A signal sent anyway is refused by fairline itself, every problem listed.
        assert s.fairline is not None
        s.fairline.send_signal(signal.SIGHUP)
        assert poll(lambda: any(e.get("event") == "config.reload_refused" for e in live.logs()))
        [refused] = [e for e in live.logs() if e.get("event") == "config.reload_refused"]
        assert any("+4915112345678" in p for p in refused["problems"])
        # The old configuration still routes: this number still reaches its busy phone.
        busy = live.stack.state_dir / "uac_unanswered_486.xml"
        busy.write_text((Path(__file__).parent / "scenarios" / "uac_unanswered.xml").read_text().replace("[final]", "486"))
        assert live.call("+31201230007", str(busy)).returncode == 0
        assert [(r["did"], r["disposition"]) for r in live.wait_cdrs(1)] == [("+31201230007", "busy")]
    finally:
        s.app_config.write_text(original)
