"""The cluster for end-to-end tests: Kamailio, two Asterisk + fairline nodes and PostgreSQL, each part in a
network namespace of its own (cluster/cluster.py). Started once per session; needs root (namespaces).

The carrier's calls are real sipp calls placed from the carrier's namespace to Kamailio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "cluster"))
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import cluster as clustermod  # noqa: E402
import stack as stackmod  # noqa: E402

HERE = Path(__file__).resolve().parent
CALLER = HERE / "scenarios" / "uac_talk_routed.xml"
NUMBERS = [f"+312012390{i:02d}" for i in range(10)]  # tests/cluster/fairline.yaml


class LiveCluster:
    def __init__(self, cluster: clustermod.Cluster) -> None:
        self.cluster = cluster

    @property
    def db(self) -> stackmod.Stack:
        return self.cluster.db

    def node(self, name: str) -> stackmod.Stack:
        return next(n for n in self.cluster.nodes if n.system_name == name)

    def sipp(self, did_or_file: str | Path, *, calls: int = 1, rate: float = 10, talk_ms: int = 500,
             timeout: float = 30, extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        """sipp in the carrier's namespace placing `calls` calls through Kamailio: to one number, or to the
        numbers of a sipp injection file (its first field) in turn."""
        port, media = stackmod.sipp_ports(clustermod.CARRIER_ADDRESS, netns=self.cluster.topo.carrier)
        scenario = CALLER
        target: list[str] = ["-s", str(did_or_file)]
        if isinstance(did_or_file, Path):
            scenario = did_or_file.with_suffix(".xml")
            scenario.write_text(CALLER.read_text().replace("[service]", "[field0]"))
            target = ["-inf", str(did_or_file)]
        cmd = ["sipp", "-sf", str(scenario), *target, "-key", "caller", "+31612345678",
               "-i", clustermod.CARRIER_ADDRESS, "-p", str(port), "-mp", str(media),
               "-m", str(calls), "-r", str(rate), "-d", str(talk_ms), "-nostdin",
               "-timeout", f"{timeout:.0f}s", "-timeout_error", *extra,
               f"{clustermod.EDGE_ADDRESS}:{clustermod.KAMAILIO_PORT}"]
        return subprocess.Popen(clustermod.in_netns(self.cluster.topo.carrier, cmd), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=self.cluster.state_dir)

    def call(self, did: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        proc = self.sipp(did, **kw)
        out, _ = proc.communicate(timeout=kw.get("timeout", 30) + 15)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")

    def cdrs(self) -> list[dict[str, Any]]:
        out = self.db.psql("fairline", "SELECT coalesce(json_agg(c ORDER BY started_at), '[]') FROM cdrs c")
        return list(json.loads(out, parse_float=Decimal))

    def wait_cdrs(self, n: int, timeout: float = 20) -> list[dict[str, Any]]:
        """Poll until n CDRs are stored (they are written just after each call ends)."""
        poll(lambda: len(self.cdrs()) >= n, timeout)
        return self.cdrs()

    def kamailio_cpu_seconds(self) -> float:
        """CPU time (user + system) Kamailio's processes have used so far."""
        return clustermod.netns_cpu_seconds(self.cluster.topo.edge, {"kamailio"})

    def kamailio_log(self) -> str:
        return self.cluster.log("kamailio").read_text(errors="replace")


def poll(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture(scope="session")
def live_cluster() -> Iterator[LiveCluster]:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests make network namespaces: run them as root")
    stackmod.install_prerequisites()
    name = "flt-" + os.environ.get("FAIRLINE_TEST_INSTANCE", "test")[:10]
    c = clustermod.Cluster.create(name, app_config=HERE / "fairline.yaml")
    c.log("kamailio").write_bytes(b"")
    for node in c.nodes:
        node.log("fairline").write_bytes(b"")
        # Asterisk's own CDRs of earlier sessions are not this database's calls (fairline reconcile reads them).
        (node.asterisk_dir / "log" / "cdr-custom" / "fairline-cdr.csv").unlink(missing_ok=True)
    c.start()
    try:
        yield LiveCluster(c)
    finally:
        c.stop()


@pytest.fixture
def live(live_cluster: LiveCluster) -> LiveCluster:
    """The cluster with every node up and an empty CDR table."""
    for node in live_cluster.cluster.nodes:
        if node.asterisk is None or node.asterisk.poll() is not None:
            node.asterisk = None
            node.start_asterisk()
    live_cluster.cluster.wait_nodes_up()
    live_cluster.db.psql("fairline", "TRUNCATE cdrs CASCADE")
    return live_cluster
