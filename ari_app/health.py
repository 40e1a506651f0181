"""Health and Prometheus metrics on a loopback port: `GET /healthz` and `GET /metrics`.

Read-only views of the running App and CdrWriter; nothing here changes call handling,
and a status server that cannot listen is logged, never a reason to stop routing calls.

/healthz answers 200 while calls are handled and their CDRs are safe, 503 otherwise:

- ok (200): the ARI events websocket is up and CDRs reach the database.
- degraded (200): PostgreSQL is down and CDRs are spooled to disk, or CDRs wait in the
  dead-letter file for a person. Calls still flow and no CDR is lost, and restarting
  fairline would fix neither (it would only drop fairline out of the call path
  meanwhile), so a supervisor must not act on it.
- down (503): the ARI websocket is not connected (new calls take the dialplan fallback),
  or the CDR writer is failing (CDRs held in memory only, or the writer stopped).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sized
from datetime import datetime
from types import TracebackType
from typing import Protocol

import structlog
from aiohttp import web

from ari_app.core.admission import Admission
from ari_app.errors import ConfigError
from ari_app.core.queueing import QueueState
from ari_app.settings import DEFAULT_STATUS_PORT
from plumbing.metrics import LatencyHistogram

HOST = "127.0.0.1"  # loopback only (docs/operations.md, Security); scrape through a local agent or proxy
PORT_SETTING = "--status-port / FAIRLINE_STATUS_PORT"
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = structlog.get_logger("fairline.health")


# ---- what the status server reads (App, Queues, Config and CdrWriter fit these)

class QueuesConfigView(Protocol):
    @property
    def queues(self) -> Mapping[str, object]: ...


class QueuesView(Protocol):
    @property
    def states(self) -> Mapping[str, QueueState]: ...
    @property
    def config(self) -> QueuesConfigView: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def node(self) -> str: ...


class AppView(Protocol):
    @property
    def calls(self) -> Sized: ...
    @property
    def queues(self) -> QueuesView: ...
    @property
    def ari_connected(self) -> bool: ...
    @property
    def ari_reconnects(self) -> int: ...
    @property
    def calls_shed(self) -> int: ...
    @property
    def calls_routed(self) -> int: ...
    @property
    def admission(self) -> Admission: ...
    @property
    def config_origin(self) -> ConfigOriginView: ...
    @property
    def asterisk_delay(self) -> LatencyHistogram: ...
    @property
    def event_delay(self) -> LatencyHistogram: ...


class ConfigOriginView(Protocol):
    @property
    def source(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def id(self) -> int | None: ...


class CdrWriterView(Protocol):
    @property
    def written(self) -> int: ...
    @property
    def spooled(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def database_down(self) -> bool: ...
    @property
    def spool_depth(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def dead_letters(self) -> int: ...
    @property
    def dead_letter_path(self) -> str: ...
    @property
    def failing(self) -> str | None: ...
    @property
    def write_latency(self) -> LatencyHistogram: ...


class LoopView(Protocol):
    @property
    def lag(self) -> LatencyHistogram: ...
    @property
    def stalls(self) -> int: ...
    @property
    def lag_max(self) -> float: ...


# ---- the port

def status_port(option: str | None, environ: Mapping[str, str]) -> int | None:
    """The port from --status-port, else $FAIRLINE_STATUS_PORT, else the default; None when 0 (disabled)."""
    raw = option if option is not None else environ.get("FAIRLINE_STATUS_PORT", str(DEFAULT_STATUS_PORT))
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or int(raw) > 65535:
        raise ConfigError([f"{PORT_SETTING}: {raw[:20]!r}: expected a port number 1-65535, or 0 to serve no status"])
    return int(raw) or None


# ---- /healthz

def health(app: AppView, writer: CdrWriterView) -> tuple[int, dict[str, object]]:
    """The HTTP status and JSON body of /healthz (see the module docstring for when each)."""
    problems: list[str] = []
    if not app.ari_connected:
        problems.append("ARI events websocket not connected: new calls take the dialplan fallback")
    failing = writer.failing
    if failing is not None:
        problems.append(failing)
    down = bool(problems)
    if writer.database_down:
        problems.append("database unreachable: CDRs are spooled to disk and replayed when it answers")
    if dead := writer.dead_letters:
        problems.append(f"{dead} CDR(s) in the dead-letter file {writer.dead_letter_path}: PostgreSQL refused each "
                        "again and again while it took others; a person must look (docs/operations.md)")
    status = "down" if down else "degraded" if problems else "ok"
    body: dict[str, object] = {
        "status": status,
        "ari_connected": app.ari_connected,
        "database": "down" if writer.database_down else "up",
        "calls_in_progress": len(app.calls),
        "cdr_spool_depth": writer.spool_depth,
        "cdr_dead_letters": writer.dead_letters,
        "config": {"source": app.config_origin.source, "version": app.config_origin.version},
        "problems": problems,
    }
    return (503 if status == "down" else 200), body


# ---- /metrics

def render_metrics(app: AppView, writer: CdrWriterView, loop: LoopView | None = None) -> str:
    """Every metric in Prometheus' text exposition format (version 0.0.4)."""
    return "".join(_metrics(app, writer, loop))


