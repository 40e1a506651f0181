"""compose.cluster.yaml, the cluster's shape for hosts with a Docker engine (issue 20), read as Compose would
where no Docker engine is.

It must be `make cluster`'s shape (cluster/cluster.py): the same addresses and node names, Kamailio's
dispatcher list and the nodes' allow-lists naming each other, each node compose.yaml's Asterisk + fairline +
fallback with only its address, name and volumes changed, and Kamailio run from the one cluster/kamailio.cfg,
rendered as its entrypoint renders it and accepted by `kamailio -c`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "asterisk-docker"
sys.path.insert(0, str(DOCKER))
sys.path.insert(0, str(ROOT / "cluster"))

import cluster as clustermod  # noqa: E402

TEXT = (DOCKER / "compose.cluster.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SINGLE: dict[str, dict[str, Any]] = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
NODES = ("n1", "n2")
KAMAILIO_DIR = "/srv/fairline/kamailio"  # kamailio-entrypoint.sh's default


def interpolated(value: str) -> str:
    """A value as Compose reads it with no variable set: `${NAME:-default}` is the default, `$$` a `$`."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value).replace("$$", "$")


def env(service: str) -> dict[str, str]:
    return {k: interpolated(str(v)) for k, v in SERVICES[service].get("environment", {}).items()}


def address(service: str) -> str:
    return str(SERVICES[service]["networks"]["cluster"]["ipv4_address"])


def stage(name: str) -> str:
    m = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.M | re.S)
    assert m, name
    return m.group(1)


def without(service: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in service.items() if k not in keys}


class TestShape:
    def test_kamailio_two_nodes_and_one_postgresql(self) -> None:
        assert set(SERVICES) == {"postgres", "edge-lists", "kamailio",
                                 *(f"{part}-{n}" for n in NODES for part in ("fallback", "asterisk", "fairline"))}

    def test_the_addresses_are_make_clusters(self) -> None:
        net = COMPOSE["networks"]["cluster"]["ipam"]["config"][0]
        assert net["subnet"] == f"{clustermod.SUBNET}.0/24"
        assert address("kamailio") == clustermod.EDGE_ADDRESS
        assert address("postgres") == clustermod.DATABASE_ADDRESS
        for i, n in enumerate(NODES, start=1):
            assert address(f"asterisk-{n}") == env(f"asterisk-{n}")["FAIRLINE_SIP_ADDRESS"] == clustermod.node_address(i)
            assert env(f"asterisk-{n}")["FAIRLINE_SYSTEM_NAME"] == n  # cdrs.node, call ids (decision 0023)
        # Every address is the subnet's and used once; the gateway (the host) takes none of ours.
        taken = [clustermod.CARRIER_ADDRESS, net["gateway"],
                 *(s["networks"]["cluster"]["ipv4_address"] for s in SERVICES.values() if "networks" in s)]
        assert len(taken) == len(set(taken))
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network(net["subnet"]) for a in taken)

    def test_kamailios_nodes_are_the_nodes_and_each_node_takes_calls_from_kamailio_only(self) -> None:
        edge = env("kamailio")
        assert edge["FAIRLINE_EDGE_ADDRESS"] == address("kamailio")
        assert int(edge["FAIRLINE_EDGE_PORT"]) == clustermod.KAMAILIO_PORT
        assert edge["FAIRLINE_NODES"].split() == [
            f"{address(f'asterisk-{n}')}:{env(f'asterisk-{n}')['FAIRLINE_SIP_PORT']}" for n in NODES]
        for n in NODES:
            node = env(f"asterisk-{n}")
            assert node["FAIRLINE_CARRIER_IN_MATCH"] == address("kamailio")
            assert node["FAIRLINE_CARRIER_OUT_HOST"] == f"{address('kamailio')}:{edge['FAIRLINE_EDGE_PORT']}"

    def test_the_carrier_is_make_clusters_by_default(self) -> None:
        assert env("edge-lists")["FAIRLINE_CARRIER_ADDRESSES"] == clustermod.CARRIER_ADDRESS
        assert env("kamailio")["FAIRLINE_CARRIER_OUT"] == f"{clustermod.CARRIER_ADDRESS}:{clustermod.TARGETS_PORT}"

    @pytest.mark.parametrize("n", NODES)
    def test_each_fairline_runs_beside_its_asterisk_on_the_shared_database(self, n: str) -> None:
        fairline = SERVICES[f"fairline-{n}"]
        assert fairline["network_mode"] == f"service:asterisk-{n}"  # ARI and AMI on the node's loopback
        m = re.search(r"@([\d.]+):(\d+)/fairline ", " ".join(fairline["entrypoint"]))
        assert m and m.group(1) == address("postgres")
        assert ["-p", m.group(2)] == SERVICES["postgres"]["command"][-2:]
        assert f"listen_addresses={address('postgres')}" in SERVICES["postgres"]["command"]


