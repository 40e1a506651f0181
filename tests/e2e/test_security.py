"""The doors an attacker of a PBX tries first, checked on the running stack (issue 7, Security).

Loopback-only listeners, SIP only from the carrier's address, no way from crafted input
to Dial() or to a context the carrier must not reach, private spool, no secret in any log.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import pwd
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from ari_app.ami.session import AmiSession
from ari_app.errors import AmiRefused
from ari_app.settings import ami_from_arguments
from tests.e2e.conftest import SCENARIOS, LiveStack, poll, stackmod
from tests.e2e.sipp import place_calls, sipp_ports

pytestmark = pytest.mark.e2e

CONFIGURED = "+31201234567"  # announcement only (hello-world)
ROUTED = "+31201230006"  # rings +31201230925, which answers and hangs up after 2 s
ROUTED_DIAL = "PJSIP/+31201230925@carrier-out,5"
ELSEWHERE = "127.0.0.2"  # on lo like 127.0.0.1, but not the carrier's address (FAIRLINE_CARRIER_IN_MATCH)


# ---------------------------------------------------------------- helpers


class Sock(NamedTuple):
    proto: str  # tcp / udp
    address: str
    port: int
    listening: bool  # TCP LISTEN, or a UDP socket not connected to a peer (it takes datagrams from anyone)


def sockets_of(pid: int) -> list[Sock]:
    """The sockets process `pid` holds, read from /proc (no ss or lsof needed)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            local_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(local_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            address = socket.inet_ntop(socket.AF_INET6 if len(packed) == 16 else socket.AF_INET, packed)
            state, remote_port = fields[3], int(fields[2].split(":")[1], 16)
            listening = state == "0A" if table.startswith("tcp") else remote_port == 0
            found.append(Sock(table[:3], address, int(port_hex, 16), listening))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def scenario(live: LiveStack, final: int, *, withheld: bool = False) -> Path:
    """A caller that expects the call refused with SIP `final` (after optional ringing or early media)."""
    text = (SCENARIOS / "uac_unanswered.xml").read_text().replace("[final]", str(final))
    if withheld:  # no user part in From: no caller id at all
        text = text.replace("sip:[caller]@", "sip:")
    path = live.stack.state_dir / f"uac_refused_{final}{'_withheld' if withheld else ''}.xml"
    path.write_text(text)
    return path


def sipp(live: LiveStack, did: str, scenario_path: Path, *, source: str = "127.0.0.1",
         caller: str = "+31612345678", timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """One call from `source` (the address sipp binds to) into Asterisk's SIP port."""
    return place_calls(live.stack, did, scenario_path, source=source, caller=caller, timeout=timeout)


def messages_log(live: LiveStack) -> Path:
    """Asterisk's own log file (dialplan execution at verbose 3, security notices)."""
    return live.stack.asterisk_dir / "log" / "messages.log"


def asterisk_log_since(live: LiveStack, offset: int) -> str:
    return messages_log(live).read_bytes()[offset:].decode(errors="replace")


def calls_processed(live: LiveStack) -> int:
    """Asterisk's count of channels that ever ran the dialplan."""
    out = live.stack.asterisk_rx("core show channels count")
    m = re.search(r"(\d+) calls? processed", out)
    assert m, out
    return int(m.group(1))


def fairline_saw_a_call(live: LiveStack) -> bool:
    return any(e.get("event") in ("call.started", "ari.event") for e in live.logs())


# ---------------------------------------------------------------- listening sockets


def test_asterisk_fairline_and_postgresql_listen_on_loopback_only_even_during_a_call(live: LiveStack) -> None:
    s = live.stack
    assert s.asterisk is not None and s.fairline is not None
    before = {k for k in sockets_of(s.asterisk.pid) if k.listening and not is_loopback(k.address)}
    sip, media = sipp_ports()
    call = subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "uac_answered.xml"), "-s", ROUTED, "-key", "caller",
                             "+31612345678", "-i", "127.0.0.1", "-p", str(sip),
                             "-mp", str(media), "-m", "1", "-nostdin", "-timeout", "20s",
                             f"127.0.0.1:{s.ports.sip}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=s.state_dir)
    try:
        # Both legs up: each has its RTP socket.
        assert poll(lambda: sum(s.ports.rtp_start <= k.port <= s.ports.rtp_end
                                for k in sockets_of(s.asterisk.pid) if k.proto == "udp") >= 2, timeout=10)
        asterisk = sockets_of(s.asterisk.pid)
        fairline = sockets_of(s.fairline.pid)
        postmaster = int((s.pg_data / "postmaster.pid").read_text().split()[0])
        postgres = sockets_of(postmaster)
    finally:
        assert call.wait(timeout=30) == 0

    listening = [k for k in asterisk if k.listening]
    assert {(k.proto, k.address, k.port) for k in listening if k.proto == "tcp"} == {
        ("tcp", "127.0.0.1", s.ports.http), ("tcp", "127.0.0.1", s.ports.ami)}
    assert ("udp", "127.0.0.1", s.ports.sip) in {(k.proto, k.address, k.port) for k in listening}
    rtp = [k for k in asterisk if k.proto == "udp" and s.ports.rtp_start <= k.port <= s.ports.rtp_end]
    assert rtp and all(k.address == "127.0.0.1" for k in rtp)
    # The only sockets on a wildcard address are the pair (IPv4, IPv6) PJSIP's DNS resolver opens
    # at start on ephemeral ports to read its answers: no service, none opened per call.
    wildcard = {k for k in listening if not is_loopback(k.address)}
    assert wildcard == before
    assert len(wildcard) <= 2 and all(k.proto == "udp" and k.address in ("0.0.0.0", "::") for k in wildcard)
    assert not {k.port for k in wildcard} & {s.ports.sip, s.ports.http, s.ports.ami}
    assert not [k for k in wildcard if s.ports.rtp_start <= k.port <= s.ports.rtp_end]
    # fairline's /healthz and /metrics port: loopback only, like everything else.
    assert [k for k in fairline if k.listening and not is_loopback(k.address)] == []
    assert postgres and [k for k in postgres if k.listening and not is_loopback(k.address)] == []


def host_addresses() -> list[str]:
    """This machine's addresses that are not loopback (maybe none, in a sandbox)."""
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    found = re.findall(r"\binet6? ([0-9a-f.:]+)/", out)
    return [a for a in found if not is_loopback(a) and not ipaddress.ip_address(a).is_link_local]


def test_ari_and_ami_refuse_connections_on_any_other_address(live: LiveStack) -> None:
    s = live.stack
    with socket.create_connection(("127.0.0.1", s.ports.http), timeout=2):
        pass  # the check below means something: the port is open on 127.0.0.1
    for address in [ELSEWHERE, *host_addresses()]:
        for port in (s.ports.http, s.ports.ami):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                with pytest.raises(OSError):  # refused (or unreachable): nobody listens there
                    sock.connect((address, port))


# ---------------------------------------------------------------- SIP from elsewhere


@pytest.mark.parametrize("caller", ["+31612349901", "carrier-in", "anonymous"],
                         ids=["ordinary-caller", "the-carrier-endpoints-name", "anonymous"])
def test_sip_from_an_address_that_is_not_the_carriers_is_refused_before_any_channel(
        live: LiveStack, caller: str) -> None:
    """401 from PJSIP itself: no endpoint matches, so no channel, no dialplan, no Stasis, no CDR.

    `carrier-in` as the From user is the one that mattered: PJSIP also identifies endpoints
    by that name by default, and the carrier endpoint has no password to ask for.
    """
    offset = messages_log(live).stat().st_size
    processed = calls_processed(live)

    refused = sipp(live, CONFIGURED, scenario(live, 401), source=ELSEWHERE, caller=caller)

    assert refused.returncode == 0, refused.stderr
    assert calls_processed(live) == processed
    log = asterisk_log_since(live, offset)
    assert re.search(rf"Request 'INVITE' from '[^']*' failed for '{re.escape(ELSEWHERE)}:\d+'.*"
                     r"No matching endpoint found", log), log
    assert "Stasis(" not in log
    assert live.cdrs() == [] and not fairline_saw_a_call(live)

    # The same call from the carrier's address is served.
    served = sipp(live, CONFIGURED, SCENARIOS / "uac_answered.xml", source="127.0.0.1", caller=caller)
    assert served.returncode == 0, served.stderr
    [cdr] = live.wait_cdrs(1)
    assert cdr["did"] == CONFIGURED and cdr["disposition"] == "answered"


def test_the_outbound_trunks_name_from_elsewhere_lands_where_everything_is_refused(live: LiveStack) -> None:
    """carrier-out is still matched by name (it never takes calls); its context only hangs up (403)."""
    refused = sipp(live, ROUTED, scenario(live, 403), source=ELSEWHERE, caller="carrier-out")

    assert refused.returncode == 0, refused.stderr
    assert live.cdrs() == [] and not fairline_saw_a_call(live)


# ---------------------------------------------------------------- crafted input and Dial()


# %3A is ':' once Asterisk has decoded the Request-URI: in a dialplan label it separates
# the GotoIf branches, so "+1:CONTEXT,EXTEN" named a jump target of the caller's choosing.
JUMPS = {
    "+1%3Afairline-dial,s": "fairline-dial",
    # Asterisk's own helper context: with no caller id, answered by its 'beep'; its 'hook' runs ChanSpy.
    "+1%3A__func_periodic_hook_context__,beep": "__func_periodic_hook_context__",
}


def test_a_crafted_did_cannot_jump_out_of_the_inbound_context_while_fairline_is_down(live: LiveStack) -> None:
    s = live.stack
    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=10) == 0
    offset = messages_log(live).stat().st_size
    try:
        for did in JUMPS:
            result = sipp(live, did, scenario(live, 503, withheld=True))
            assert result.returncode == 0, f"{did}: {result.stderr}"
        # A configured number still gets its fallback: the first target answers.
        assert sipp(live, ROUTED, SCENARIOS / "uac_answered.xml").returncode == 0
    finally:
        s.start_fairline()

    log = asterisk_log_since(live, offset)
    assert "fairline is not connected: fallback for +1:fairline-dial,s" in log  # the DID arrived decoded
    for context in JUMPS.values():
        assert f"@{context}:" not in log, context
    assert f"Executing [{ROUTED}@fairline-fallback:1] Dial(" in log


