"""Fault injection on the real stack (issue 7, Faults): callers are served and every CDR is stored once.

Each test breaks one part while fairline runs and checks what the operator sees in the
log, that calls still connect, and that PostgreSQL gets every call's CDR exactly once:

- the ARI websocket dies silently: packets to and from Asterisk's HTTP port on lo are
  dropped by an iptables rule (no FIN, no RST), so only fairline's websocket pings can
  tell; SIGSTOP of Asterisk would not do, since then the kernel still answers for it;
- PostgreSQL is stopped for a minute while sipp places a call every 0.5 s;
- Asterisk is restarted: fairline reconnects with back-off, no crash loop;
- the spool directory is full (a tiny tmpfs mounted over it) or read-only (a read-only
  bind mount): running as root, a chmod would not stop fairline's writes;
- PostgreSQL refuses one call's CDR (a trigger's error) while it takes the others: a poison CDR.

The ten-minute outage is in test_long_outage.py (`make test-faults`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveStack, poll, stackmod
from tests.e2e.test_reconcile import assert_reconciled, cdrs_of_caller_refused

pytestmark = [pytest.mark.e2e, pytest.mark.alone]  # make test runs it with no other test beside it

ROUTED = "+31201230006"  # rings +31201230925, which answers and hangs up after 2 s (uac_answered.xml)
PING_BOUND_S = 7.5  # docs/operations.md: websocket pings every 5 s, a silent death noticed within 7.5 s
OUTAGE_S = 60.0  # issue 7: PostgreSQL stopped for a minute
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)  # docs/operations.md: 0.5 s doubling to 10 s
JITTER = (0.8, 1.2)  # runtime.App.run multiplies each delay by random.uniform(0.8, 1.2)


# ---------------------------------------------------------------- helpers


def events(lines: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [e for e in lines if e.get("event") in names]


def at(line: dict[str, Any]) -> float:
    """A log line's time (ISO UTC, from structlog's TimeStamper) as a Unix timestamp."""
    return datetime.fromisoformat(str(line["timestamp"])).timestamp()


def most_attempts(down_s: float) -> int:
    """The most reconnect attempts back-off allows in `down_s` seconds (shortest jitter each time), plus one."""
    attempts, elapsed = 1, 0.0
    for i in range(100):
        elapsed += BACKOFF_S[min(i, len(BACKOFF_S) - 1)] * JITTER[0]
        if elapsed > down_s:
            break
        attempts += 1
    return attempts


def iptables() -> str:
    """The iptables command; installed like the stack's other system packages when missing."""
    found = shutil.which("iptables")
    if found is None:
        stackmod.SYSTEM_PACKAGES.setdefault("iptables", "iptables")
        stackmod.install_prerequisites()
        found = shutil.which("iptables")
    assert found is not None, "iptables is needed to drop ARI's packets (Debian package iptables)"
    return found


@contextlib.contextmanager
def packets_dropped(port: int, tag: str) -> Iterator[None]:
    """Drop every TCP packet to and from 127.0.0.1:port on lo, silently (no RST, no ICMP), until the block ends."""
    cmd = iptables()
    rules = [["INPUT", "-i", "lo", "-p", "tcp", direction, str(port), "-m", "comment", "--comment", tag, "-j", "DROP"]
             for direction in ("--dport", "--sport")]
    try:
        for rule in rules:
            subprocess.run([cmd, "-w", "5", "-I", *rule], check=True, capture_output=True, timeout=15)
        yield
    finally:
        for rule in rules:  # each rule may be in once or not at all; -D until it is gone
            while subprocess.run([cmd, "-w", "5", "-D", *rule], capture_output=True, timeout=15).returncode == 0:
                pass
        listed = subprocess.run([cmd, "-w", "5", "-S", "INPUT"], capture_output=True, text=True, timeout=15).stdout
        assert tag not in listed, f"an iptables rule tagged {tag} is still in place:\n{listed}"