class TestNodesAreComposeYamls:
    """Each node is compose.yaml's Asterisk, fairline and fallback: what differs is its address, name and volumes."""

    @staticmethod
    def renamed(volumes: list[str], n: str) -> list[str]:
        return [re.sub(r"^([\w-]+):", rf"\1-{n}:", v) for v in volumes]

    @pytest.mark.parametrize("n", NODES)
    def test_asterisk(self, n: str) -> None:
        node, single = SERVICES[f"asterisk-{n}"], SINGLE["asterisk"]
        assert without(node, "networks", "depends_on", "environment", "volumes") == without(
            single, "network_mode", "depends_on", "environment", "volumes")
        assert single["environment"].items() <= node["environment"].items()
        assert node["volumes"] == self.renamed(single["volumes"], n)
        assert node["depends_on"] == {f"fallback-{n}": single["depends_on"]["fallback"]}

    @pytest.mark.parametrize("n", NODES)
    def test_fairline(self, n: str) -> None:
        node, single = SERVICES[f"fairline-{n}"], SINGLE["fairline"]
        assert without(node, "network_mode", "depends_on", "entrypoint", "volumes") == without(
            single, "network_mode", "depends_on", "entrypoint", "volumes")
        assert node["entrypoint"] == [part.replace("@127.0.0.1:5433/", f"@{address('postgres')}:5432/")
                                      for part in single["entrypoint"]]
        assert node["volumes"] == self.renamed(single["volumes"], n)
        assert node["depends_on"] == {f"asterisk-{n}": single["depends_on"]["asterisk"],
                                      "postgres": single["depends_on"]["postgres"]}

    @pytest.mark.parametrize("n", NODES)
    def test_fallback(self, n: str) -> None:
        node, single = SERVICES[f"fallback-{n}"], SINGLE["fallback"]
        assert without(node, "volumes") == without(single, "volumes")
        assert node["volumes"] == self.renamed(single["volumes"], n)

    def test_postgres_differs_only_in_its_address(self) -> None:
        keys = ("network_mode", "networks", "command", "healthcheck")
        assert without(SERVICES["postgres"], *keys) == without(SINGLE["postgres"], *keys)


class TestCompose:
    def test_every_service_that_keeps_running_restarts_and_has_a_healthcheck(self) -> None:
        for name, service in SERVICES.items():
            if service.get("restart") == "no":
                continue
            assert service.get("restart") == "unless-stopped", name
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name

    def test_none_of_our_containers_runs_as_root(self) -> None:
        for name, service in SERVICES.items():
            if name != "postgres":  # the official image's way (compose.yaml)
                assert re.fullmatch(r"(\d+):\1", service["user"]) and not service["user"].startswith("0:"), name

    def test_depends_on_names_services_with_what_each_condition_needs(self) -> None:
        for name, service in SERVICES.items():
            for other, dep in service.get("depends_on", {}).items():
                condition = dep["condition"]
                if condition == "service_healthy":
                    assert "healthcheck" in SERVICES[other], (name, other)
                elif condition == "service_completed_successfully":
                    assert SERVICES[other]["restart"] == "no", (name, other)
                else:
                    assert condition == "service_started", (name, other)

    def test_volumes_are_declared_used_and_no_node_shares_one_with_another(self) -> None:
        users: dict[str, set[str]] = {}
        for name, service in SERVICES.items():
            for spec in service.get("volumes", []):
                users.setdefault(spec.split(":")[0], set()).add(name)
        assert set(users) == set(COMPOSE["volumes"])
        for volume, names in users.items():
            assert len({m.group(1) for s in names if (m := re.search(r"-(n\d+)$", s))}) <= 1, (volume, names)

    def test_every_dollar_is_an_escape_a_required_variable_or_one_with_a_default(self) -> None:
        values = "\n".join(line for line in TEXT.splitlines() if not line.lstrip().startswith("#"))
        for m in re.finditer(r"\$(\$|\{\w+:[?-][^}]+\}|.)", values):
            assert m.group(1) == "$" or len(m.group(1)) > 1, values[m.start() - 40:m.end() + 10]

    def test_the_secrets_are_compose_yamls(self) -> None:
        single = yaml.safe_load((DOCKER / "compose.yaml").read_text())["secrets"]
        assert COMPOSE["secrets"].keys() == single.keys()
        for name, secret in COMPOSE["secrets"].items():
            assert secret["file"].split(":?")[0] == single[name]["file"].split(":?")[0]