def test_a_crafted_did_or_caller_id_never_reaches_the_arguments_of_dial(live: LiveStack) -> None:
    """fairline builds FAIRLINE_DIAL from the configuration only; anything else it does not serve."""
    offset = messages_log(live).stat().st_size
    for did in [*JUMPS, "+319001234567", "+31201234567%2CPJSIP%2F+319001234567"]:
        result = sipp(live, did, SCENARIOS / "uac_rejected.xml")  # not in service: early media, 404
        assert result.returncode == 0, f"{did}: {result.stderr}"
    crafted_caller = "+31612345678&PJSIP/+319001234567"
    result = sipp(live, ROUTED, SCENARIOS / "uac_answered.xml", caller=crafted_caller)
    assert result.returncode == 0, result.stderr

    rows = live.wait_cdrs(len(JUMPS) + 3)
    assert sorted(r["disposition"] for r in rows) == ["answered"] + ["unallocated"] * (len(JUMPS) + 2)
    assert [e["dial"] for e in live.logs() if e.get("event") == "call.dialing"] == [ROUTED_DIAL]
    called = re.findall(r"app_dial\.c: Called (\S+)", asterisk_log_since(live, offset))
    assert called == [ROUTED_DIAL.split(",")[0]]


def test_the_carrier_contexts_cannot_reach_fairline_dial_by_include_or_goto(live: LiveStack) -> None:
    """Only fairline sends a channel into fairline-dial (POST /channels/{id}/continue)."""
    for context in ("from-carrier", "from-carrier-out"):
        shown = live.stack.asterisk_rx(f"dialplan show {context}")
        assert "Include =>" not in shown and "fairline-dial" not in shown, shown
    endpoints = live.stack.asterisk_rx("pjsip show endpoints")
    assert re.findall(r"^\s*Endpoint:\s+([^<\s]\S*)", endpoints, re.M) == ["carrier-in", "carrier-out"]
    for endpoint, context in (("carrier-in", "from-carrier"), ("carrier-out", "from-carrier-out")):
        details = live.stack.asterisk_rx(f"pjsip show endpoint {endpoint}")
        assert re.search(rf"^\s*context\s*:\s*{context}\s*$", details, re.M), details
    assert re.search(r"^\s*identify_by\s*:\s*ip\s*$", live.stack.asterisk_rx("pjsip show endpoint carrier-in"), re.M)


