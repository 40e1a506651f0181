"""Each test sees its own calls only: the CDR table is emptied after the calls of earlier tests are stored."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import LiveStack, empty_cdr_table, poll, still_busy

pytestmark = pytest.mark.e2e

ROUTED = "+31201230006"  # rings +31201230925, which answers and hangs up after 2 s


def test_a_call_that_ends_before_fairline_reads_its_end_is_stored_before_the_table_is_emptied(live: LiveStack) -> None:
    """The flaky test_security run: on a loaded machine fairline reads Asterisk's events late.

    The call is over for Asterisk and the caller while fairline has not yet seen it end (here:
    fairline is paused), so neither its CDR nor a `call.ended` line exists yet. The next test's
    reset must wait for that CDR rather than empty the table before it lands.
    """
    s = live.stack
    assert s.fairline is not None
    with ThreadPoolExecutor(2) as threads:
        call = threads.submit(live.call, ROUTED, "uac_answered.xml")
        assert poll(lambda: any(e.get("event") == "call.dialing" for e in live.logs()))  # handed to Dial()
        os.kill(s.fairline.pid, signal.SIGSTOP)
        try:
            assert call.result().returncode == 0  # the target answered and hung up: the call is over
            emptying = threads.submit(empty_cdr_table, live)  # what the next test's `live` fixture does
            # Meanwhile (a /metrics request that times out): fairline does not answer, so it is not done.
            assert still_busy(live)
        finally:
            os.kill(s.fairline.pid, signal.SIGCONT)
        emptying.result()

    assert poll(lambda: any(e.get("event") == "cdr.written" for e in live.logs()))  # the call's CDR is stored...
    assert live.cdrs() == []  # ...and was before the table was emptied, not after
