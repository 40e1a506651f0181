"""Toll fraud and floods on the real stack (decision 0026): concurrent-call limits and the dialable phones.

A flood is a burst of real INVITEs (sipp, each from its own caller id unless the test says
otherwise) at one number whose target answers; each answered call stays up 6 s, so the whole
burst arrives while the first calls are still up. The limits are in tests/e2e/fairline.yaml.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from ari_app.ari.client import AriClient
from tests.e2e.conftest import LiveStack, poll
from tests.e2e.sipp import SCENARIOS, sipp_ports
from tests.e2e.test_reconcile import assert_reconciled, settled
from tests.e2e.test_shedding import admit, all_admitted  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.alone]  # make test runs it with no other test beside it

AT_MOST_3 = "+31201230950"  # max_calls: 3
DEFAULTS = "+31201230951"  # 20 calls a number, 10 a caller
SMALL_SHOP = ("+31201230952", "+31201230953")  # customer e2e-small: 5 calls at once between them
ELSEWHERE = "+31201230006"  # another number, another target: must not notice any of it
PREMIUM = "+319001234567"  # a Dutch 0900 number: every minute pays its owner


def flood(live: LiveStack, did: str, calls: int, *, callers: list[str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`calls` INVITEs at once (100 a second) to `did`, from `callers` in turn (default: one caller id each)."""
    s = live.stack
    callers = callers or [f"+3161299{i:04d}" for i in range(calls)]
    inject = s.state_dir / f"flood_{did.lstrip('+')}.csv"
    inject.write_text("SEQUENTIAL\n" + "".join(f"{c};\n" for c in callers))
    sip, media = sipp_ports()
    return subprocess.run(
        ["sipp", "-sf", str(SCENARIOS / "uac_flood.xml"), "-inf", str(inject), "-s", did,
         "-i", "127.0.0.1", "-p", str(sip), "-mp", str(media),
         "-m", str(calls), "-r", "100", "-l", str(calls), "-nostdin", "-timeout", f"{timeout:.0f}s",
         "-timeout_error", f"127.0.0.1:{s.ports.sip}"],
        capture_output=True, text=True, timeout=timeout + 15, cwd=s.state_dir)


def answered_cdrs(live: LiveStack, n: int, did: str) -> list[dict[str, Any]]:
    rows = live.wait_cdrs(n, timeout=20)
    return [r for r in rows if r["did"] == did and r["disposition"] == "answered"]


def test_a_flood_at_one_number_is_held_to_its_limit_and_other_numbers_are_unaffected(live: LiveStack) -> None:
    since = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=1) as placing:
        flooding = placing.submit(flood, live, AT_MOST_3, 12)
        # While the flood's calls are up: another number's call goes through as ever.
        assert poll(lambda: len(limited_lines(live)) > 0, timeout=20), "the flood was never limited"
        other = live.call(ELSEWHERE, "uac_answered.xml")
        result = flooding.result()
    assert other.returncode == 0, other.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]  # each call answered or busy

    answered = answered_cdrs(live, 4, AT_MOST_3)
    assert len(answered) == 3  # the number's max_calls, no more
    assert len(live.cdrs()) == 4  # and the other number's call; the 9 busy ones never reached fairline
    report = assert_reconciled(live, since, calls=4)  # zero differences
    assert report["limited"] == 9
    assert "over the number limit" in limited_lines(live)[-1]


def test_the_fallback_is_held_to_the_same_limit_when_fairline_sheds_every_call(
        live: LiveStack, all_admitted: None) -> None:  # noqa: F811
    since = datetime.now(UTC)
    admit(live, 0)  # every call takes the fallback, as under overload (decision 0016)
    result = flood(live, AT_MOST_3, 10)
    admit(live, 100)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    status, report = settled(live, since, calls=3)
    assert [m["path"] for m in report["missing_in_fairline"]] == ["fallback"] * 3  # rung by the fallback
    assert report["limited"] == 7 and report["matched"] == 0
    assert live.cdrs() == []  # fairline saw none of them


def test_one_caller_is_held_to_its_limit_across_numbers(live: LiveStack) -> None:
    since = datetime.now(UTC)
    result = flood(live, DEFAULTS, 13, callers=["+31612398765"])  # one caller id, 13 calls
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert len(answered_cdrs(live, 10, DEFAULTS)) == 10  # calls_per_caller's default, under the number's 20
    report = assert_reconciled(live, since, calls=10)
    assert report["limited"] == 3
    assert "over the caller limit" in limited_lines(live)[-1]