# ---------------------------------------------------------------- files


def test_spool_and_instance_directories_are_for_their_owner_only(live: LiveStack) -> None:
    s = live.stack
    assert live.call(CONFIGURED, "uac_answered.xml").returncode == 0
    live.wait_cdrs(1)
    spool = s.state_dir / "spool"
    assert spool.stat().st_mode & 0o077 == 0  # nobody else may list it or reach what is inside
    assert (spool / "cdrs.jsonl").stat().st_mode & 0o077 == 0
    assert s.state_dir.stat().st_mode & 0o077 == 0  # logs and secrets
    # Asterisk's spool (recordings), logs and secrets: its own group may enter, nobody else.
    assert s.asterisk_dir.stat().st_mode & 0o007 == 0
    assert s.asterisk_dir.stat().st_gid == stackmod.asterisk_user()[1]
    assert s.secrets_file.stat().st_mode & 0o077 == 0


# ---------------------------------------------------------------- Asterisk's own user


def test_asterisk_runs_as_its_own_user_not_root(live_stack: LiveStack) -> None:
    s = live_stack.stack
    assert s.asterisk is not None
    uid, gid = stackmod.asterisk_user()
    assert uid != 0 and gid != 0
    assert os.readlink(f"/proc/{s.asterisk.pid}/exe").endswith("/usr/sbin/asterisk")
    for task in Path(f"/proc/{s.asterisk.pid}/task").iterdir():  # every thread: real, effective, saved, fs ids
        ids = dict(re.findall(r"^(Uid|Gid|Groups):\s*(.*?)\s*$", (task / "status").read_text(), re.M))
        assert (ids["Uid"].split(), ids["Gid"].split(), ids["Groups"].split()) == (
            [str(uid)] * 4, [str(gid)] * 4, [str(gid)]), task
    # Not the uid of anything else on the host: the root filesystem's own `asterisk` is postgres's uid here.
    assert pwd.getpwuid(uid).pw_name == stackmod.ASTERISK_USER


