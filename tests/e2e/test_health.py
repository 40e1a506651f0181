"""/healthz and /metrics of the running `fairline run`, on the port the stack gives it (FAIRLINE_STATUS_PORT).

Needs `fairline run` to start the status server (ari_app/health.py StatusServer) next to the app.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import LiveStack, poll
from tests.e2e.test_reload import fairline
from tests.unit.test_health import parse, value

pytestmark = pytest.mark.e2e

CONFIGURED = "+31201234567"


def get(live: LiveStack, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{live.stack.ports.status}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metrics(live: LiveStack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = get(live, "/metrics")
    assert status == 200
    return parse(text)


def test_healthz_is_ok_while_fairline_is_connected_to_ari_and_the_database(live: LiveStack) -> None:
    status, text = get(live, "/healthz")
    body = json.loads(text)
    assert (status, body["status"], body["ari_connected"], body["database"]) == (200, "ok", True, "up")
    assert live.stack.database_url not in text and "postgresql://" not in text


def test_metrics_count_an_answered_call_and_its_cdr(live: LiveStack) -> None:
    before = metrics(live)
    assert value(before, "fairline_ari_connected") == 1
    result = live.call(CONFIGURED, "uac_answered.xml", caller="+31612345678")
    assert result.returncode == 0, result.stderr
    live.wait_cdrs(1)
    written = "fairline_cdrs_written_total"
    assert poll(lambda: value(metrics(live), written) >= value(before, written) + 1)
    after = metrics(live)
    assert value(after, "fairline_calls_in_progress") == 0
    assert value(after, "fairline_cdr_write_latency_seconds_count") > value(before, "fairline_cdr_write_latency_seconds_count")
    assert value(after, "fairline_cdr_spool_depth") == 0
    # Where the new call's wait before routing went: Asterisk's part and fairline's, one each (issue 15).
    for part in ("asterisk", "event"):
        name = f"fairline_call_start_{part}_delay_seconds"
        assert value(after, f"{name}_count") == value(before, f"{name}_count") + 1
        assert value(after, f"{name}_bucket", le="0.1") == value(after, f"{name}_count")  # an idle stack: no delay


def test_the_status_port_answers_on_127_0_0_1_only(live: LiveStack) -> None:
    with socket.create_connection(("127.0.0.1", live.stack.ports.status), timeout=2):
        pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", live.stack.ports.status), timeout=2).close()


def test_metrics_show_the_event_loops_lag_while_fairline_runs(live: LiveStack) -> None:
    """The lag of fairline's own loop, measured in production, beside the call figures (issue 15)."""
    name = "fairline_event_loop_lag_seconds"
    first = value(metrics(live), f"{name}_count")
    assert poll(lambda: value(metrics(live), f"{name}_count") > first)  # ticking, 20 times a second
    shown = metrics(live)
    assert value(shown, f"{name}_bucket", le="+Inf") == value(shown, f"{name}_count")
    assert value(shown, "fairline_event_loop_stalls_total") >= 0


def test_metrics_and_fairline_queues_name_the_node_that_holds_the_queues(live: LiveStack) -> None:
    """Several nodes (issue 20): each fairline says which node's Asterisk holds its queues' callers, by
    Asterisk's systemname, the prefix of every call id (the CDRs' `node`)."""
    node = live.stack.system_name
    assert value(metrics(live), "fairline_queue_waiting_callers", queue="e2e-answer", node=node) == 0
    shown = fairline("queues", "--spool-dir", str(live.stack.state_dir / "spool"))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"node {node}: ")
    as_json = fairline("queues", "--json", "--spool-dir", str(live.stack.state_dir / "spool"))
    assert json.loads(as_json.stdout)["node"] == node
