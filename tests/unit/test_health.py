"""/healthz and /metrics: what they answer follows the app and the CDR writer, on loopback only."""

from __future__ import annotations

import dataclasses
import json
import re
import types
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from structlog.testing import capture_logs

from ari_app.core.admission import Admission
from ari_app.errors import ConfigError
from ari_app.health import StatusServer, health, render_metrics, status_port
from ari_app.runtime.config_watch import ConfigOrigin
from ari_app.settings import DEFAULT_STATUS_PORT
from plumbing.loop_watch import LAG_BOUNDS_S
from ari_app.core.queueing import Caller, QueueState
from plumbing.metrics import LatencyHistogram

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


@dataclasses.dataclass
class FakeConfig:
    queues: Mapping[str, object] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FakeQueues:
    states: dict[str, QueueState] = dataclasses.field(default_factory=dict)
    config: FakeConfig = dataclasses.field(default_factory=FakeConfig)
    clock: Callable[[], datetime] = lambda: NOW
    node: str = "n1"  # the queues' node (Asterisk's systemname)


@dataclasses.dataclass
class FakeApp:
    calls: dict[str, object] = dataclasses.field(default_factory=dict)
    queues: FakeQueues = dataclasses.field(default_factory=FakeQueues)
    ari_connected: bool = True
    ari_reconnects: int = 0
    calls_shed: int = 0
    calls_routed: int = 0
    admission: Admission = dataclasses.field(default_factory=Admission)
    asterisk_delay: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)
    event_delay: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)
    config_origin: ConfigOrigin = ConfigOrigin("file")


@dataclasses.dataclass
class FakeWriter:
    written: int = 0
    spooled: int = 0
    rejected: int = 0
    pending: int = 0
    database_down: bool = False
    spool_depth: int = 0
    dead_lettered: int = 0
    dead_letters: int = 0
    dead_letter_path: str = "/var/spool/fairline/dead-letter.jsonl"
    failing: str | None = None
    write_latency: LatencyHistogram = dataclasses.field(default_factory=LatencyHistogram)


def waiting(*seconds: float) -> QueueState:
    """A queue state with callers who have waited these many seconds at NOW."""
    return QueueState(waiting=tuple(Caller(f"call-{i}", NOW - timedelta(seconds=s)) for i, s in enumerate(seconds)))


# One line of the text exposition format: a comment, or `name{label="value",...} number`.
SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)\})?'
    r' (?P<value>[-+]?(?:[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?|Inf|NaN))$'
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of an exposition, by name and labels; fails on any line that is neither comment nor sample."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "histogram"), line
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        labels = frozenset(LABEL.findall(match["labels"] or ""))
        key = (match["name"], labels)
        assert key not in samples, f"sample repeated: {line!r}"
        assert re.sub(r"_(bucket|sum|count)$", "", match["name"]) in typed or match["name"] in typed, line
        samples[key] = float(match["value"])
    return samples


