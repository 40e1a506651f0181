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
    blocks = (stackmod.SIPP_PORTS_TO - stackmod.SIPP_PORTS_FROM) // stackmod.SIPP_BLOCK
    # The blocks go round: the one handed out `blocks` calls from now is this one again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", media + 2))
        seen = [stackmod.sipp_ports() for _ in range(blocks)]
    assert (sip, media) not in seen


def test_consecutive_callers_never_share_a_port() -> None:
    handed = [stackmod.sipp_ports() for _ in range(50)]
    ports = [p for sip, media in handed for p in (sip, media, media + 2)]
    assert len(ports) == len(set(ports))


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
