"""The cluster end to end (issue 20, decision 0034): real SIP from the carrier through Kamailio into two
Asterisk + fairline nodes sharing one PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import NUMBERS, LiveCluster, poll
import cluster as clustermod

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def nodes_of(live: LiveCluster, calls: int) -> dict[str, set[str]]:
    """Each number -> the nodes its calls' CDRs name, once `calls` CDRs are stored."""
    rows = live.wait_cdrs(calls)
    assert len(rows) == calls, rows
    seen: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        seen[row["did"]].add(row["node"])
    return seen


def test_every_call_for_one_number_lands_on_the_same_node(live: LiveCluster) -> None:
    for did in NUMBERS:
        done = live.call(did, calls=3, rate=10)
        assert done.returncode == 0, done.stdout[-2000:]

    seen = nodes_of(live, 3 * len(NUMBERS))

    assert all(len(nodes) == 1 for nodes in seen.values()), seen
    assert set().union(*seen.values()) == {"n1", "n2"}  # and the numbers are spread over both nodes


def test_a_call_from_anywhere_but_the_carrier_is_refused_by_kamailio_and_by_the_node(live: LiveCluster) -> None:
    """Only the carrier reaches Kamailio, only Kamailio reaches a node: a node's own address calling in (as an
    attacker inside the network would) is refused at the edge, and a call straight to a node gets no channel."""
    n1, n2 = live.node("n1"), live.node("n2")
    straight = subprocess.run(clustermod.in_netns(
        live.cluster.topo.carrier,
        ["sipp", "-sf", str(live_scenario("uac_rejected.xml")), "-s", NUMBERS[0], "-key", "caller", "+31612345678",
         "-i", clustermod.CARRIER_ADDRESS, "-p", "5990", "-m", "1", "-nostdin", "-timeout", "10s", "-timeout_error",
         "-trace_msg", "-message_file", str(live.cluster.state_dir / "straight.log"),
         f"{n1.sip_address}:{n1.ports.sip}"]), capture_output=True, text=True, timeout=30)
    from_node = subprocess.run(clustermod.in_netns(
        n2.netns or "",
        ["sipp", "-sf", str(live_scenario("uac_rejected.xml")), "-s", NUMBERS[0], "-key", "caller", "+31612345678",
         "-i", n2.sip_address, "-p", "5991", "-m", "1", "-nostdin", "-timeout", "10s", "-timeout_error",
         "-trace_msg", "-message_file", str(live.cluster.state_dir / "from_node.log"),
         f"{clustermod.EDGE_ADDRESS}:{clustermod.KAMAILIO_PORT}"]), capture_output=True, text=True, timeout=30)

    # A node is in the dispatcher's set, so Kamailio takes its INVITE as outbound: not a phone, 403.
    assert re.search(r"^SIP/2.0 403 ", (live.cluster.state_dir / "from_node.log").read_text(), re.M), from_node.stdout
    # Asterisk challenges a peer it does not know (no endpoint named anonymous): never a channel.
    assert re.search(r"^SIP/2.0 401 ", (live.cluster.state_dir / "straight.log").read_text(), re.M), straight.stdout
    assert live.cdrs() == []


def live_scenario(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "e2e" / "scenarios" / name


def originate(live: LiveCluster, node_name: str, phone: str) -> int:
    """An ARI originate on a node to PJSIP/<phone>@carrier-out, as anyone with the node's ARI password
    could (issue 17's open item); the HTTP status of the request."""
    node = live.node(node_name)
    secrets = node.secrets()
    script = (
        "import base64, sys, urllib.parse, urllib.request\n"
        "url, auth, endpoint = sys.argv[1:4]\n"
        "q = urllib.parse.urlencode({'endpoint': endpoint, 'context': 'default', 'extension': 's', 'timeout': '10'})\n"
        "req = urllib.request.Request(url + '/ari/channels?' + q, method='POST', "
        "headers={'Authorization': 'Basic ' + base64.b64encode(auth.encode()).decode()})\n"
        "print(urllib.request.urlopen(req, timeout=10).status)\n")
    done = subprocess.run(clustermod.in_netns(node.netns or "", [
        sys.executable, "-c", script, node.ari_url, f"{secrets['ARI_USER']}:{secrets['ARI_PASSWORD']}",
        f"PJSIP/{phone}@carrier-out"]), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_an_originate_to_a_number_not_on_the_list_is_refused_by_kamailio(live: LiveCluster) -> None:
    premium, listed = "+31900123456", "+31612390011"  # a listed phone: tests/cluster/fairline.yaml
    offset = len(live.kamailio_log())

    assert originate(live, "n1", premium) == 200  # Asterisk makes the channel: it cannot tell
    assert originate(live, "n1", listed) == 200

    def logged() -> str:
        return live.kamailio_log()[offset:]

    assert poll(lambda: f"edge.outbound target={listed} " in logged(), timeout=15), logged()
    assert poll(lambda: f"edge.refused_target target={premium} " in logged(), timeout=15), logged()
    assert f"edge.outbound target={premium} " not in logged()