def value(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


class TestMetrics:
    def test_every_line_is_a_comment_or_a_sample_and_every_metric_has_help_and_type(self) -> None:
        text = render_metrics(FakeApp(queues=FakeQueues(states={"sales": waiting(5)})), FakeWriter())
        parse(text)
        names = set(re.findall(r"^# TYPE (\S+)", text, re.M))
        assert names == set(re.findall(r"^# HELP (\S+)", text, re.M))
        assert names >= {
            "fairline_calls_in_progress", "fairline_queue_waiting_callers", "fairline_queue_longest_wait_seconds",
            "fairline_ari_reconnects_total", "fairline_ari_connected", "fairline_cdr_spool_depth",
            "fairline_cdr_write_latency_seconds", "fairline_cdrs_written_total", "fairline_cdrs_spooled_total",
        }

    def test_values_follow_the_app_and_the_writer(self) -> None:
        app = FakeApp(calls={"a": 1, "b": 2, "c": 3}, ari_connected=False, ari_reconnects=4, calls_shed=9,
                      calls_routed=40, admission=Admission(percent=25))
        writer = FakeWriter(written=120, spooled=7, rejected=1, pending=2, database_down=True, spool_depth=5)
        samples = parse(render_metrics(app, writer))
        assert value(samples, "fairline_calls_in_progress") == 3
        assert value(samples, "fairline_ari_connected") == 0
        assert value(samples, "fairline_ari_reconnects_total") == 4
        assert value(samples, "fairline_calls_shed_total") == 9
        assert value(samples, "fairline_calls_routed_total") == 40
        assert value(samples, "fairline_admitted_percent") == 25
        assert value(samples, "fairline_cdr_spool_depth") == 5
        assert value(samples, "fairline_cdrs_written_total") == 120
        assert value(samples, "fairline_cdrs_spooled_total") == 7
        assert value(samples, "fairline_cdrs_rejected_total") == 1
        assert value(samples, "fairline_cdrs_pending") == 2
        assert value(samples, "fairline_cdr_database_up") == 0

    def test_each_queue_reports_its_waiting_callers_and_the_longest_wait(self) -> None:
        queues = FakeQueues(states={"sales": waiting(42.5, 3), "support": QueueState()},
                            config=FakeConfig({"sales": object(), "support": object(), "idle": object()}))
        samples = parse(render_metrics(FakeApp(queues=queues), FakeWriter()))
        assert value(samples, "fairline_queue_waiting_callers", queue="sales", node="n1") == 2
        assert value(samples, "fairline_queue_longest_wait_seconds", queue="sales", node="n1") == 42.5
        assert value(samples, "fairline_queue_waiting_callers", queue="support", node="n1") == 0
        assert value(samples, "fairline_queue_longest_wait_seconds", queue="support", node="n1") == 0

    def test_a_configured_queue_nobody_used_yet_reports_zero(self) -> None:
        queues = FakeQueues(config=FakeConfig({"idle": object()}))
        samples = parse(render_metrics(FakeApp(queues=queues), FakeWriter()))
        assert value(samples, "fairline_queue_waiting_callers", queue="idle", node="n1") == 0

    def test_a_queue_removed_from_the_configuration_is_reported_while_callers_still_wait_in_it(self) -> None:
        queues = FakeQueues(states={"old": waiting(10)})
        samples = parse(render_metrics(FakeApp(queues=queues), FakeWriter()))
        assert value(samples, "fairline_queue_waiting_callers", queue="old", node="n1") == 1

    def test_a_queue_name_with_quotes_or_backslashes_keeps_the_format_valid(self) -> None:
        queues = FakeQueues(states={'a "b" \\ c': waiting(1)})
        samples = parse(render_metrics(FakeApp(queues=queues), FakeWriter()))
        assert value(samples, "fairline_queue_waiting_callers", queue='a \\"b\\" \\\\ c', node="n1") == 1

    def test_write_latency_is_a_cumulative_histogram_ending_in_inf(self) -> None:
        writer = FakeWriter()
        for seconds in (0.0005, 0.003, 0.003, 0.2, 30.0):
            writer.write_latency.observe(seconds)
        samples = parse(render_metrics(FakeApp(), writer))
        name = "fairline_cdr_write_latency_seconds"
        assert value(samples, f"{name}_bucket", le="0.001") == 1
        assert value(samples, f"{name}_bucket", le="0.005") == 3
        assert value(samples, f"{name}_bucket", le="0.25") == 4
        assert value(samples, f"{name}_bucket", le="10.0") == 4
        assert value(samples, f"{name}_bucket", le="+Inf") == value(samples, f"{name}_count") == 5
        assert value(samples, f"{name}_sum") == pytest.approx(30.2065)
        buckets = [v for (n, _), v in samples.items() if n == f"{name}_bucket"]
        assert buckets == sorted(buckets)

    def test_the_event_loops_lag_and_stalls_are_reported_when_watched(self) -> None:
        loop = types.SimpleNamespace(lag=LatencyHistogram(LAG_BOUNDS_S), stalls=2, lag_max=0.4)
        for seconds in (0.0004, 0.0004, 0.03, 0.4):
            loop.lag.observe(seconds)
        samples = parse(render_metrics(FakeApp(), FakeWriter(), loop))
        name = "fairline_event_loop_lag_seconds"
        assert value(samples, f"{name}_bucket", le="0.001") == 2
        assert value(samples, f"{name}_bucket", le="0.05") == 3
        assert value(samples, f"{name}_bucket", le="+Inf") == value(samples, f"{name}_count") == 4
        assert value(samples, "fairline_event_loop_stalls_total") == 2
        assert value(samples, "fairline_event_loop_lag_max_seconds") == 0.4
        assert "fairline_event_loop_lag_seconds" not in render_metrics(FakeApp(), FakeWriter())


class TestHealth:
    def test_ok_when_ari_is_connected_and_cdrs_reach_the_database(self) -> None:
        status, body = health(FakeApp(calls={"a": 1}), FakeWriter())
        assert status == 200
        assert body == {"status": "ok", "ari_connected": True, "database": "up", "calls_in_progress": 1,
                        "cdr_spool_depth": 0, "cdr_dead_letters": 0, "config": {"source": "file", "version": None}, "problems": []}

    def test_the_configuration_version_in_force_is_shown(self) -> None:
        app = FakeApp(config_origin=ConfigOrigin("store", "v12", 12))
        assert health(app, FakeWriter())[1]["config"] == {"source": "store", "version": "v12"}
        assert value(parse(render_metrics(app, FakeWriter())), "fairline_config_version") == 12
        assert value(parse(render_metrics(FakeApp(), FakeWriter())), "fairline_config_version") == 0

    def test_503_when_the_ari_websocket_is_not_connected(self) -> None:
        status, body = health(FakeApp(ari_connected=False), FakeWriter())
        assert (status, body["status"]) == (503, "down")
        assert "ARI" in str(body["problems"])

    def test_degraded_but_200_while_the_database_is_down_and_cdrs_are_spooled(self) -> None:
        """Calls still flow and no CDR is at risk: a supervisor must not restart fairline for this."""
        status, body = health(FakeApp(), FakeWriter(database_down=True, spool_depth=12))
        assert (status, body["status"], body["database"], body["cdr_spool_depth"]) == (200, "degraded", "down", 12)
        assert "spooled" in str(body["problems"])

    def test_503_when_the_cdr_writer_is_failing(self) -> None:
        failing = "CDRs are held in memory only: neither the database nor the spool takes them"
        status, body = health(FakeApp(), FakeWriter(database_down=True, failing=failing))
        assert (status, body["status"], body["problems"][0]) == (503, "down", failing)

    def test_degraded_but_200_while_cdrs_wait_in_the_dead_letter_file_naming_it(self) -> None:
        """A person must look; restarting fairline would not help, so no supervisor should."""
        status, body = health(FakeApp(), FakeWriter(dead_letters=2))
        assert (status, body["status"], body["database"], body["cdr_dead_letters"]) == (200, "degraded", "up", 2)
        [problem] = body["problems"]
        assert problem.startswith("2 CDR(s) in the dead-letter file /var/spool/fairline/dead-letter.jsonl")

    def test_dead_letters_are_counted_in_the_metrics(self) -> None:
        samples = parse(render_metrics(FakeApp(), FakeWriter(dead_lettered=3, dead_letters=1)))
        assert value(samples, "fairline_cdrs_dead_lettered_total") == 3
        assert value(samples, "fairline_cdr_dead_letters") == 1


class TestStatusPort:
    def test_default_then_environment_then_option(self) -> None:
        assert status_port(None, {}) == DEFAULT_STATUS_PORT
        assert status_port(None, {"FAIRLINE_STATUS_PORT": "9100"}) == 9100
        assert status_port("9200", {"FAIRLINE_STATUS_PORT": "9100"}) == 9200

    def test_zero_serves_nothing(self) -> None:
        assert status_port("0", {}) is None
        assert status_port(None, {"FAIRLINE_STATUS_PORT": "0"}) is None

    @pytest.mark.parametrize("raw", ["", "http", "-1", "65536", "80.5", "٣"])
    def test_anything_but_a_port_number_is_a_config_error_naming_the_setting(self, raw: str) -> None:
        with pytest.raises(ConfigError, match="FAIRLINE_STATUS_PORT"):
            status_port(raw, {})


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeApp, FakeWriter, str]]:
    """A status server on an ephemeral loopback port over fakes the test may change."""
    app, writer = FakeApp(), FakeWriter()
    async with StatusServer(app, writer, port=0) as server:
        assert server.address is not None
        host, port = server.address
        yield app, writer, f"http://{host}:{port}"