class TestKamailio:
    def test_its_image_user_and_directories(self) -> None:
        uid = SERVICES["kamailio"]["user"].split(":")[0]
        kamailio = stage("kamailio")
        assert re.search(rf"groupadd --system --gid {uid} kamailio\b.*useradd --system --uid {uid} --gid kamailio\b"
                         r".*\bUSER kamailio$", kamailio, re.S | re.M)
        assert "COPY cluster/kamailio.cfg /opt/fairline/kamailio.cfg" in kamailio  # the one source, no copy
        assert "COPY asterisk-docker/kamailio-entrypoint.sh /opt/fairline/kamailio-entrypoint.sh" in kamailio
        assert "COPY asterisk-docker/edge-lists.sh /opt/fairline/edge-lists.sh" in stage("fairline")
        # The lists volume takes owner and mode from whichever image mounts it first: the same in both.
        lists = re.compile(rf"install -d -o 951 -g 951 -m 755 {KAMAILIO_DIR}/lists$", re.M)
        assert lists.search(kamailio) and lists.search(stage("fairline"))

    def test_it_reads_the_lists_the_one_shot_writes_and_answers_its_healthcheck_where_it_listens(self) -> None:
        assert SERVICES["kamailio"]["depends_on"] == {"edge-lists": {"condition": "service_completed_successfully"}}
        written = env("edge-lists")["FAIRLINE_KAMAILIO_LISTS"]
        assert SERVICES["edge-lists"]["volumes"] == [f"kamailio-lists:{written}"]
        assert SERVICES["kamailio"]["volumes"] == [f"kamailio-lists:{KAMAILIO_DIR}/lists:ro"]
        assert written == f"{KAMAILIO_DIR}/lists"
        assert f"unix:{KAMAILIO_DIR}/run/kamailio.ctl" in SERVICES["kamailio"]["healthcheck"]["test"]

    def test_the_entrypoint_fills_every_marker_cluster_py_fills(self) -> None:
        markers = set(re.findall(r"@([A-Z_]+)@", (ROOT / "cluster" / "kamailio.cfg").read_text()))
        entrypoint = set(re.findall(r's\|@([A-Z_]+)@\|', (DOCKER / "kamailio-entrypoint.sh").read_text()))
        source = (ROOT / "cluster" / "cluster.py").read_text()
        call = source[source.index('render_template(HERE / "kamailio.cfg"'):]
        by_cluster_py = set(re.findall(r'^\s+"([A-Z_]+)":', call[:call.index("}))")], re.M))
        assert markers == entrypoint == by_cluster_py

    def test_kamailio_accepts_the_configuration_as_the_compose_file_renders_it(self, tmp_path: Path) -> None:
        done = render_and_check(tmp_path, ROOT / "cluster" / "kamailio.cfg")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "config file ok" in done.stdout + done.stderr
        cfg = (tmp_path / "kamailio.cfg").read_text()
        assert f"listen=udp:{clustermod.EDGE_ADDRESS}:{clustermod.KAMAILIO_PORT}\n" in cfg
        assert f'$du = "sip:{clustermod.CARRIER_ADDRESS}:{clustermod.TARGETS_PORT}";' in cfg
        assert (tmp_path / "dispatcher.list").read_text().splitlines()[1:] == [
            f"1 sip:{clustermod.node_address(i)}:5060" for i in (1, 2)]

    def test_a_configuration_kamailio_rejects_fails_the_check(self, tmp_path: Path) -> None:
        broken = tmp_path / "broken.cfg"
        broken.write_text((ROOT / "cluster" / "kamailio.cfg").read_text().replace("route[RELAY] {", "route[RELAY] {{"))
        done = render_and_check(tmp_path, broken)
        assert done.returncode != 0


def render_and_check(tmp: Path, template: Path) -> subprocess.CompletedProcess[str]:
    """The lists as the one-shot edge-lists writes them, then Kamailio's entrypoint with `check`, each with its
    compose service's environment (directories moved under tmp)."""
    lists = tmp / "lists"
    lists.mkdir(exist_ok=True)
    bin_dir = Path(sys.executable).parent
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    wrote = subprocess.run(["sh", str(DOCKER / "edge-lists.sh")], capture_output=True, text=True, timeout=60, env={
        **base, **env("edge-lists"), "FAIRLINE_CONFIG": str(ROOT / "dialplan" / "fairline.yaml"),
        "FAIRLINE_KAMAILIO_LISTS": str(lists)})
    assert wrote.returncode == 0, wrote.stderr
    return subprocess.run(["sh", str(DOCKER / "kamailio-entrypoint.sh"), "check"], capture_output=True, text=True,
                          timeout=60, env={**base, **env("kamailio"), "FAIRLINE_KAMAILIO_DIR": str(tmp),
                                           "FAIRLINE_KAMAILIO_TEMPLATE": str(template)})
