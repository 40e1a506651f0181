"""The Docker images' scripts run outside a container, against a temporary directory (issue 17).

docker-entrypoint.sh with a stand-in `asterisk` on PATH that says its version and records how
it was started; fallback-init.sh with this checkout's `fairline`. The real Asterisk runs the
entrypoint in tests/e2e/test_docker_entrypoint.py.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "asterisk-docker" / "docker-entrypoint.sh"
FALLBACK_INIT = ROOT / "asterisk-docker" / "fallback-init.sh"
EDGE_LISTS = ROOT / "asterisk-docker" / "edge-lists.sh"
FAIRLINE_BIN = Path(sys.executable).parent  # this checkout's `fairline`

STAND_IN = """#!/bin/sh
if [ "$1" = -V ]; then echo "Asterisk {version}"; exit 0; fi
printf '%s\\n' "$@" > "{record}/argv"
umask > "{record}/umask"
"""


class Instance:
    def __init__(self, tmp: Path, version: str = "22.5.2") -> None:
        self.dir = tmp / "srv" / "docker"
        self.record = tmp / "record"
        self.record.mkdir()
        self.bin = tmp / "bin"
        self.bin.mkdir()
        fake = self.bin / "asterisk"
        fake.write_text(STAND_IN.format(version=version, record=self.record))
        fake.chmod(0o755)
        self.secrets = tmp / "asterisk.env"
        self.secrets.write_text("ARI_USER=fairline\nARI_PASSWORD=ari-Pa55-x9Zq4Lw7mK2vT8rB\n"
                                "AMI_USER=fairline\nAMI_SECRET=ami-Se3c-Y7nP2wQ5jH8cV4sD\n")
        self.fallback = self.dir / "etc" / "fallback" / "fairline-fallback.conf"

    def with_fallback(self) -> "Instance":
        self.fallback.parent.mkdir(parents=True)
        self.fallback.write_text("[fairline-fallback]\nexten => +31201234567,1,Answer()\n")
        return self

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30,
            env={"PATH": f"{self.bin}:{os.environ['PATH']}", "FAIRLINE_SECRETS": str(self.secrets),
                 "FAIRLINE_INSTANCE_DIR": str(self.dir), "FAIRLINE_DIALPLAN_DIR": str(ROOT / "dialplan"), **env})

    def started_with(self) -> list[str] | None:
        argv = self.record / "argv"
        return argv.read_text().splitlines() if argv.exists() else None


class TestEntrypoint:
    def test_renders_the_configuration_and_execs_asterisk_on_it(self, tmp_path: Path) -> None:
        inst = Instance(tmp_path).with_fallback()
        done = inst.run(FAIRLINE_SIP_PORT="5999", FAIRLINE_CARRIER_OUT_HOST="127.0.0.1:5998")
        assert done.returncode == 0, done.stderr
        etc = inst.dir / "etc"
        assert inst.started_with() == ["-C", f"{etc}/asterisk.conf", "-f", "-n"]
        assert {p.name for p in etc.glob("*.conf")} == {p.name for p in (ROOT / "dialplan").glob("*.conf")} | {
            "ari-users.conf", "manager-users.conf"}
        for conf in etc.glob("*.conf"):
            assert re.search(r"@[A-Z_]+@", conf.read_text()) is None, conf
        assert f"astspooldir => {inst.dir}/spool" in (etc / "asterisk.conf").read_text()
        assert "5999" in (etc / "pjsip.conf").read_text() and "127.0.0.1:5998" in (etc / "pjsip.conf").read_text()
        assert "password = ari-Pa55-x9Zq4Lw7mK2vT8rB" in (etc / "ari-users.conf").read_text()
        manager = (etc / "manager-users.conf").read_text()
        assert "secret = ami-Se3c-Y7nP2wQ5jH8cV4sD" in manager
        assert "read = none\nwrite = config\n" in manager and "permit = 127.0.0.1/255.255.255.255" in manager
        for secret in ("ari-users.conf", "manager-users.conf"):
            assert stat.S_IMODE((etc / secret).stat().st_mode) == 0o400, secret
        # Asterisk cannot rewrite what it runs (AMI UpdateConfig): nothing in etc is writable, etc neither
        for path in (etc, *etc.glob("*.conf")):
            assert path.stat().st_mode & 0o222 == 0, path
        # what Asterisk writes, its group reads (fairline's user is in it)
        assert (inst.record / "umask").read_text().strip() == "0027"
        for sub in ("spool/recording", "log/cdr-custom", "run", "db"):
            assert (inst.dir / sub).is_dir(), sub

    def test_starts_again_over_its_read_only_configuration(self, tmp_path: Path) -> None:
        inst = Instance(tmp_path).with_fallback()
        assert inst.run().returncode == 0
        inst.secrets.write_text(inst.secrets.read_text().replace("ari-Pa55", "new-Pa55"))
        again = inst.run()
        assert again.returncode == 0, again.stderr
        assert "password = new-Pa55-x9Zq4Lw7mK2vT8rB" in (inst.dir / "etc" / "ari-users.conf").read_text()

    def test_refuses_to_start_asterisk_without_the_fallback_dialplan(self, tmp_path: Path) -> None:
        inst = Instance(tmp_path)
        done = inst.run()
        assert done.returncode == 2
        assert f"no fallback dialplan at {inst.fallback}" in done.stderr and "503" in done.stderr
        assert inst.started_with() is None

    def test_refuses_an_asterisk_older_than_22(self, tmp_path: Path) -> None:
        inst = Instance(tmp_path, version="20.9.1").with_fallback()
        done = inst.run()
        assert done.returncode == 2 and "Asterisk 20.9.1 is too old" in done.stderr
        assert inst.started_with() is None

    @pytest.mark.parametrize("missing", ["ARI_PASSWORD", "AMI_SECRET"])
    def test_a_secrets_file_without_a_key_names_it(self, tmp_path: Path, missing: str) -> None:
        inst = Instance(tmp_path).with_fallback()
        inst.secrets.write_text("".join(line + "\n" for line in inst.secrets.read_text().splitlines()
                                        if not line.startswith(missing)))
        done = inst.run()
        assert done.returncode != 0 and f"has no {missing}" in done.stderr
        assert inst.started_with() is None


class TestFallbackInit:
    def run(self, out: Path, config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(FALLBACK_INIT)], capture_output=True, text=True, timeout=60,
                              env={"PATH": f"{FAIRLINE_BIN}:{os.environ['PATH']}",
                                   "FAIRLINE_ASTERISK_FALLBACK": str(out), "FAIRLINE_CONFIG": str(config)})

    def test_generates_the_fallback_when_the_volume_has_none(self, tmp_path: Path) -> None:
        config = ROOT / "dialplan" / "fairline.yaml"
        out = tmp_path / "fairline-fallback.conf"
        done = self.run(out, config)
        assert done.returncode == 0, done.stderr
        expected = subprocess.run([str(FAIRLINE_BIN / "fairline"), "dialplan", "generate", str(config)],
                                  capture_output=True, text=True, check=True).stdout
        assert out.read_text() == expected and "exten => +31201234567,1," in expected
        assert stat.S_IMODE(out.stat().st_mode) == 0o644  # Asterisk, another user, reads it
        assert f"wrote {out}" in done.stdout and "numbers)" in done.stdout
        assert [p.name for p in tmp_path.iterdir()] == [out.name]

    def test_keeps_a_published_fallback(self, tmp_path: Path) -> None:
        out = tmp_path / "fairline-fallback.conf"
        out.write_text("; published by fairline for version v7\n")
        done = self.run(out, ROOT / "dialplan" / "fairline.yaml")
        assert done.returncode == 0 and "kept" in done.stdout
        assert out.read_text() == "; published by fairline for version v7\n"

    def test_a_bad_configuration_fails_and_leaves_no_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("numbers: [\n")
        out = tmp_path / "fallback" / "fairline-fallback.conf"
        out.parent.mkdir()
        done = self.run(out, bad)
        assert done.returncode != 0 and "bad.yaml" in done.stderr
        assert list(out.parent.iterdir()) == []


class TestEdgeLists:
    """edge-lists.sh: Kamailio's two lists, for `make cluster` and compose.cluster.yaml's one-shot."""

    def run(self, out: Path, config: Path, carriers: str = "10.77.0.100") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(EDGE_LISTS)], capture_output=True, text=True, timeout=60,
                              env={"PATH": f"{FAIRLINE_BIN}:{os.environ['PATH']}", "FAIRLINE_KAMAILIO_LISTS": str(out),
                                   "FAIRLINE_CONFIG": str(config), "FAIRLINE_CARRIER_ADDRESSES": carriers})

    def test_writes_the_phones_of_the_configuration_and_the_carriers_addresses(self, tmp_path: Path) -> None:
        config = ROOT / "dialplan" / "fairline.yaml"
        done = self.run(tmp_path, config, "10.77.0.100 192.0.2.7")
        assert done.returncode == 0, done.stderr
        expected = subprocess.run([str(FAIRLINE_BIN / "fairline"), "dialplan", "dialable", str(config)],
                                  capture_output=True, text=True, check=True).stdout
        assert (tmp_path / "dialable").read_text() == expected
        carrier = (tmp_path / "carrier").read_text().splitlines()
        assert carrier[0] == expected.splitlines()[0]  # the same db_text header
        assert carrier[1:] == ["1:10.77.0.100:0:0:1:0", "2:192.0.2.7:0:0:1:0"]
        for name in ("dialable", "carrier"):  # Kamailio, another user, reads them
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
        assert sorted(p.name for p in tmp_path.iterdir()) == ["carrier", "dialable"]

    def test_a_bad_configuration_fails_and_keeps_the_last_lists(self, tmp_path: Path) -> None:
        assert self.run(tmp_path, ROOT / "dialplan" / "fairline.yaml").returncode == 0
        before = {p.name: p.read_text() for p in tmp_path.iterdir()}
        bad = tmp_path.parent / "bad.yaml"
        bad.write_text("numbers: [\n")
        done = self.run(tmp_path, bad)
        assert done.returncode != 0 and "bad.yaml" in done.stderr
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before

    def test_a_carrier_address_that_is_not_one_is_refused(self, tmp_path: Path) -> None:
        done = self.run(tmp_path, ROOT / "dialplan" / "fairline.yaml", "10.77.0.300")
        assert done.returncode != 0 and "not an IPv4 address" in done.stderr
        assert not (tmp_path / "carrier").exists()