def _metrics(app: AppView, writer: CdrWriterView, loop: LoopView | None) -> Iterator[str]:
    yield from _one("fairline_calls_in_progress", "gauge", "Calls fairline is handling now.", len(app.calls))

    queues = app.queues
    now = queues.clock()
    names = sorted(set(queues.config.queues) | set(queues.states))
    waiting: list[tuple[dict[str, str], float]] = []
    longest: list[tuple[dict[str, str], float]] = []
    for name in names:
        callers = queues.states[name].waiting if name in queues.states else ()
        labels = {"queue": name, "node": queues.node}  # which node holds the queue (several nodes: issue 20)
        waiting.append((labels, len(callers)))
        longest.append((labels, max((max(0.0, c.waited(now)) for c in callers), default=0.0)))
    yield from _family("fairline_queue_waiting_callers", "gauge", "Callers waiting in the queue now.", waiting)
    yield from _family("fairline_queue_longest_wait_seconds", "gauge",
                       "How long the longest-waiting caller in the queue has waited; 0 when none waits.", longest)

    yield from _one("fairline_ari_connected", "gauge", "1 while the ARI events websocket is connected.",
                    int(app.ari_connected))
    yield from _one("fairline_ari_reconnects_total", "counter",
                    "ARI events websocket connections after the first one.", app.ari_reconnects)
    yield from _one("fairline_calls_shed_total", "counter",
                    "New calls handed to the dialplan fallback because fairline's events were late (overload).",
                    app.calls_shed)
    yield from _one("fairline_calls_routed_total", "counter",
                    "Calls fairline took on: new calls routed, and calls adopted after a restart.", app.calls_routed)
    yield from _one("fairline_config_version", "gauge",
                    "Id of the stored configuration version in force (v12: 12); 0 when it came from a file. "
                    "Nodes that differ have not all applied the newest.", app.config_origin.id or 0)
    yield from _one("fairline_admitted_percent", "gauge",
                    "Share of new calls the dialplan lets into fairline; the others take the fallback (overload).",
                    app.admission.percent)

    yield from _one("fairline_cdr_database_up", "gauge",
                    "0 while the last CDR insert failed for a reason other than its rows.", int(not writer.database_down))
    yield from _one("fairline_cdr_spool_depth", "gauge",
                    "CDRs waiting in the on-disk spool for the database.", writer.spool_depth)
    yield from _one("fairline_cdrs_pending", "gauge",
                    "CDRs submitted and in memory only: neither in the database nor in the spool yet.", writer.pending)
    yield from _one("fairline_cdrs_written_total", "counter",
                    "CDRs put in the database, replays included, or found already there.", writer.written)
    yield from _one("fairline_cdrs_spooled_total", "counter", "CDRs appended to the spool.", writer.spooled)
    yield from _one("fairline_cdrs_rejected_total", "counter",
                    "CDRs the database refused as invalid, kept in the spool's rejected file.", writer.rejected)
    yield from _one("fairline_cdrs_dead_lettered_total", "counter",
                    "CDRs moved to the dead-letter file: refused on every try, for a reason outside their values, "
                    "while the database took others.", writer.dead_lettered)
    yield from _one("fairline_cdr_dead_letters", "gauge",
                    "CDRs in the dead-letter file now, waiting for a person; 0 once the file is moved away.",
                    writer.dead_letters)

    yield from _histogram("fairline_call_start_asterisk_delay_seconds",
                          "From a new call's channel being created to Asterisk sending its StasisStart: how far "
                          "behind Asterisk itself is (its dialplan and the app's event queue).", app.asterisk_delay)
    yield from _histogram("fairline_call_start_event_delay_seconds",
                          "From Asterisk sending a new call's StasisStart to fairline handling it: the events "
                          "websocket and fairline's own event loop.", app.event_delay)
    yield from _histogram("fairline_cdr_write_latency_seconds",
                          "Duration of each CDR insert the database completed (a batch, or one row).",
                          writer.write_latency)
    if loop is not None:
        yield from _histogram("fairline_event_loop_lag_seconds",
                              "How much later than asked the event loop woke a sleeping task: what every event "
                              "waited on top of its own work.", loop.lag)
        yield from _one("fairline_event_loop_lag_max_seconds", "gauge",
                        "The longest lag of the event loop in the last 10 to 20 seconds (scraped every 10 s "
                        "or more often, no stall goes unseen); exact, where the histogram gives bounds.",
                        loop.lag_max)
        yield from _one("fairline_event_loop_stalls_total", "counter",
                        "Times the event loop was held past the stall threshold (each logged with its stack).",
                        loop.stalls)


