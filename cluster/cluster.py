"""fairline as a cluster on one machine: Kamailio in front of Asterisk + fairline nodes, one PostgreSQL.

Used by `make cluster`, `make cluster-down` and tests/cluster. Every part runs in a network namespace
this script creates (decision 0034, docs/scale-out.md), joined by a bridge in the edge's namespace:

    NAME-edge     10.77.0.1    Kamailio (SIP 5060), the bridge; 10.77.0.2 PostgreSQL
    NAME-n1       10.77.0.11   Asterisk + fairline, node n1   (n2: 10.77.0.12, ...)
    NAME-carrier  10.77.0.100  the carrier: callers (sipp) and the phones they reach (sipp, port 5070)

No address is added outside these namespaces. The nodes are asterisk-docker/stack.py's stacks, each
with its own namespace, address and systemname; they share the edge's PostgreSQL. The Docker compose
file asterisk-docker/compose.cluster.yaml has the same shape and addresses (tests/unit/test_compose_cluster.py).

    cluster.py up              start everything in the foreground until Ctrl-C, then stop it all
    cluster.py down            stop what an `up` that died left behind (processes, namespaces)
    cluster.py publish FILE    a new configuration for a running cluster: stored once for every node, and
                               Kamailio's allow-list of phones reloaded from it
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402
from stack import Ports, Stack, StackError, render_template, say, stop_process, wait_for  # noqa: E402

SUBNET = "10.77.0"
EDGE_ADDRESS = f"{SUBNET}.1"
DATABASE_ADDRESS = f"{SUBNET}.2"  # in the edge's namespace here; a container of its own in compose.cluster.yaml
CARRIER_ADDRESS = f"{SUBNET}.100"
KAMAILIO_PORT = 5060
TARGETS_PORT = 5070  # the phones behind the carrier (sipp), reached through Kamailio
KAMAILIO_USER = "kamailio"  # Debian's package creates it; Kamailio drops to it after binding


def node_address(index: int) -> str:
    return f"{SUBNET}.{10 + index}"


@dataclasses.dataclass(frozen=True)
class Topology:
    """The namespaces of one cluster; `name` keeps two clusters on one machine apart."""

    name: str
    nodes: int = 2

    @property
    def edge(self) -> str:
        return f"{self.name}-edge"

    @property
    def carrier(self) -> str:
        return f"{self.name}-carrier"

    def node(self, index: int) -> str:
        return f"{self.name}-n{index}"

    @property
    def namespaces(self) -> list[str]:
        return [self.edge, self.carrier, *(self.node(i) for i in range(1, self.nodes + 1))]


def ip(*args: str) -> None:
    stackmod.run_quiet(["ip", *args], what=f"ip {' '.join(args)}", timeout=30)


def netns_up(topo: Topology) -> None:
    """The namespaces, a bridge in the edge's, and one veth pair from each other namespace to the bridge."""
    netns_down(topo)
    for ns in topo.namespaces:
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", topo.edge, "link", "add", "br0", "type", "bridge")
    ip("-n", topo.edge, "addr", "add", f"{EDGE_ADDRESS}/24", "dev", "br0")
    ip("-n", topo.edge, "addr", "add", f"{DATABASE_ADDRESS}/24", "dev", "br0")
    ip("-n", topo.edge, "link", "set", "br0", "up")
    members = [(topo.carrier, "vcarrier", CARRIER_ADDRESS)]
    members += [(topo.node(i), f"vn{i}", node_address(i)) for i in range(1, topo.nodes + 1)]
    for ns, port, address in members:
        # Created straight in the two namespaces: the names never exist in the host's.
        ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", topo.edge)
        ip("-n", topo.edge, "link", "set", port, "master", "br0", "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")


def netns_down(topo: Topology) -> None:
    """Remove the namespaces (their veth pairs and bridge go with them); those missing are skipped."""
    existing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for ns in topo.namespaces:
        if ns in existing:
            ip("netns", "del", ns)


