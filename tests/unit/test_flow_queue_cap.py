"""The call flow keeps the minute per caller (decision 0029): a caller entering a later queue brings what is
left of it; a caller in line hears the expected wait with their position."""

from __future__ import annotations

from typing import Any

from ari_app.core.flow import JoinQueue, Play, PositionDue, StopMoh
from tests.unit.test_flow import CALL_ID, at, playback_done, returned
from tests.unit.test_flow_queues import TO_SALES, after_queued, overflowed, position_id


class TestWhatIsLeft:
    def test_the_second_queue_is_joined_with_what_is_left_of_the_minute_since_the_first(self) -> None:
        # sales from 20 s, sent on at 45 s (no agent could answer), "please hold", the backup's desk rings 15 s:
        # at 62 s, 42 s of the minute have gone.
        events: list[Any] = [overflowed(45), playback_done(s=47, playback_id=f"{CALL_ID}-0-overflow"),
                             returned("NOANSWER", 62)]
        _, asked = after_queued(events, did=TO_SALES)

        assert [a for a in asked if isinstance(a, JoinQueue)] == [JoinQueue("support", 18.0)]


class TestExpectedWait:
    def test_the_position_is_followed_by_the_expected_wait_in_seconds(self) -> None:
        _, asked = after_queued([PositionDue(CALL_ID, at(40), 2, 30)])

        assert asked == [StopMoh(), Play("sound:queue-thereare,number:2,sound:queue-callswaiting,"
                                         "sound:queue-holdtime,number:30,sound:queue-seconds", position_id(40))]

    def test_next_in_line_hears_it_too(self) -> None:
        _, asked = after_queued([PositionDue(CALL_ID, at(40), 1, 10)])

        assert asked[1] == Play("sound:queue-youarenext,sound:queue-holdtime,number:10,sound:queue-seconds",
                                position_id(40))