def unmount(path: Path) -> None:
    for _ in range(50):
        proc = subprocess.run(["umount", str(path)], capture_output=True, text=True)
        if proc.returncode == 0 or "not mounted" in proc.stderr:
            return
        time.sleep(0.1)  # busy: fairline has a spool file open this instant
    subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def broken_directory(path: Path, fault: str) -> Iterator[None]:
    """Make `path` full (a 64 KiB tmpfs over it, filled) or read-only (a read-only bind mount of itself)."""
    path.mkdir(parents=True, exist_ok=True)
    if fault == "full":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "fairline-full-spool", str(path)],
                       check=True, capture_output=True)
    else:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
    try:
        if fault == "full":
            fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * 4096)
            finally:
                os.close(fd)
        else:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        with pytest.raises(OSError) as refused:  # as root: only the mount stops a write
            with open(path / "probe", "ab") as f:
                f.write(b"x" * 8192)
        assert refused.value.errno in (errno.ENOSPC, errno.EROFS)
        yield
    finally:
        unmount(path)


# ---------------------------------------------------------------- the ARI websocket dies silently


def test_silently_dead_ari_websocket_is_noticed_within_the_ping_bound_and_reconnected_with_backoff(
        live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    assert s.fairline is not None
    pid = s.fairline.pid
    tag = f"fairline-faults-{s.name}"
    dropped_at = time.time()  # before the rules go in: the measured detection time is never too short
    with packets_dropped(s.ports.http, tag):
        assert poll(lambda: events(live.logs(), "ari.disconnected"), timeout=PING_BOUND_S + 5), \
            "fairline did not notice the silent drop"
        # A reconnect attempt into the black hole fails (REST timeout, 5 s); the next waits longer.
        assert poll(lambda: len(events(live.logs(), "ari.reconnecting")) >= 2, timeout=20)
        lifted = len(live.logs())
    [disconnected] = events(live.logs(), "ari.disconnected")
    detected_s = at(disconnected) - dropped_at
    print(f"silent drop noticed after {detected_s:.2f} s")
    assert detected_s <= PING_BOUND_S + 0.3  # the bound docs/operations.md gives, plus log and clock slack

    unreachable = events(live.logs()[:lifted], "ari.unreachable")
    assert unreachable and "/asterisk/info" in unreachable[0]["error"]
    delays = [float(e["in_s"]) for e in events(live.logs(), "ari.reconnecting")]
    assert delays[:2] == sorted(delays[:2]) and delays[0] <= BACKOFF_S[0] * JITTER[1] < delays[1]

    assert poll(lambda: events(live.logs()[lifted:], "ari.connected"), timeout=15), "no reconnect after the drop"
    assert s.fairline.poll() is None and s.fairline.pid == pid  # the same process, no restart

    result = live.call(ROUTED, "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    assert [r["disposition"] for r in live.wait_cdrs(1)] == ["answered"]
    assert_reconciled(live, since, calls=1)  # Asterisk's own records agree


# ---------------------------------------------------------------- PostgreSQL down for a minute


@pytest.mark.slow
def test_a_minute_without_postgresql_under_call_load_loses_and_doubles_no_cdr(live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    calls = int((OUTAGE_S + 12) * 2)  # a call every 0.5 s, from before the outage until after it
    with ThreadPoolExecutor(max_workers=1) as placing:
        sipp = placing.submit(live.call, ROUTED, "uac_answered.xml", calls=calls, rate=2, timeout=calls / 2 + 40)
        assert poll(lambda: events(live.logs(), "cdr.written"), timeout=15), "no CDR stored before the outage"
        s.stop_postgres()
        stopped = time.monotonic()
        try:
            assert poll(lambda: events(live.logs(), "cdr.spooled"), timeout=15)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        finally:
            s.start_postgres()
            outage_s = time.monotonic() - stopped
        result = sipp.result()
    assert outage_s >= OUTAGE_S
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]  # every call succeeded

    rows = live.wait_cdrs(calls, timeout=30)
    logs = live.logs()
    ended = {e["call_id"] for e in events(logs, "call.ended")}
    spooled = sum(int(e["count"]) for e in events(logs, "cdr.spooled"))
    replayed = events(logs, "cdr.replayed")
    print(f"{calls} calls, outage {outage_s:.1f} s: {len(rows)} CDRs, {spooled} spooled, "
          f"replayed {[(e['count'], e['new'], e['already_there']) for e in replayed]}")
    assert len(rows) == calls and len({r["call_id"] for r in rows}) == calls  # none lost, none doubled
    assert {r["call_id"] for r in rows} == ended and len(ended) == calls
    assert {r["disposition"] for r in rows} == {"answered"}
    assert events(logs, "db.down") and events(logs, "db.back")
    assert spooled > calls / 2  # most calls ended during the outage
    assert sum(int(e["count"]) for e in replayed) == spooled
    assert not events(logs, "cdr.rejected", "cdr.unsaved", "spool.write_failed", "cdr_writer.error")
    assert_reconciled(live, since, calls=calls)  # Asterisk's own records agree, call for call


# ---------------------------------------------------------------- Asterisk restarted


def test_after_asterisk_restarts_fairline_reconnects_with_bounded_attempts_and_serves_the_next_call(
        live: LiveStack) -> None:
    s = live.stack
    since = datetime.now(UTC)
    assert s.fairline is not None
    pid = s.fairline.pid
    s.stop_asterisk()
    assert poll(lambda: events(live.logs(), "ari.disconnected"), timeout=10)
    time.sleep(3)  # down a while: a crash loop would show as many attempts
    s.start_asterisk()
    assert poll(lambda: events(live.logs(), "ari.connected"), timeout=20), "fairline did not reconnect"
    time.sleep(2)  # and stays connected: no flapping
    assert s.fairline.poll() is None and s.fairline.pid == pid

    logs = live.logs()
    [disconnected] = events(logs, "ari.disconnected")
    [connected] = events(logs, "ari.connected")
    down_s = at(connected) - at(disconnected)
    delays = [float(e["in_s"]) for e in events(logs, "ari.reconnecting")]
    print(f"Asterisk away {down_s:.1f} s: {len(delays)} reconnect attempts, delays {delays}")
    assert 1 <= len(delays) <= most_attempts(down_s)
    assert delays == sorted(delays)  # jitter never undoes the doubling: 0.6 < 0.8, 1.2 < 1.6, ...
    assert delays[-1] <= BACKOFF_S[-1] * JITTER[1]
    assert not [e for e in logs if e.get("level") in ("error", "critical")]
    assert s.fairline_connected()

    result = live.call(ROUTED, "uac_answered.xml")
    assert result.returncode == 0, result.stderr
    assert [r["disposition"] for r in live.wait_cdrs(1)] == ["answered"]
    assert_reconciled(live, since, calls=1)


# ---------------------------------------------------------------- the spool cannot be written


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_unwritable_spool_is_reported_loudly_by_name_and_calls_still_connect(live: LiveStack, fault: str) -> None:
    s = live.stack
    since = datetime.now(UTC)
    spool = s.state_dir / "spool"  # fairline's --spool-dir (FAIRLINE_SPOOL_DIR from stack.py)
    with broken_directory(spool, fault):
        # While PostgreSQL answers, the spool is not needed: calls and CDRs as usual.
        result = live.call(ROUTED, "uac_answered.xml")
        assert result.returncode == 0, result.stderr
        assert len(live.wait_cdrs(1)) == 1
        s.stop_postgres()
        try:
            result = live.call(ROUTED, "uac_answered.xml")
            assert result.returncode == 0, result.stderr  # neither database nor spool: the call connects

            def loud() -> list[dict[str, Any]]:
                return [e for e in events(live.logs(), "spool.write_failed")
                        if e.get("level") == "error" and str(spool) in str(e.get("error"))]

            assert poll(loud, timeout=10), "no error naming the spool directory"
            print(f"{fault}: {loud()[0]}")
        finally:
            s.start_postgres()
        # The CDR waited in memory and is stored once PostgreSQL answers, spool or no spool.
        rows = live.wait_cdrs(2, timeout=20)
        assert [r["disposition"] for r in rows] == ["answered", "answered"]
        # Nothing was spooled, so nothing needs clearing: no error a second while the spool stays broken.
        time.sleep(2.5)
        assert not events(live.logs(), "spool.clear_failed")
    logs = live.logs()
    assert not events(logs, "cdr.unsaved", "cdr_writer.error", "cdr_writer.crashed")
    assert s.fairline is not None and s.fairline.poll() is None
    assert_reconciled(live, since, calls=2)


# ---------------------------------------------------------------- a poison CDR


POISON_CALLER = "+31600000666"
MAX_TRIES = 5  # rating/storage/cdr_writer.py: a CDR refused this often goes to the dead-letter file


def metrics(live: LiveStack) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{live.stack.ports.status}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")}


def healthz(live: LiveStack) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{live.stack.ports.status}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_cdr_postgresql_keeps_refusing_is_dead_lettered_loudly_while_the_others_flow(live: LiveStack) -> None:
    """Issue 17: one CDR failing outside SQLSTATE classes 22/23 used to block every later CDR for ever."""
    s = live.stack
    since = datetime.now(UTC)
    spool_dir = s.state_dir / "spool"
    (spool_dir / "dead-letter.jsonl").unlink(missing_ok=True)  # left by an earlier run that failed half-way
    calls = 12
    with cdrs_of_caller_refused(live, POISON_CALLER):
        assert live.call(ROUTED, "uac_answered.xml", caller=POISON_CALLER).returncode == 0
        result = live.call(ROUTED, "uac_answered.xml", calls=calls, rate=1, timeout=calls + 30)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert poll(lambda: len(live.cdrs()) == calls and events(live.logs(), "cdr.dead_lettered"), timeout=60)

        logs = live.logs()
        [dead] = events(logs, "cdr.dead_lettered")
        refused = events(logs, "cdr.refused_for_now")
        assert [e["tries"] for e in refused] == list(range(1, MAX_TRIES))
        assert {e["call_id"] for e in refused} == {dead["call_id"]}
        assert (dead["level"], dead["tries"], dead["path"]) == ("error", MAX_TRIES,
                                                                     str(spool_dir / "dead-letter.jsonl"))
        assert "test trigger: CDR of" in dead["error"]
        # The others flowed while it waited for its tries: stored before it was given up on.
        rows = live.cdrs()
        assert POISON_CALLER not in {r["caller"] for r in rows}
        before = [r for r in rows if datetime.fromisoformat(r["recorded_at"]) < datetime.fromisoformat(dead["timestamp"])]
        print(f"{len(before)} of {calls} CDRs stored before the poison CDR was dead-lettered "
              f"{at(dead) - at(refused[0]):.1f} s after its first refusal")
        assert before
        assert not events(logs, "db.down", "cdr.rejected", "cdr_writer.error")

        status, body = healthz(live)
        assert (status, body["status"], body["database"], body["cdr_dead_letters"]) == (200, "degraded", "up", 1)
        assert any("dead-letter file" in p for p in body["problems"])
        m = metrics(live)
        assert (m["fairline_cdrs_dead_lettered_total"], m["fairline_cdr_dead_letters"]) == (1, 1)
        assert (m["fairline_cdr_spool_depth"], m["fairline_cdr_database_up"]) == (0, 1)
        [kept] = [json.loads(line) for line in (spool_dir / "dead-letter.jsonl").read_text().splitlines()]
        assert (kept["cdr"]["call_id"], kept["tries"]) == (dead["call_id"], MAX_TRIES)

    # What docs/operations.md tells the operator: fix the cause (the trigger is gone), then, with fairline
    # stopped, put the dead letters back at the end of the spool; fairline stores them when it starts.
    assert s.fairline is not None
    s.fairline.send_signal(signal.SIGTERM)
    assert s.fairline.wait(timeout=15) == 0
    dead_letters = spool_dir / "dead-letter.jsonl"
    with (spool_dir / "cdrs.jsonl").open("a") as spool:
        for line in dead_letters.read_text().splitlines():
            spool.write(json.dumps(json.loads(line)["cdr"]) + "\n")
    dead_letters.unlink()
    s.start_fairline()
    rows = live.wait_cdrs(calls + 1, timeout=30)
    assert len(rows) == calls + 1 and len({r["call_id"] for r in rows}) == calls + 1
    assert healthz(live)[1]["status"] == "ok"
    assert_reconciled(live, since, calls=calls + 1)
