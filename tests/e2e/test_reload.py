"""Configuration reload: a valid file replaces the routes without dropping calls; an invalid one is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveStack, poll, talk

pytestmark = pytest.mark.e2e

BRUSSELS = "+3215123456"


def fairline(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "fairline"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30, env=dict(os.environ))


def test_reload_during_a_live_call_keeps_the_call_and_applies_the_new_numbers(live: LiveStack) -> None:
    """`fairline reload` stores the file as the newest version; the running fairline applies it at once
    (the store's notification), the call in progress goes on, and the next call takes the new numbers."""
    s = live.stack
    original = s.app_config.read_text()
    versions_before = int(s.psql("fairline", "SELECT count(*) FROM config_versions"))
    try:
        with ThreadPoolExecutor(1) as pool:
            # Answered after 1 s, then 10 s of talk: the reload comes well within the call, even on a busy machine.
            talking = pool.submit(live.call, "+31201230001", talk(live, 10))
            assert poll(lambda: any(e.get("event") == "call.phase" and e.get("phase") == "dialing"
                                    for e in live.logs()), timeout=10)
            s.app_config.write_text(original.replace(f'"{BRUSSELS}"', '"+3215123400"'))
            reload = fairline("reload", "--config", str(s.app_config), "--author", "erik",
                              "--database-url", s.database_url)
            assert reload.returncode == 0, reload.stderr
            assert "removed" in reload.stdout and BRUSSELS in reload.stdout  # what it changes, per number
            assert poll(lambda: any(e.get("event") == "config.applied" for e in live.logs()), timeout=5)
            result = talking.result(timeout=30)
        assert result.returncode == 0, result.stderr  # the live call went on to its normal end

        [applied] = [e for e in live.logs() if e.get("event") == "config.applied"]
        assert applied["calls_in_progress"] == 1
        assert poll(lambda: len(live.cdrs()) == 1)
        assert live.cdrs()[0]["disposition"] == "answered"
        # The number taken out of the file is no longer in service.
        assert live.call(BRUSSELS, "uac_rejected.xml").returncode == 0
        assert [r["disposition"] for r in live.wait_cdrs(2)] == ["answered", "unallocated"]
        # One new version, by who ran the command, as /healthz says the node runs.
        assert int(s.psql("fairline", "SELECT count(*) FROM config_versions")) == versions_before + 1
        assert s.psql("fairline", "SELECT author || ' ' || reason FROM config_versions ORDER BY id DESC LIMIT 1"
                      ).strip() == "erik fairline reload"
        assert applied["version"] == "v" + s.psql("fairline", "SELECT max(id) FROM config_versions").strip()
    finally:
        s.app_config.write_text(original)
        assert fairline("reload", "--config", str(s.app_config), "--database-url", s.database_url).returncode == 0
        assert poll(lambda: sum(e.get("event") == "config.applied" for e in live.logs()) >= 2)


def test_invalid_configuration_is_refused_and_the_old_one_keeps_routing(live: LiveStack) -> None:
    s = live.stack
    original = s.app_config.read_text()
    broken = original.replace('targets: ["+31612340032"]', 'targets: ["+4915112345678"]')  # German mobile
    assert broken != original
    versions_before = int(s.psql("fairline", "SELECT count(*) FROM config_versions"))
    try:
        s.app_config.write_text(broken)
        reload = fairline("reload", "--config", str(s.app_config), "--database-url", s.database_url)
        assert reload.returncode == 2
        assert "nothing stored" in reload.stderr and "+4915112345678" in reload.stderr
        assert int(s.psql("fairline", "SELECT count(*) FROM config_versions")) == versions_before
        # SIGHUP makes fairline look for a newer version: there is none, nothing changes.
        assert s.fairline is not None
        s.fairline.send_signal(signal.SIGHUP)
        # The old configuration still routes: this number still reaches its busy phone.
        busy = live.stack.state_dir / "uac_unanswered_486.xml"
        busy.write_text((Path(__file__).parent / "scenarios" / "uac_unanswered.xml").read_text().replace("[final]", "486"))
        assert live.call("+31201230007", str(busy)).returncode == 0
        assert [(r["did"], r["disposition"]) for r in live.wait_cdrs(1)] == [("+31201230007", "busy")]
        assert not any(e.get("event") == "config.applied" for e in live.logs())
    finally:
        s.app_config.write_text(original)