def in_netns(ns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def netns_cpu_seconds(ns: str, commands: Collection[str] = ()) -> float:
    """CPU time (user + system) the processes in the network namespace `ns` have used so far: those whose
    command name is in `commands`, or all of them. A process that has ended is no longer counted."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    ticks = 0
    for pid in pids:
        try:
            if commands and Path(f"/proc/{pid}/comm").read_text().strip() not in commands:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the cluster


@dataclasses.dataclass
class Cluster:
    topo: Topology
    state_dir: Path
    app_config: Path
    db: Stack
    nodes: list[Stack]
    kamailio: subprocess.Popen[bytes] | None = None
    targets: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, name: str, nodes: int = 2, app_config: Path = stackmod.DIALPLAN / "fairline.yaml") -> "Cluster":
        topo = Topology(name, nodes)
        # The database's stack: only its PostgreSQL is started, in the edge's namespace on the bridge.
        db = Stack.create(f"{name}-db", Ports.free())
        db.external_database_url = None
        db.netns = topo.edge
        db.pg_listen = f"127.0.0.1,{DATABASE_ADDRESS}"
        members = []
        for i in range(1, nodes + 1):
            node = Stack.create(f"{name}-n{i}", Ports.free())
            node.netns = topo.node(i)
            node.sip_address = node_address(i)
            node.system_name = f"n{i}"
            node.carrier_in_match = EDGE_ADDRESS  # only Kamailio may start a call on a node
            node.carrier_out_host = f"{EDGE_ADDRESS}:{KAMAILIO_PORT}"  # calls to phones leave through Kamailio
            node.app_config = app_config
            members.append(node)
        state = stackmod.CACHE / "instances" / name
        state.mkdir(parents=True, exist_ok=True)
        return cls(topo=topo, state_dir=state, app_config=app_config, db=db, nodes=members)

    @property
    def database_url(self) -> str:
        return f"postgresql://fairline:{self.db.secrets()['PG_PASSWORD']}@{DATABASE_ADDRESS}:{self.db.ports.pg}/fairline"

    @property
    def kamailio_dir(self) -> Path:
        """Kamailio's files: readable by its user, which cannot enter the instance's state directory."""
        return stackmod.CACHE / "kamailio" / self.topo.name

    @property
    def ctl_socket(self) -> Path:
        return self.kamailio_dir / "run" / "kamailio.ctl"

    def log(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    def start(self) -> None:
        try:
            netns_up(self.topo)
            self.start_database()
            self.start_kamailio()
            self.start_targets()
            for node in self.nodes:
                node.external_database_url = self.database_url
                node.start_asterisk()
                node.start_fairline()
            self.wait_nodes_up()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            stop_process(node.fairline, f"fairline of {node.system_name}")
            node.fairline = None
            node.stop_asterisk()
        stop_process(self.targets, "sipp targets")
        self.targets = None
        stop_process(self.kamailio, "Kamailio")
        self.kamailio = None
        self.db.stop_postgres()
        netns_down(self.topo)

    # PostgreSQL, shared by the nodes
    def start_database(self) -> None:
        self.db.start_postgres()
        hba = self.db.pg_data / "pg_hba.conf"
        line = f"host all all {SUBNET}.0/24 scram-sha-256\n"
        if line not in hba.read_text():
            with open(hba, "a") as f:
                f.write("# the cluster's nodes (cluster/cluster.py)\n" + line)
            self.db.psql("postgres", "SELECT pg_reload_conf()")

    # Kamailio
    def write_lists(self) -> None:
        """The lists Kamailio loads (decision 0034): the carrier's addresses and the phones fairline may ring,
        written by the script compose.cluster.yaml's one-shot runs too."""
        done = subprocess.run(["sh", str(stackmod.HERE / "edge-lists.sh")], capture_output=True, text=True, env=dict(
            os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            FAIRLINE_KAMAILIO_LISTS=str(self.kamailio_dir / "lists"), FAIRLINE_CONFIG=str(self.app_config),
            FAIRLINE_CARRIER_ADDRESSES=CARRIER_ADDRESS))
        if done.returncode != 0:
            raise StackError(f"edge-lists.sh for {self.app_config} failed:\n{done.stderr.strip()}")

    def publish(self, app_config: Path) -> None:
        """A new configuration for the whole cluster: stored once (every node's fairline applies it from the
        store), and Kamailio's lists written from it and reloaded (`kamcmd htable.reload`)."""
        self.app_config = app_config
        for node in self.nodes:
            node.app_config = app_config
        self.nodes[0].apply_config()
        self.write_lists()
        for table in ("dialable", "carrier"):
            self.kamcmd("htable.reload", table)

    def kamcmd(self, *args: str) -> str:
        return stackmod.run_quiet(["kamcmd", "-s", f"unix:{self.ctl_socket}", *args], what=f"kamcmd {args[0]}",
                                  timeout=10)

    def start_kamailio(self) -> None:
        user = pwd.getpwnam(KAMAILIO_USER)
        shutil.rmtree(self.kamailio_dir, ignore_errors=True)
        for sub in ("", "lists", "run"):
            (self.kamailio_dir / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.kamailio_dir / sub, 0, user.pw_gid)
            os.chmod(self.kamailio_dir / sub, 0o750)
        os.chown(self.kamailio_dir / "run", user.pw_uid, user.pw_gid)  # its control socket and pid file
        (self.kamailio_dir / "dispatcher.list").write_text(
            "# set 1: the nodes (cluster/cluster.py)\n"
            + "".join(f"1 sip:{n.sip_address}:{n.ports.sip}\n" for n in self.nodes))
        self.write_lists()
        cfg = self.kamailio_dir / "kamailio.cfg"
        cfg.write_text(render_template(HERE / "kamailio.cfg", {
            "ADDRESS": EDGE_ADDRESS,
            "PORT": str(KAMAILIO_PORT),
            "CTL_SOCKET": str(self.ctl_socket),
            "DISPATCHER_LIST": str(self.kamailio_dir / "dispatcher.list"),
            "LISTS_DIR": str(self.kamailio_dir / "lists"),
            "CARRIER_OUT": f"{CARRIER_ADDRESS}:{TARGETS_PORT}",
        }))
        for path in (cfg, self.kamailio_dir / "dispatcher.list"):
            os.chmod(path, 0o644)
        say(f"starting Kamailio (SIP {EDGE_ADDRESS}:{KAMAILIO_PORT} in {self.topo.edge})")
        log = open(self.log("kamailio"), "ab")
        self.kamailio = subprocess.Popen(
            in_netns(self.topo.edge, ["kamailio", "-DD", "-E", "-f", str(cfg), "-u", KAMAILIO_USER, "-g", KAMAILIO_USER,
                                      "-Y", str(self.kamailio_dir / "run"), "-P", str(self.kamailio_dir / "run" / "kamailio.pid")]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def answering() -> bool:
            if self.kamailio is not None and self.kamailio.poll() is not None:
                raise StackError(f"Kamailio exited at start (status {self.kamailio.returncode}); see {self.log('kamailio')}")
            done = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl_socket}", "core.version"], capture_output=True)
            return done.returncode == 0

        wait_for("Kamailio", answering, timeout=20, log=self.log("kamailio"))

    def node_states(self) -> dict[str, str]:
        """Each node's address -> its dispatcher flags (AP: active and probed, IP: inactive and probed)."""
        out = self.kamcmd("dispatcher.list")
        states: dict[str, str] = {}
        uri = None
        for line in out.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "URI":
                uri = value.strip()
            elif key == "FLAGS" and uri is not None:
                states[uri] = value.strip()
        return states

    def wait_nodes_up(self, timeout: float = 20) -> None:
        wait_for("every node answering Kamailio's OPTIONS",
                 lambda: set(self.node_states().values()) == {"AP"}, timeout=timeout, log=self.log("kamailio"))

    # the carrier's phones
    def start_targets(self) -> None:
        self.targets = subprocess.Popen(
            in_netns(self.topo.carrier, ["sipp", "-sf", str(stackmod.SCENARIOS / "uas_targets.xml"),
                                         "-i", CARRIER_ADDRESS, "-p", str(TARGETS_PORT), "-mp", "7000",
                                         "-nostdin", "-trace_err"]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.state_dir,
            start_new_session=True)


# ---------------------------------------------------------------- commands


def cluster_name() -> str:
    return os.environ.get("FAIRLINE_CLUSTER", "flc")


def cmd_up(_: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise StackError("the cluster makes network namespaces: run it as root")
    cluster = Cluster.create(cluster_name())
    stopping = stackmod.until_signalled()
    cluster.start()
    try:
        say(f"up: Kamailio at sip:{EDGE_ADDRESS}:{KAMAILIO_PORT} in namespace {cluster.topo.edge}; the carrier is "
            f"{CARRIER_ADDRESS} in {cluster.topo.carrier}, e.g.")
        # A caller that follows Record-Route (sipp's built-in uac does not: its ACK would reach no node).
        say(f"  ip netns exec {cluster.topo.carrier} sipp -sf {ROOT / 'tests/cluster/scenarios/uac_talk_routed.xml'} "
            f"-d 2000 -s +31201234567 -key caller +31612345678 -i {CARRIER_ADDRESS} -m 1 {EDGE_ADDRESS}:{KAMAILIO_PORT}")
        for node in cluster.nodes:
            say(f"  node {node.system_name}: {node.sip_address}:{node.ports.sip} in {node.netns}, logs in {node.state_dir}")
        say(f"  Kamailio's log {cluster.log('kamailio')}; Ctrl-C stops everything")
        while not stopping():
            time.sleep(0.2)
    finally:
        say("stopping")
        cluster.stop()
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    """What a crashed `up` left: its processes (by their pid files, checked against their command lines), then
    the namespaces."""
    cluster = Cluster.create(cluster_name())
    for node in cluster.nodes:
        stackmod.kill_stale(node.asterisk_dir / "run" / "asterisk.pid", f"Asterisk of {node.system_name}",
                            command_has=node.asterisk_conf_inside)
    stackmod.kill_stale(cluster.kamailio_dir / "run" / "kamailio.pid", "Kamailio", command_has=str(cluster.kamailio_dir))
    if (cluster.db.pg_data / "postmaster.pid").exists():
        cluster.db._pg_started = True
        cluster.db.stop_postgres()
    # fairline, sipp and anything else still inside a namespace: ip netns pids names them exactly.
    for ns in cluster.topo.namespaces:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            say(f"stopping pid {pid} left in {ns}")
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
    netns_down(cluster.topo)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    cluster = Cluster.create(cluster_name())
    cluster.db.external_database_url = None
    for node in cluster.nodes:
        node.external_database_url = cluster.database_url
    cluster.publish(Path(args.file).resolve())
    say(f"published {args.file}: stored for every node; Kamailio's allow-list reloaded")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the cluster in the foreground until Ctrl-C").set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop what an earlier `up` left behind").set_defaults(fn=cmd_down)
    publish = sub.add_parser("publish", help="store a configuration for every node; reload Kamailio's allow-list")
    publish.add_argument("file", help="the configuration (YAML)")
    publish.set_defaults(fn=cmd_publish)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except StackError as exc:
        say(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
