"""The end-to-end tests' callers: real SIP calls placed with sipp into the stack's Asterisk, as the carrier would.

The phones the calls reach (sipp answering behind the carrier-out trunk) are part of the
stack itself (asterisk-docker/stack.py, `Stack.start_targets`): `make demo` and `make up` ring them too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from stack import sipp_ports  # asterisk-docker/stack.py, on sys.path by conftest

if TYPE_CHECKING:
    from stack import Stack

SCENARIOS = Path(__file__).resolve().parent / "scenarios"  # callers, and the phones they reach


def place_calls(stack: Stack, did: str, scenario: Path | str, *, caller: str = "+31612345678", calls: int = 1,
                rate: int = 10, timeout: float = 30, source: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
    """Place `calls` calls to `did` from `source` (the address sipp binds to) and wait until sipp ends."""
    sip, media = sipp_ports(source)
    return subprocess.run(
        ["sipp", "-sf", str(scenario), "-s", did, "-key", "caller", caller,
         "-i", source, "-p", str(sip), "-mp", str(media),
         "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", f"{timeout:.0f}s", "-timeout_error",
         f"127.0.0.1:{stack.ports.sip}"],
        capture_output=True, text=True, timeout=timeout + 15, cwd=stack.state_dir,
    )