def _histogram(name: str, help_text: str, hist: LatencyHistogram) -> Iterator[str]:
    yield f"# HELP {name} {help_text}\n"
    yield f"# TYPE {name} histogram\n"
    for bound, count in hist.cumulative():
        yield _sample(f"{name}_bucket", {"le": _number(bound)}, count)
    yield _sample(f"{name}_sum", {}, hist.sum)
    yield _sample(f"{name}_count", {}, hist.count)


def _one(name: str, kind: str, help_text: str, value: float) -> Iterator[str]:
    return _family(name, kind, help_text, [({}, value)])


def _family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> Iterator[str]:
    yield f"# HELP {name} {help_text}\n"
    yield f"# TYPE {name} {kind}\n"
    for labels, value in samples:
        yield _sample(name, labels, value)


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}\n"
    inner = ",".join(f'{key}="{_escape(v)}"' for key, v in labels.items())
    return f"{name}{{{inner}}} {_number(value)}\n"


def _escape(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# ---- the server

class StatusServer:
    """Serves /healthz and /metrics on 127.0.0.1 while in `async with`; port None serves nothing, 0 any free port.

    A port that cannot be bound (taken, not permitted) is logged as an error and the
    program goes on: calls matter more than their metrics.
    """

    def __init__(self, app: AppView, writer: CdrWriterView, *, port: int | None,
                 loop: LoopView | None = None) -> None:
        self._app = app
        self._writer = writer
        self._loop = loop
        self._port = port
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None  # where it listens, once it does

    async def __aenter__(self) -> StatusServer:
        if self._port is None:
            return self
        web_app = web.Application()
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            log.error("status.not_listening", host=HOST, port=self._port, error=exc.strerror or str(exc),
                      hint=f"choose another port with {PORT_SETTING} (0: none); calls are not affected")
            return self
        self._runner = runner
        bound = runner.addresses  # the port the OS picked, when asked for port 0 (tests)
        self.address = (HOST, int(bound[0][1]) if bound else self._port)
        log.info("status.listening", host=HOST, port=self.address[1])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.address = None

    async def _healthz(self, request: web.Request) -> web.Response:
        status, body = health(self._app, self._writer)
        return web.Response(status=status, text=json.dumps(body) + "\n", content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render_metrics(self._app, self._writer, self._loop).encode(),
                            headers={"Content-Type": EXPOSITION_CONTENT_TYPE, "Cache-Control": "no-store"})
