"""What every test process shares: under `pytest -n N` (pytest-xdist, how `make test` runs), each
worker gets its own slice of sipp's ports, so two workers never check and bind the same port at once.
Each worker also runs its own stack (tests/e2e/conftest.py: the instance is named after the worker)."""

from __future__ import annotations

import os

SIPP_PORTS = (6000, 8000)  # asterisk-docker/stack.py's whole range
BLOCK = 8


def worker_sipp_ports(worker: str, count: int) -> str:
    """FAIRLINE_SIPP_PORTS for worker `gwK` of `count`: its own whole blocks of the range."""
    index = int(worker.removeprefix("gw"))
    size = (SIPP_PORTS[1] - SIPP_PORTS[0]) // count // BLOCK * BLOCK
    first = SIPP_PORTS[0] + index * size
    return f"{first}-{first + size - 1}"


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "FAIRLINE_SIPP_PORTS" not in os.environ:
    os.environ["FAIRLINE_SIPP_PORTS"] = worker_sipp_ports(_worker, int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
