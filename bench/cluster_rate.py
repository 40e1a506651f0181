"""The cluster's clean call rate through Kamailio with one node and with two, and what each call costs
Kamailio, the nodes and PostgreSQL (issue 20). Needs root: it runs `make cluster`'s machinery
(cluster/cluster.py) under a name of its own, with tests/cluster/fairline.yaml's ten numbers.

At each offered rate, in one run, the two shapes alternate (one node, two nodes; the order reversed at every
other rate, so neither always follows the other). "One node": Kamailio's dispatcher has node n2 disabled
(`kamcmd dispatcher.set_state d`, no probing), so every number hashes to n1; "two nodes": both active. Every
run gets a fresh fairline on each node, which takes 20 calls first that are not counted (as bench/call_path.py
does: what one run's overload taught fairline must not reach the next). sipp, in the carrier's namespace as
the cluster tests place calls, sends --seconds of calls at the rate over the ten numbers (1 s of ringing,
--talk-ms of talk). A run is **clean** when every call was answered, sipp saw no SIP error or timeout, every
call was taken on by a fairline (none shed or kept out by the admitted share: fairline_calls_routed_total,
decision 0016), and every call has exactly one CDR. A shape's highest clean rate is the last rate before its
first unclean one; the ramp ends at the first rate where both shapes are unclean.

Cost per call is CPU time (user + system, from /proc) over the run divided by the calls: Kamailio's
processes, each node's namespace (Asterisk and fairline), PostgreSQL. Kamailio's figure is also given net
of its idle cost (OPTIONS probes and timers), measured before the first run. Everything shares this
machine's two cores, so the rates show cost, not scale: docs/scale-out.md says what they predict for N
nodes on N machines. Results go to results/cluster_rate.json. It stops the cluster when done; a run that
died leaves it to `FAIRLINE_CLUSTER=flb make cluster-down`.

    .venv/bin/python bench/cluster_rate.py [--rates 5,10,15,20,25,30,40,50,60,80] [--seconds 8] [--talk-ms 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cluster"))
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import cluster as clustermod  # noqa: E402
import stack as stackmod  # noqa: E402
from common import RESULTS, print_table, write_results  # noqa: E402

NAME = "flb"  # the namespaces flb-edge, flb-n1, ...: apart from `make cluster` (flc) and the tests (flt-...)
CONFIG = ROOT / "tests" / "cluster" / "fairline.yaml"
NUMBERS = [f"+312012390{i:02d}" for i in range(10)]
CALLER = ROOT / "tests" / "cluster" / "scenarios" / "uac_talk_routed.xml"
SHAPES = ("one node", "two nodes")
WARM_UP = 20  # calls each fresh fairline takes before a run, not counted (imports, caches, the pool)


@dataclasses.dataclass
class Run:
    rate: int
    shape: str
    offered: int
    answered: int
    failed: int
    shed: int
    cdrs: int
    distinct_cdrs: int
    by_node: dict[str, int]
    seconds: float
    cpu_ms: dict[str, float]  # per call: kamailio, n1, n2, postgres; and each net of its idle cost (*_net)

    @property
    def clean(self) -> bool:
        return (self.answered == self.offered and self.failed == 0 and self.shed == 0
                and self.cdrs == self.distinct_cdrs == self.offered)


class Bench:
    def __init__(self, cluster: clustermod.Cluster, seconds: float, talk_ms: int) -> None:
        self.cluster = cluster
        self.seconds = seconds
        self.talk_ms = talk_ms
        self.idle_per_s: dict[str, float] = {}
        self.calls_file = cluster.state_dir / "bench_numbers.csv"
        self.calls_file.write_text("SEQUENTIAL\n" + "".join(f"{d};\n" for d in NUMBERS))
        self.scenario = cluster.state_dir / "bench_numbers.xml"
        self.scenario.write_text(CALLER.read_text().replace("[service]", "[field0]"))

    # the parts whose CPU is counted
    def cpu(self) -> dict[str, float]:
        topo = self.cluster.topo
        return {"kamailio": clustermod.netns_cpu_seconds(topo.edge, {"kamailio"}),
                "postgres": clustermod.netns_cpu_seconds(topo.edge, {"postgres"}),
                **{n.system_name: clustermod.netns_cpu_seconds(n.netns or "") for n in self.cluster.nodes}}

    def measure_idle(self, seconds: float = 15) -> None:
        """What each part costs with no call (OPTIONS probes, timers, fairline's ticker), per second."""
        self.quiet()
        before = self.cpu()
        time.sleep(seconds)  # a measurement of the idle cost itself, not a wait for a condition
        after = self.cpu()
        self.idle_per_s = {k: (after[k] - before[k]) / seconds for k in before}

    def set_shape(self, shape: str) -> None:
        """One node: n2 disabled in Kamailio's dispatcher (no probing, never picked); two: n2 active and probed."""
        n2 = self.cluster.nodes[1]
        uri = f"sip:{n2.sip_address}:{n2.ports.sip}"
        one = shape == "one node"
        self.cluster.kamcmd("dispatcher.set_state", "d" if one else "ap", "1", uri)
        stackmod.wait_for(f"n2 {'disabled' if one else 'active'} in Kamailio's dispatcher",
                          lambda: self.cluster.node_states()[uri][:1] == ("D" if one else "A"), timeout=20)

    def routed(self) -> int:
        """Calls the nodes' fairlines took on (fairline_calls_routed_total): the others were shed or kept out
        by the admitted share, and took the dialplan's fallback."""
        total = 0.0
        for node in self.cluster.nodes:
            text = subprocess.run(clustermod.in_netns(node.netns or "", [
                sys.executable, "-c", "import sys, urllib.request; "
                "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
                f"http://127.0.0.1:{node.ports.status}/metrics"]), capture_output=True, text=True, timeout=30).stdout
            m = re.search(r"^fairline_calls_routed_total ([0-9.e+]+)$", text, re.M)
            if m is None:
                raise stackmod.StackError(f"no fairline_calls_routed_total in the /metrics of {node.system_name}")
            total += float(m.group(1))
        return int(total)

    def cdrs(self, since: datetime) -> tuple[int, int, dict[str, int]]:
        """The CDRs of the calls started since `since` (not the warm-up's, whose last may be written late):
        how many, how many distinct call ids, how many per node."""
        window = f"FROM cdrs WHERE started_at >= '{since.isoformat()}'"
        out = self.cluster.db.psql("fairline", "SELECT json_build_object('n', count(*), 'distinct', "
                                   "count(DISTINCT call_id), 'nodes', coalesce((SELECT json_object_agg(node, k) FROM "
                                   f"(SELECT node, count(*) AS k {window} GROUP BY node) x), '{{}}')) {window}")
        doc = json.loads(out)
        return int(doc["n"]), int(doc["distinct"]), {k: int(v) for k, v in doc["nodes"].items()}

    def quiet(self) -> None:
        """Wait until no node has a channel up: the last run's calls are over everywhere."""
        def idle() -> bool:
            return all("0 active channels" in n.asterisk_rx("core show channels count") for n in self.cluster.nodes)
        stackmod.wait_for("no channel up on any node", idle, timeout=120)

    def fresh_fairlines(self) -> None:
        """A new fairline on each node, as bench/call_path.py gives every run: what one run's overload taught
        fairline (its shedding estimates, a lowered admitted share) must not reach the next."""
        for node in self.cluster.nodes:
            stackmod.stop_process(node.fairline, f"fairline of {node.system_name}")
            node.fairline = None
            # The share fairline last let in outlives it (a dialplan global): every call again.
            node.asterisk_rx("dialplan set global FAIRLINE_ADMIT 100")
            node.start_fairline()

    def place(self, rate: int, calls: int) -> tuple[int, int]:
        """sipp in the carrier's namespace: `calls` calls at `rate` over the numbers; (answered, failed)."""
        sip, media = stackmod.sipp_ports(clustermod.CARRIER_ADDRESS, netns=self.cluster.topo.carrier)
        done = subprocess.run(clustermod.in_netns(self.cluster.topo.carrier, [
            "sipp", "-sf", str(self.scenario), "-inf", str(self.calls_file), "-key", "caller", "+31612345678",
            "-i", clustermod.CARRIER_ADDRESS, "-p", str(sip), "-mp", str(media),
            "-m", str(calls), "-r", str(rate), "-d", str(self.talk_ms), "-l", str(rate * 20), "-nostdin",
            "-recv_timeout", "15000", "-timeout", f"{calls / rate + 120:.0f}s", "-timeout_error",
            f"{clustermod.EDGE_ADDRESS}:{clustermod.KAMAILIO_PORT}"]),
            capture_output=True, text=True, cwd=self.cluster.state_dir, timeout=calls / rate + 180)
        ok = re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", done.stdout)
        failed = re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", done.stdout)
        if not ok or not failed:
            raise stackmod.StackError(f"sipp printed no statistics (exit {done.returncode}):\n{done.stdout[-2000:]}"
                                      f"{done.stderr[-2000:]}")
        return int(ok[-1]), int(failed[-1])

    def run(self, rate: int, shape: str) -> Run:
        self.set_shape(shape)
        self.quiet()
        self.fresh_fairlines()
        self.place(10, WARM_UP)
        self.quiet()
        calls = int(rate * self.seconds)
        since = datetime.now(UTC)
        routed_before, cpu_before, started = self.routed(), self.cpu(), time.monotonic()
        answered, failed = self.place(rate, calls)
        seconds = time.monotonic() - started
        cpu_after = self.cpu()
        routed = self.routed() - routed_before
        # CDRs are written just after each call ends: wait for those of the calls fairline took on.
        try:
            stackmod.wait_for("a CDR for every call fairline took on", lambda: self.cdrs(since)[0] >= routed, timeout=30)
        except stackmod.StackError:
            pass  # counted below: fewer CDRs than calls make the run unclean
        cdrs, distinct, by_node = self.cdrs(since)
        used = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
        used |= {f"{k}_net": used[k] - self.idle_per_s.get(k, 0.0) * seconds for k in cpu_before}
        return Run(rate=rate, shape=shape, offered=calls, answered=answered, failed=failed, shed=calls - routed,
                   cdrs=cdrs, distinct_cdrs=distinct, by_node=by_node, seconds=round(seconds, 1),
                   cpu_ms={k: round(v * 1000 / calls, 3) for k, v in used.items()})


def highest_clean(runs: list[Run], shape: str) -> int:
    best = 0
    for run in sorted((r for r in runs if r.shape == shape), key=lambda r: r.rate):
        if not run.clean:
            break
        best = run.rate
    return best


def summary(runs: list[Run], idle_per_s: dict[str, float]) -> dict[str, Any]:
    clean = {shape: highest_clean(runs, shape) for shape in SHAPES}

    def per_call(key: str, shape: str | None = None) -> float:
        """CPU a call over all clean runs (of one shape), weighted by their calls: the longest runs, whose
        figures the clock's 10 ms ticks blur least, count most."""
        counted = [r for r in runs if r.clean and shape in (None, r.shape)]
        calls = sum(r.offered for r in counted)
        return round(sum(r.cpu_ms[key] * r.offered for r in counted) / calls, 3) if calls else float("nan")

    kamailio, node, postgres = per_call("kamailio_net"), per_call("n1_net", "one node"), per_call("postgres_net")

    def per_core(ms: float) -> int | None:
        return round(1000 / ms) if ms > 0 else None

    return {
        "highest_clean_rate": clean,
        "two_over_one": round(clean["two nodes"] / clean["one node"], 2) if clean["one node"] else None,
        "kamailio_ms_per_call": per_call("kamailio"),
        # Net of each part's idle cost (Kamailio: its OPTIONS probes; a node: Asterisk's and fairline's timers).
        "kamailio_ms_per_call_net": kamailio,
        "node_ms_per_call_net": node,
        "postgres_ms_per_call_net": postgres,
        "idle_ms_per_s": {k: round(v * 1000, 2) for k, v in idle_per_s.items()},
        # What the costs predict by CPU alone, per core: calls/s, and how many nodes' calls one Kamailio core carries.
        "kamailio_calls_per_core_s": per_core(kamailio),
        "node_calls_per_core_s": per_core(node),
        "postgres_calls_per_core_s": per_core(postgres),
        "node_cores_per_kamailio_core": round(node / kamailio, 1) if kamailio > 0 else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="5,10,15,20,25,30,40,50,60,80", help="offered calls/s, in order")
    parser.add_argument("--seconds", type=float, default=8, help="how long sipp places calls at each rate")
    parser.add_argument("--talk-ms", type=int, default=1000, help="talk time of each call (after 1 s ringing)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cluster_rate.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the cluster makes network namespaces: run the benchmark as root", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    stackmod.install_prerequisites()
    cluster = clustermod.Cluster.create(NAME, app_config=CONFIG)
    for node in cluster.nodes:
        node.fairline_log_level = "info"  # one line per ARI event costs the node what the bench measures
        (node.asterisk_dir / "log" / "cdr-custom" / "fairline-cdr.csv").unlink(missing_ok=True)
    print(f"cluster_rate: starting the cluster {NAME} (Kamailio, nodes n1 and n2, PostgreSQL)", flush=True)
    cluster.start()
    runs: list[Run] = []
    try:
        bench = Bench(cluster, args.seconds, args.talk_ms)
        bench.place(10, WARM_UP)
        bench.measure_idle()
        for i, rate in enumerate(rates):
            for shape in (SHAPES if i % 2 == 0 else SHAPES[::-1]):
                run = bench.run(rate, shape)
                runs.append(run)
                print(f"  {rate:4d}/s {shape:9s}: {run.answered}/{run.offered} answered, {run.failed} failed, "
                      f"{run.shed} shed, {run.cdrs} CDRs {run.by_node} -> {'clean' if run.clean else 'NOT clean'}; "
                      f"ms/call net of idle: Kamailio {run.cpu_ms['kamailio_net']:.2f}, n1 {run.cpu_ms['n1_net']:.1f}, "
                      f"n2 {run.cpu_ms['n2_net']:.1f}, PostgreSQL {run.cpu_ms['postgres_net']:.2f}",
                      flush=True)
            if all(not r.clean for r in runs if r.rate == rate):
                break  # both shapes past their clean rate: higher rates only take longer
    finally:
        cluster.stop()
    result = summary(runs, bench.idle_per_s)
    print()
    print_table(["rate/s", "shape", "answered", "failed", "shed", "CDRs", "clean", "Kamailio ms/call", "net",
                 "n1 net", "n2 net", "PostgreSQL net"],
                [[r.rate, r.shape, f"{r.answered}/{r.offered}", r.failed, r.shed, r.cdrs, "yes" if r.clean else "NO",
                  r.cpu_ms["kamailio"], r.cpu_ms["kamailio_net"], r.cpu_ms["n1_net"], r.cpu_ms["n2_net"],
                  r.cpu_ms["postgres_net"]] for r in runs])
    print()
    clean = result["highest_clean_rate"]
    print(f"highest clean rate: one node {clean['one node']}/s, two nodes {clean['two nodes']}/s (two / one = "
          f"{result['two_over_one']}), everything on one machine of {os.cpu_count()} cores")
    print(f"CPU a call, net of idle (the clean runs): Kamailio {result['kamailio_ms_per_call_net']} ms "
          f"(~{result['kamailio_calls_per_core_s']} calls/s a core; {result['kamailio_ms_per_call']} ms with its "
          f"probes), a node {result['node_ms_per_call_net']} ms (~{result['node_calls_per_core_s']} calls/s a core), "
          f"PostgreSQL {result['postgres_ms_per_call_net']} ms (~{result['postgres_calls_per_core_s']} calls/s a core)")
    print(f"one Kamailio core carries the calls of ~{result['node_cores_per_kamailio_core']} node cores")
    write_results(args.out, {"rates": rates, "seconds": args.seconds, "talk_ms": args.talk_ms,
                             "cores": os.cpu_count(), "runs": [dataclasses.asdict(r) | {"clean": r.clean} for r in runs],
                             "summary": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