class TestServer:
    async def test_healthz_and_metrics_over_http(self, served: tuple[FakeApp, FakeWriter, str]) -> None:
        app, writer, base = served
        writer.written = 9
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert (resp.status, resp.content_type) == (200, "application/json")
                assert (await resp.json())["status"] == "ok"
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                assert value(parse(await resp.text()), "fairline_cdrs_written_total") == 9

    async def test_healthz_turns_503_when_ari_drops_and_back_when_it_returns(
        self, served: tuple[FakeApp, FakeWriter, str]
    ) -> None:
        app, _, base = served
        async with aiohttp.ClientSession() as http:
            app.ari_connected = False
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 503
                assert json.loads(await resp.text())["ari_connected"] is False
            app.ari_connected = True
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200

    async def test_other_paths_are_404_and_other_methods_405(self, served: tuple[FakeApp, FakeWriter, str]) -> None:
        _, _, base = served
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/metrics/", "/health", "/../etc/passwd", "/healthz/x"):
                async with http.get(base + path) as resp:
                    assert resp.status == 404, path
            for method in ("POST", "PUT", "DELETE"):
                async with http.request(method, f"{base}/healthz") as resp:
                    assert resp.status == 405, method

    async def test_listens_on_loopback_only_and_stops_listening_on_exit(self) -> None:
        async with StatusServer(FakeApp(), FakeWriter(), port=0) as server:
            assert server.address is not None
            host, port = server.address
            assert host == "127.0.0.1"
        assert server.address is None
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    async def test_a_taken_port_is_logged_and_nothing_stops(self) -> None:
        """Calls matter more than their metrics: fairline goes on without the status server."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with capture_logs() as logs:
                async with StatusServer(FakeApp(), FakeWriter(), port=port) as server:
                    assert server.address is None
        [error] = [e for e in logs if e["event"] == "status.not_listening"]
        assert (error["port"], error["log_level"]) == (port, "error")

    async def test_port_none_serves_nothing(self) -> None:
        async with StatusServer(FakeApp(), FakeWriter(), port=None) as server:
            assert server.address is None