def test_a_customer_is_held_to_its_limit_across_its_numbers(live: LiveStack) -> None:
    since = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=2) as placing:
        floods = [placing.submit(flood, live, did, 4, callers=[f"+316123{i}{j:04d}" for j in range(4)])
                  for i, did in enumerate(SMALL_SHOP)]
        results = [f.result() for f in floods]
    assert all(r.returncode == 0 for r in results), [r.stdout[-2000:] for r in results]

    rows = live.wait_cdrs(5, timeout=20)
    assert len([r for r in rows if r["disposition"] == "answered"]) == 5  # e2e-small's max_calls over both numbers
    report = assert_reconciled(live, since, calls=5)
    assert report["limited"] == 3


# ---------------------------------------------------------------- what fairline-dial calls


def originate_into_fairline_dial(live: LiveStack, dial: str) -> None:
    """An ARI client with fairline's own credentials sends a channel into fairline-dial to dial `dial`.

    The Local channel's second half runs fairline-dial's `s` with FAIRLINE_DIAL as given; FAIRLINE_APP
    names no app, so the outcome stays in the dialplan instead of reaching fairline.
    """
    async def run() -> None:
        s = live.stack
        secrets = s.secrets()
        async with AriClient(s.ari_url, secrets["ARI_USER"], secrets["ARI_PASSWORD"], app="e2e-limits") as ari:
            await ari.request("POST", "/channels", body={
                "endpoint": "Local/s@fairline-dial", "context": "from-carrier-out", "extension": "s",
                "priority": 1, "timeout": 10, "variables": {"FAIRLINE_DIAL": dial, "FAIRLINE_APP": "e2e-none"}})

    asyncio.run(run())


def test_an_ari_originate_through_fairline_dial_to_a_premium_number_is_refused(live: LiveStack) -> None:
    start = messages_size(live)
    originate_into_fairline_dial(live, f"PJSIP/{PREMIUM}@carrier-out,5")
    assert poll(lambda: f"Couldn't call PJSIP/{PREMIUM}@carrier-out" in messages(live, start), timeout=10)
    assert f"Called PJSIP/{PREMIUM}@carrier-out" not in messages(live, start)  # no INVITE ever left for it
    assert f"fairline-target: refused {PREMIUM}: not a phone of the configuration" in messages(live, start)

    # The same request for a phone of the configuration rings it: what refuses is the list, not the path.
    start = messages_size(live)
    originate_into_fairline_dial(live, "PJSIP/+31612340191@carrier-out,5")
    assert poll(lambda: "Called PJSIP/+31612340191@carrier-out" in messages(live, start), timeout=10)


@pytest.mark.parametrize("dial", ["PJSIP/+31612340191@carrier-out,5,U(evil)", "PJSIP/+31612340191@carrier-in,5",
                                  "Local/+31612340191@fairline-targets,5"])
def test_fairline_dial_refuses_what_is_not_phones_on_the_trunk_with_a_ring_time(live: LiveStack, dial: str) -> None:
    """Dial() options, another endpoint, another technology: none reaches Dial()."""
    start = messages_size(live)
    originate_into_fairline_dial(live, dial)
    assert poll(lambda: len(refusals(live, start)) == 1, timeout=10)
    assert "Called " + dial.split(",")[0] not in messages(live, start)


def limited_lines(live: LiveStack) -> list[str]:
    return re.findall(r"fairline-limited: .*", live.stack.log("asterisk").read_text(errors="replace"))


def refusals(live: LiveStack, start: int) -> list[str]:
    return re.findall(r"\] WARNING\[.*fairline-dial: refused a dial.*", messages(live, start))


def messages(live: LiveStack, start: int) -> str:
    """Asterisk's messages.log from byte `start` on (verbose 3: Dial()'s "Called" and "Couldn't call" lines)."""
    with open(live.stack.asterisk_dir / "log" / "messages.log", "rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")


def messages_size(live: LiveStack) -> int:
    return (live.stack.asterisk_dir / "log" / "messages.log").stat().st_size
