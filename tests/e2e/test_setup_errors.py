"""Bad set-up input gets a clear message that says what is wrong and what to do."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, poll, stackmod

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    """A TCP port nobody listens on (bound and released)."""
    return stackmod.free_port()


def test_port_already_taken_names_the_port_and_the_setting() -> None:
    ports = stackmod.Ports.free()
    stack = stackmod.Stack.create("test-ports", ports)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", ports.sip))
        with pytest.raises(stackmod.StackError) as err:
            stack.start_asterisk()
    message = str(err.value)
    assert f"port {ports.sip}/udp" in message
    assert "FAIRLINE_SIP_PORT" in message
    assert stack.asterisk is None


def test_database_url_that_does_not_answer_is_reported_without_its_password() -> None:
    stack = stackmod.Stack.create("test-dburl", stackmod.Ports.free())
    stack.external_database_url = f"postgresql://fairline:s3cret-pw@127.0.0.1:{closed_port()}/fairline"
    with pytest.raises(stackmod.StackError) as err:
        stack.start_postgres()
    message = str(err.value)
    assert "does not answer" in message
    assert "s3cret-pw" not in message
    assert "unset DATABASE_URL" in message


def test_missing_system_package_without_root_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stackmod, "missing_packages", lambda: ["sip-tester"])
    monkeypatch.setattr(stackmod.os, "geteuid", lambda: 1000)
    with pytest.raises(stackmod.StackError) as err:
        stackmod.install_prerequisites()
    assert "apt-get install sip-tester" in str(err.value)


def test_fairline_run_reports_an_unreachable_database_loudly_and_keeps_running(tmp_path: Path) -> None:
    """Routing never waits on the database: fairline says what is wrong (password hidden) and goes on."""
    secrets = tmp_path / "secrets.env"
    secrets.write_text("ARI_USER=fairline\nARI_PASSWORD=not-used-here-but-strong\n")
    secrets.chmod(0o600)
    env = dict(
        os.environ,
        DATABASE_URL=f"postgresql://fairline:s3cret-pw-K8vQ2xLm7R@127.0.0.1:{closed_port()}/fairline",
        FAIRLINE_SECRETS=str(secrets),
        FAIRLINE_CONFIG=str(ROOT / "dialplan" / "fairline.yaml"),
        FAIRLINE_ARI_URL=f"http://127.0.0.1:{closed_port()}",
        FAIRLINE_SPOOL_DIR=str(tmp_path / "spool"),
    )
    fairline = Path(os.sys.executable).parent / "fairline"
    log = tmp_path / "fairline.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(fairline), "run", "--log-format", "json"], env=env, stderr=out)
        try:
            assert poll(lambda: "db.unreachable" in log.read_text(), timeout=15)
            assert proc.poll() is None  # still running, retrying the database and ARI
        finally:
            proc.terminate()
            assert proc.wait(timeout=15) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    error = next(line for line in lines if line["event"] == "db.unreachable")
    assert "***" in error["database"] and "spooled" in error["routing"]
    assert "s3cret-pw-K8vQ2xLm7R" not in log.read_text()


def test_rendered_asterisk_config_has_no_unfilled_markers_and_secrets_readable_only_by_root_and_asterisk() -> None:
    stack = stackmod.Stack.create("test-render", stackmod.Ports.free())
    stack.render_asterisk_config()
    etc = stack.asterisk_dir / "etc"
    rendered = {conf.name: conf.read_text() for conf in etc.glob("*.conf")}
    assert "pjsip.conf" in rendered
    assert [name for name, text in rendered.items() if re.search(r"@[A-Z_]+@", text)] == []
    assert f"bind = 127.0.0.1:{stack.ports.sip}" in rendered["pjsip.conf"]
    _, asterisk_gid = stackmod.asterisk_user()
    for private in ("ari-users.conf", "manager-users.conf"):
        found = (etc / private).stat()
        # Root writes them; Asterisk (its own user, decision 0024) reads them through its group; nobody else.
        assert (found.st_uid, found.st_gid, found.st_mode & 0o777) == (0, asterisk_gid, 0o640), private
    assert stack.secrets_file.stat().st_mode & 0o077 == 0
    assert len(stack.secrets()["ARI_PASSWORD"]) >= 40
