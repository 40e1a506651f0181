"""`make up` runs the stack in the foreground and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.e2e.conftest import ROOT, instance_name, stackmod
from tests.e2e.sipp import SCENARIOS, place_calls

pytestmark = pytest.mark.e2e


def test_up_serves_calls_until_ctrl_c_and_then_leaves_no_process_or_port_behind() -> None:
    ports = stackmod.Ports.free()
    # Its own instance, apart from other test runs on this machine (FAIRLINE_TEST_INSTANCE, see conftest).
    instance = f"{instance_name()}-up"
    env = dict(
        os.environ,
        FAIRLINE_INSTANCE=instance,
        FAIRLINE_SIP_PORT=str(ports.sip),
        FAIRLINE_HTTP_PORT=str(ports.http),
        FAIRLINE_AMI_PORT=str(ports.ami),
        FAIRLINE_PG_PORT=str(ports.pg),
        FAIRLINE_RTP_START=str(ports.rtp_start),
        FAIRLINE_TARGETS_PORT=str(ports.targets),
        FAIRLINE_STATUS_PORT=str(ports.status),
        FAIRLINE_CONSOLE_PORT=str(ports.console),
    )
    env.pop("DATABASE_URL", None)
    # This test owns the instance: start from an empty database, as a new user would.
    shutil.rmtree(stackmod.CACHE / "pg" / instance, ignore_errors=True)
    up = subprocess.Popen([sys.executable, str(ROOT / "asterisk-docker" / "stack.py"), "up"], env=env,
                          stderr=subprocess.PIPE, text=True)
    output = []
    try:
        assert up.stderr is not None
        for line in up.stderr:
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert up.poll() is None, "".join(output)
        assert f"the management console http://127.0.0.1:{ports.console}/" in "".join(output)
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.console}/login", timeout=10) as page:
            assert page.status == 200
        stack = stackmod.Stack.create(instance, ports)
        call = place_calls(stack, "+31201234567", SCENARIOS / "uac_talk.xml")
        assert call.returncode == 0, call.stderr
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert up.wait(timeout=30) == 0

    leftovers = subprocess.run(["pgrep", "-af", f"srv/fairline/{instance}|pg/{instance}"], capture_output=True, text=True)
    assert leftovers.stdout == ""
    for port, kind in ((ports.sip, socket.SOCK_DGRAM), (ports.targets, socket.SOCK_DGRAM), (ports.http, socket.SOCK_STREAM),
                       (ports.ami, socket.SOCK_STREAM), (ports.pg, socket.SOCK_STREAM),
                       (ports.console, socket.SOCK_STREAM)):
        assert stackmod.port_is_free(port, kind), port
    assert not (stack.asterisk_dir / "run" / "asterisk.pid").exists() or not _alive(stack.asterisk_dir / "run" / "asterisk.pid")


def _alive(pidfile: os.PathLike[str]) -> bool:
    try:
        os.kill(int(open(pidfile).read().split()[0]), 0)
    except (ProcessLookupError, ValueError, OSError):
        return False
    return True
