"""sipp's ports: a caller that cannot bind its video RTP socket fails the call it was meant to place.

sipp binds audio RTP at the media port and video RTP two above it, without trying another port;
a CI run failed with "Unable to bind video RTP socket (port=39708)" when only the media port had
been checked, and it was an ephemeral port any socket on the machine could take meanwhile.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "asterisk-docker"))

import stack as stackmod  # noqa: E402


def test_every_port_sipp_binds_is_free_and_outside_the_kernels_ephemeral_range() -> None:
    sip, media = stackmod.sipp_ports()
    assert media == sip + 2
    assert stackmod.SIPP_PORTS_TO <= stackmod.ephemeral_low()
    for port in (sip, media, media + 2):
        assert stackmod.SIPP_PORTS_FROM <= port < stackmod.SIPP_PORTS_TO
        assert stackmod.port_is_free(port, socket.SOCK_DGRAM)


def test_a_block_whose_video_port_is_taken_is_skipped() -> None:
    sip, media = stackmod.sipp_ports()
    low, high = stackmod.sipp_port_range()  # a test worker's slice (tests/conftest.py) or the whole range
    blocks = (high - low) // stackmod.SIPP_BLOCK
    # The blocks go round: the one handed out `blocks` calls from now is this one again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", media + 2))
        seen = [stackmod.sipp_ports() for _ in range(blocks)]
    assert (sip, media) not in seen


def test_consecutive_callers_never_share_a_port() -> None:
    low, high = stackmod.sipp_port_range()
    handed = [stackmod.sipp_ports() for _ in range(min(50, (high - low) // stackmod.SIPP_BLOCK))]
    ports = [p for sip, media in handed for p in (sip, media, media + 2)]
    assert len(ports) == len(set(ports))


PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 5468: 0100007F:1EFA 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7201226 2 0 0
  171: 644D0A0A:13CE 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7201230 2 0 0
   sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when
   12: 00000000000000000000000000000000:1B58 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000
"""


def test_the_ports_of_a_namespaces_udp_sockets_are_read_from_its_proc_net_udp() -> None:
    assert stackmod.local_ports(PROC_NET_UDP) == {0x1EFA, 0x13CE, 0x1B58}  # 7930, 5070, 7000


def test_in_another_namespace_a_block_holding_a_bound_port_is_skipped(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """In a namespace this process is not in, a bind would test the wrong one: the namespace's own sockets
    decide (the cluster's carrier, where sipp's phones hold 5070 and 7000)."""
    asked = []
    sip, media = stackmod.sipp_ports()
    low, high = stackmod.sipp_port_range()
    blocks = (high - low) // stackmod.SIPP_BLOCK

    def bound(netns: str) -> set[int]:
        asked.append(netns)
        return {media + 2}

    monkeypatch.setattr(stackmod, "udp_ports_bound", bound)
    # Even a port taken here (in the next block) does not matter there.
    following = low + (sip - low + stackmod.SIPP_BLOCK) % (blocks * stackmod.SIPP_BLOCK)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as here:
        here.bind(("127.0.0.1", following))
        seen = [stackmod.sipp_ports("10.77.0.100", netns="flc-carrier") for _ in range(blocks)]
    assert (sip, media) not in seen
    assert (following, following + 2) in seen
    assert set(asked) == {"flc-carrier"}
def test_a_narrowed_range_is_kept_and_a_bad_one_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRLINE_SIPP_PORTS", "7000-7063")
    assert stackmod.sipp_port_range() == (7000, 7064)
    handed = [stackmod.sipp_ports() for _ in range(20)]
    assert all(7000 <= port and media + 2 < 7064 for port, media in handed)
    for bad in ("7000", "7000-7003", "5000-5999", "7000-9000", "a-b"):
        monkeypatch.setenv("FAIRLINE_SIPP_PORTS", bad)
        with pytest.raises(stackmod.StackError, match="FAIRLINE_SIPP_PORTS"):
            stackmod.sipp_port_range()


def test_test_workers_get_disjoint_whole_blocks_of_the_range() -> None:
    from tests.conftest import worker_sipp_ports

    for count in (1, 2, 3, 4):
        ranges = [tuple(map(int, worker_sipp_ports(f"gw{i}", count).split("-"))) for i in range(count)]
        ports = [p for low, high in ranges for p in range(low, high + 1)]
        assert len(ports) == len(set(ports))
        assert all(stackmod.SIPP_PORTS_FROM <= low and high < stackmod.SIPP_PORTS_TO and (high - low + 1) % 8 == 0
                   for low, high in ranges)
