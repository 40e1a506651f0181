"""`fairline queues`: what the running fairline's queues look like now.

The running app rewrites `queues.json` in its spool directory after every change
(ari_app/queue_runtime.py); this command reads it and shows waits as of now.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ari_app.settings import DEFAULT_SPOOL_DIR
from plumbing.clock import utc_now

QUEUE_STATUS_FILE = "queues.json"

EXIT_OK = 0
EXIT_UNAVAILABLE = 3


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    queues = sub.add_parser("queues", help="the running fairline's queues: waiting callers, their wait, agents",
                            description="Show each queue's waiting callers (longest waiting first) with how long "
                                        "they have waited, and each agent's state. Reads the status the running "
                                        "fairline keeps in its spool directory.")
    queues.add_argument("--spool-dir", help="the running fairline's spool directory; "
                                            "default $FAIRLINE_SPOOL_DIR or ./spool")
    queues.add_argument("--json", action="store_true", help="the status as JSON, with waits in seconds")
    queues.set_defaults(fn=cmd_queues)


def cmd_queues(args: argparse.Namespace) -> int:
    path = Path(args.spool_dir or DEFAULT_SPOOL_DIR) / QUEUE_STATUS_FILE
    try:
        status = json.loads(path.read_text())
        pid = int(status["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"no queue status in {path}: {exc}; is fairline running with this spool directory?", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if not _alive(pid):
        print(f"fairline (pid {pid}) that wrote {path} is not running; its last status follows", file=sys.stderr)
    now = utc_now()
    queues = [_with_waits(q, now) for q in status.get("queues", [])]
    node = str(status.get("node") or "")  # a status written before nodes were named has none
    if args.json:
        print(json.dumps({"at": now.isoformat(), "node": node, "queues": queues}, indent=2))
    else:
        print(render(queues, node))
    return EXIT_OK


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _with_waits(queue: dict[str, Any], now: datetime) -> dict[str, Any]:
    waiting = [{**c, "waited_seconds": round((now - datetime.fromisoformat(c["entered_at"])).total_seconds(), 1)}
               for c in queue.get("waiting", [])]
    agents = []
    for a in queue.get("agents", []):
        until = a.get("until")
        left = round((datetime.fromisoformat(until) - now).total_seconds(), 1) if until else None
        agents.append({**a, **({"seconds_left": max(0.0, left)} if left is not None else {})})
    return {**queue, "waiting": waiting, "agents": agents}


def render(queues: list[dict[str, Any]], node: str = "") -> str:
    if not queues:
        return "no queues configured"
    lines: list[str] = [f"node {node}: the callers of these queues are held by this node's Asterisk"] if node else []
    for q in queues:
        owner = f" ({q['customer']})" if q.get("customer") else " (removed from the configuration)"
        lines.append(f"queue {q['name']}{owner}: {len(q['waiting'])} waiting, {q['strategy']}, "
                     f"wait cap {q['max_wait_seconds']} s")
        for i, c in enumerate(q["waiting"], 1):
            lines.append(f"  {i}. {c.get('caller') or 'withheld':<16} waiting {c['waited_seconds']:>5.1f} s   "
                         f"call {c['call_id']}")
        for a in q["agents"]:
            state = a["state"]
            if "call_id" in a:
                state += f" (call {a['call_id']})"
            if "seconds_left" in a:
                state += f", {a['seconds_left']:.1f} s left"
            if not a.get("in_config", True):
                state += "; removed from the queue"
            lines.append(f"  agent {a['agent']:<16} {state}")
    return "\n".join(lines)
