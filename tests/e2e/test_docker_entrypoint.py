"""The Docker path without a Docker engine (issue 17): the images' scripts run the real Asterisk 22.

The root filesystem is the Asterisk image's package list on Debian testing (decision 0002), so
the entrypoint runs there as in the container: as uid 950 (the image's asterisk), over
directories made by shared-dirs.sh, with the fallback dialplan written by fallback-init.sh (as
root here: this checkout's Python may live where only root can enter), and compose.yaml's own
healthcheck command.
While no fairline is connected, a routed number then reaches its first target, and fairline's
user can read the CDR file Asterisk wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, LiveStack, poll, stackmod
from tests.e2e.sipp import SCENARIOS, place_calls

pytestmark = pytest.mark.e2e

DOCKER = ROOT / "asterisk-docker"
ASTERISK, FAIRLINE = stackmod.DOCKER_ASTERISK_UID, stackmod.DOCKER_FAIRLINE_UID
IMAGE_INSTANCE = "/srv/fairline/docker"  # the entrypoint's default, written into compose.yaml
ROUTED = "+31201230006"  # its route's first target, +31201230925, answers and hangs up after 2 s
NOT_IN_SERVICE = "+31209999999"


def as_user(uid: int, gid: int, *groups: int) -> list[str]:
    """setpriv to these ids (numbers: the host need not know the images' users)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={','.join(map(str, groups or (gid,)))}"]


class Container:
    """An Asterisk started by the image's entrypoint, inside the root filesystem."""

    def __init__(self, live: LiveStack) -> None:
        s = live.stack
        self.rootfs = s.rootfs
        self.inside = f"/srv/fairline/{s.name}-entrypoint"
        self.top = self.rootfs / self.inside.lstrip("/")
        self.instance = f"{self.inside}/srv"
        self.ports = stackmod.Ports.free()
        self.carrier_out = s.ports.targets  # the live stack's stand-in phones answer this Asterisk's calls too
        self.state_dir = s.state_dir  # where sipp runs (tests/e2e/sipp.py)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = s.state_dir / "entrypoint-asterisk.log"

    def path(self, inside: str) -> Path:
        return self.rootfs / inside.lstrip("/")

    def prepare(self, config: Path, secrets: dict[str, str]) -> None:
        shutil.rmtree(self.top, ignore_errors=True)
        self.top.mkdir(parents=True)
        shutil.copytree(ROOT / "dialplan", self.top / "dialplan")
        shutil.copy(DOCKER / "docker-entrypoint.sh", self.top / "docker-entrypoint.sh")
        shutil.copy(config, self.top / "fairline.yaml")
        os.chmod(self.top / "fairline.yaml", 0o644)
        subprocess.run(["sh", str(DOCKER / "shared-dirs.sh"), str(self.path(self.instance))], check=True)
        stackmod.write_private(self.top / "asterisk.env", "".join(f"{k}={secrets[k]}\n" for k in stackmod.DOCKER_SECRETS["asterisk"][1]))
        os.chown(self.top / "asterisk.env", ASTERISK, ASTERISK)
        # What the image has beyond the shared directories: etc, run and db are Asterisk's.
        for sub in ("", "/etc", "/run", "/db"):
            path = self.path(self.instance + sub)
            path.mkdir(exist_ok=True)
            os.chown(path, ASTERISK, ASTERISK)

    def fallback_init(self) -> subprocess.CompletedProcess[str]:
        """compose.yaml's service fallback: fallback-init.sh, into the directory shared-dirs.sh made."""
        env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": "/nonexistent",
               "FAIRLINE_CONFIG": str(self.top / "fairline.yaml"),
               "FAIRLINE_ASTERISK_FALLBACK": str(self.fallback_file)}
        return subprocess.run(["sh", str(DOCKER / "fallback-init.sh")],
                              capture_output=True, text=True, env=env, timeout=60)

    @property
    def fallback_file(self) -> Path:
        return self.path(self.instance) / "etc" / "fallback" / "fairline-fallback.conf"

    def start(self) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FAIRLINE_SECRETS": f"{self.inside}/asterisk.env",
               "FAIRLINE_INSTANCE_DIR": self.instance, "FAIRLINE_DIALPLAN_DIR": f"{self.inside}/dialplan",
               "FAIRLINE_SIP_PORT": str(self.ports.sip), "FAIRLINE_HTTP_PORT": str(self.ports.http),
               "FAIRLINE_AMI_PORT": str(self.ports.ami), "FAIRLINE_RTP_START": str(self.ports.rtp_start + 500),
               "FAIRLINE_CARRIER_OUT_HOST": f"127.0.0.1:{self.carrier_out}"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["chroot", f"--userspec=+{ASTERISK}:+{ASTERISK}", f"--groups=+{ASTERISK}", str(self.rootfs),
                 "/bin/sh", f"{self.inside}/docker-entrypoint.sh"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy(self) -> bool:
        """compose.yaml's healthcheck of the asterisk service, run as the container's user."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the entrypoint exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
        test = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["asterisk"]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL"
        command = test[1].replace(IMAGE_INSTANCE, self.instance)
        done = subprocess.run(["chroot", f"--userspec=+{ASTERISK}:+{ASTERISK}", f"--groups=+{ASTERISK}",
                               str(self.rootfs), "/bin/sh", "-c", command], capture_output=True, timeout=30)
        return done.returncode == 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(["chroot", str(self.rootfs), "asterisk", "-C", f"{self.instance}/etc/asterisk.conf",
                        "-rx", "core stop now"], capture_output=True, timeout=15)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@pytest.fixture
def container(live_stack: LiveStack) -> Iterator[Container]:
    c = Container(live_stack)
    c.prepare(live_stack.stack.app_config, live_stack.stack.secrets())
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(c.top, ignore_errors=True)


def test_the_entrypoint_runs_asterisk_as_its_user_with_the_fallback_serving_calls_while_fairline_is_away(
        container: Container) -> None:
    written = container.fallback_init()
    assert written.returncode == 0, written.stderr
    assert f"exten => {ROUTED},1,Dial(PJSIP/+31201230925@carrier-out," in container.fallback_file.read_text()

    container.start()
    assert poll(container.healthy, timeout=60), container.log.read_text()[-2000:]
    assert container.process is not None
    status = Path(f"/proc/{container.process.pid}/status").read_text()
    assert os.readlink(f"/proc/{container.process.pid}/exe").endswith("/usr/sbin/asterisk")
    assert re.search(rf"^Uid:\s+{ASTERISK}\s+{ASTERISK}\s+{ASTERISK}\s+{ASTERISK}$", status, re.M), status

    # No fairline connected to this Asterisk: Stasis() fails and the fallback serves the call.
    phone = types.SimpleNamespace(ports=container.ports, state_dir=container.state_dir)
    answered = place_calls(phone, ROUTED, SCENARIOS / "uac_answered.xml")  # type: ignore[arg-type]
    assert answered.returncode == 0, answered.stderr
    unknown = place_calls(phone, NOT_IN_SERVICE, SCENARIOS / "uac_unavailable.xml")  # type: ignore[arg-type]
    assert unknown.returncode == 0, unknown.stderr

    # Asterisk's own CDRs: fairline's user (in Asterisk's group) reads them; another user does not.
    cdr = container.path(container.instance) / "log" / "cdr-custom" / "fairline-cdr.csv"
    assert poll(lambda: cdr.exists() and ROUTED in cdr.read_text())
    as_fairline = subprocess.run([*as_user(FAIRLINE, FAIRLINE, ASTERISK), "cat", str(cdr)], capture_output=True, text=True)
    assert as_fairline.returncode == 0 and ROUTED in as_fairline.stdout, as_fairline.stderr
    as_other = subprocess.run([*as_user(FAIRLINE + 1, FAIRLINE + 1), "cat", str(cdr)], capture_output=True, text=True)
    assert as_other.returncode != 0 and "Permission denied" in as_other.stderr


def test_the_entrypoint_refuses_to_start_asterisk_without_a_fallback(container: Container) -> None:
    container.start()
    assert container.process is not None
    assert container.process.wait(timeout=30) == 2
    assert "no fallback dialplan" in container.log.read_text()


def test_stack_py_secrets_gives_each_container_a_file_only_its_user_reads(tmp_path: Path) -> None:
    env = dict(os.environ, FAIRLINE_CACHE=str(tmp_path))
    runs = [subprocess.run([sys.executable, str(DOCKER / "stack.py"), "secrets"], capture_output=True, text=True,
                           env=env, timeout=30) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", runs[1].stdout, re.M))
    assert set(exports) == {"FAIRLINE_ASTERISK_SECRETS_FILE", "FAIRLINE_SECRETS_FILE", "FAIRLINE_PG_PASSWORD_FILE"}
    master = dict(line.split("=", 1) for line in (tmp_path / "instances" / "docker" / "secrets.env").read_text().splitlines())
    for name, uid, keys in (("FAIRLINE_ASTERISK_SECRETS_FILE", ASTERISK, {"ARI_USER", "ARI_PASSWORD", "AMI_USER", "AMI_SECRET"}),
                            ("FAIRLINE_SECRETS_FILE", FAIRLINE, {"ARI_USER", "ARI_PASSWORD", "AMI_USER", "AMI_SECRET", "PG_PASSWORD"})):
        path = Path(exports[name])
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (uid, uid, 0o400), name
        values = dict(line.split("=", 1) for line in path.read_text().splitlines())
        assert values == {k: master[k] for k in keys}, name  # the same secrets on each run
    pg = Path(exports["FAIRLINE_PG_PASSWORD_FILE"])
    assert pg.read_text() == master["PG_PASSWORD"] and pg.stat().st_mode & 0o077 == 0