async def test_asterisk_cannot_rewrite_its_own_configuration_over_ami(live_stack: LiveStack) -> None:
    """AMI's class config allows UpdateConfig (decision 0022); Asterisk's user may not write its etc (0024)."""
    s = live_stack.stack
    manager_conf = s.asterisk_dir / "etc" / "manager.conf"
    before = manager_conf.read_bytes()
    env = s.fairline_env()
    ami = ami_from_arguments(ami_host=env["FAIRLINE_AMI_HOST"], ami_port=env["FAIRLINE_AMI_PORT"],
                             secrets=env["FAIRLINE_SECRETS"], asterisk_fallback=env["FAIRLINE_ASTERISK_FALLBACK"])
    async with AmiSession(ami) as session:
        # Files that exist: Asterisk refuses a new file by itself ("File requires escalated privileges").
        for target in ("manager.conf", "fallback/fairline-fallback.conf"):
            with pytest.raises(AmiRefused) as refused:
                await session.action("UpdateConfig", SrcFilename="manager.conf", DstFilename=target, Reload="no",
                                     **{"Action-000000": "Append", "Cat-000000": "general",
                                        "Var-000000": "displayconnects", "Value-000000": "yes"})
            assert "Save of config failed" in refused.value.message, (target, refused.value.message)
    assert manager_conf.read_bytes() == before


# ---------------------------------------------------------------- secrets in logs


def test_no_secret_of_the_instance_appears_in_any_log(live: LiveStack) -> None:
    """After calls, a fairline restart and an Asterisk restart (the paths that log URLs and errors)."""
    s = live.stack
    assert live.call(CONFIGURED, "uac_answered.xml").returncode == 0
    s.stop_asterisk()
    assert poll(lambda: any(e.get("event") in ("ari.disconnected", "ari.unreachable") for e in live.logs()))
    s.start_asterisk()
    assert poll(s.fairline_connected, timeout=20)
    assert live.call(CONFIGURED, "uac_answered.xml").returncode == 0
    live.wait_cdrs(2)

    values = s.secrets()
    secrets = {k: v for k, v in values.items() if k.endswith(("_PASSWORD", "_SECRET"))}
    assert set(secrets) == {"ARI_PASSWORD", "AMI_SECRET", "PG_PASSWORD"}
    basic = base64.b64encode(f"{values['ARI_USER']}:{values['ARI_PASSWORD']}".encode()).decode()
    needles = {**secrets, "ARI basic auth": basic}
    logs = [s.log("fairline"), s.log("asterisk"), messages_log(live), s.pg_dir / "postgres.log"]
    for log in logs:
        text = log.read_text(errors="replace")
        assert text, f"{log} is empty: nothing was checked"
        leaked = [name for name, value in needles.items() if value in text]
        assert leaked == [], f"{log} contains {leaked}"
    assert "ari.connected" in s.log("fairline").read_text()
