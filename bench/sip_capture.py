"""Exact SIP set-up times from a packet capture: tcpdump on the loopback, parsed here.

sipp's own response-time trace rounds to its 4 ms timer steps on this machine; the
kernel's capture timestamps are microseconds. One capture per benchmark run, limited by
a kernel filter to the caller's leg (Asterisk's SIP port <-> the sipp caller's port), so
the legs Asterisk places to the targets and all media stay out of it.

Per call (matched by Call-ID): when the caller's first INVITE went out, when the first
ringing (180/183) and the final answer to it came back, and that answer's code.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402

_LINK_ETHERNET = 1  # what Linux reports for "lo"
_LINK_LINUX_SLL = 113
_LINK_LINUX_SLL2 = 276


def ensure_tcpdump() -> str:
    """The tcpdump binary; installed from Debian's package (as stack.py installs the stack's) when missing."""
    found = shutil.which("tcpdump") or (Path("/usr/bin/tcpdump").exists() and "/usr/bin/tcpdump") or None
    if found:
        return str(found)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise stackmod.StackError("the call-path benchmark needs tcpdump: apt-get install tcpdump, then run again")
    stackmod.say("installing tcpdump (the call-path benchmark times SIP from a packet capture)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    stackmod.run_quiet(["apt-get", "update", "-qq"], env=env, what="apt-get update")
    stackmod.run_quiet(["apt-get", "install", "-y", "-qq", "tcpdump"], env=env, what="apt-get install tcpdump")
    found = shutil.which("tcpdump") or "/usr/bin/tcpdump"
    if not Path(found).exists():
        raise stackmod.StackError("apt-get ran but tcpdump is still missing")
    return found


@dataclasses.dataclass(slots=True)
class CallTiming:
    invite_at: float
    trying_at: float | None = None  # 100 Trying: Asterisk's SIP stack has taken the INVITE
    ringing_at: float | None = None  # first 180/183
    final_at: float | None = None
    final_code: int | None = None

    @property
    def trying_ms(self) -> float | None:
        """INVITE -> 100 Trying: how far behind Asterisk itself is, before any dialplan or app runs."""
        return (self.trying_at - self.invite_at) * 1000 if self.trying_at is not None else None

    @property
    def answer_ms(self) -> float | None:
        """INVITE -> 200 OK, for an answered call."""
        if self.final_code is not None and 200 <= self.final_code < 300 and self.final_at is not None:
            return (self.final_at - self.invite_at) * 1000
        return None

    @property
    def ring_ms(self) -> float | None:
        """INVITE -> first ringing tone or answer, whichever came first: how long the caller heard nothing."""
        marks = [t for t in (self.ringing_at, self.final_at if self.final_code and self.final_code < 300 else None)
                 if t is not None]
        return (min(marks) - self.invite_at) * 1000 if marks else None


class Capture:
    """tcpdump of one UDP conversation on lo while in `with`; `.calls()` afterwards."""

    def __init__(self, tcpdump: str, path: Path, sip_port: int, peer_port: int) -> None:
        self.tcpdump = tcpdump
        self.path = path
        self.sip_port = sip_port
        self.peer_port = peer_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.dropped = 0
        self.stderr = ""

    def __enter__(self) -> "Capture":
        err = self.path.with_suffix(".err")
        self._err = open(err, "wb")
        # -Z root: write where the benchmark's state lives (tcpdump would drop to its own user).
        self.proc = subprocess.Popen(
            [self.tcpdump, "-i", "lo", "-n", "-s", "0", "-B", "16384", "-Z", "root", "-w", str(self.path),
             f"udp and port {self.sip_port} and port {self.peer_port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while b"listening on" not in err.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise stackmod.StackError(f"tcpdump did not start: {err.read_text(errors='replace').strip()}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.2)  # the last packets are in the kernel's buffer
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._err.close()
        self.stderr = self.path.with_suffix(".err").read_text(errors="replace")
        for line in self.stderr.splitlines():
            if "dropped by kernel" in line:
                self.dropped = int(line.split()[0])

    def calls(self) -> dict[str, CallTiming]:
        return sip_calls(self.path, self.sip_port)


def packets(path: Path) -> list[tuple[float, int, int, bytes]]:
    """(time, source port, destination port, UDP payload) of each IPv4/UDP packet in a pcap file."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    link = struct.unpack(endian + "I", data[20:24])[0]
    link_header = {_LINK_ETHERNET: 14, _LINK_LINUX_SLL: 16, _LINK_LINUX_SLL2: 20}.get(link)
    if link_header is None:
        raise ValueError(f"{path}: link type {link} not handled")
    record = struct.Struct(endian + "IIII")
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, sub, caplen, _ = record.unpack_from(data, pos)
        frame = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        ip = frame[link_header:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:  # IPv4, UDP
            continue
        udp = ip[(ip[0] & 0x0F) * 4:]
        sport, dport = struct.unpack_from("!HH", udp, 0)
        out.append((sec + sub * frac, sport, dport, udp[8:]))
    return out


def _header(lines: list[bytes], *names: bytes) -> bytes | None:
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in names:
            return value.strip()
    return None


def sip_calls(path: Path, sip_port: int) -> dict[str, CallTiming]:
    """Each call the caller placed towards `sip_port`, by Call-ID, with its 100 Trying, first ringing and final answer."""
    calls: dict[str, CallTiming] = {}
    for at, sport, dport, payload in packets(path):
        head = payload.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if not head or not head[0]:
            continue
        call_id = _header(head[1:], b"call-id", b"i")
        if call_id is None:
            continue
        key = call_id.decode("ascii", "replace")
        first = head[0]
        if first.startswith(b"INVITE ") and dport == sip_port:
            if key not in calls:  # a retransmission keeps the first send's time
                calls[key] = CallTiming(at)
        elif first.startswith(b"SIP/2.0 ") and sport == sip_port:
            call = calls.get(key)
            cseq = _header(head[1:], b"cseq")
            if call is None or cseq is None or not cseq.upper().endswith(b"INVITE"):
                continue
            code = int(first.split()[1])
            if code == 100 and call.trying_at is None:
                call.trying_at = at
            elif code in (180, 183) and call.ringing_at is None:
                call.ringing_at = at
            elif code >= 200 and call.final_at is None:
                call.final_at, call.final_code = at, code
    return calls
