"""A call that comes back from Dial() to a restarted fairline is finished, never left in silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ari_app.config import yaml_loader
from ari_app.core.events import CallLeft, DialReturned
from ari_app.core.flow import Call, Hangup, Phase, Play, Progress, WriteCdr, step
from rating.core.cdr import Disposition

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
YAML = """
customers: [{id: acme, name: Acme}]
numbers:
  - number: "+31201230009"
    customer: acme
    type: local
    route:
      targets: ["+31612340043"]
      no_answer: {announcement: vm-nobodyavail}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    path = tmp_path / "fairline.yaml"
    path.write_text(YAML)
    return yaml_loader.load(path)


def returned(status: str, *, answered: bool = False, did: str = "+31201230009") -> DialReturned:
    return DialReturned("c1", T0 + timedelta(seconds=20), status, did, "+31612345678", T0, answered)


class TestAdoption:
    def test_unanswered_call_hears_the_no_answer_announcement_then_is_released(self, cfg: Config) -> None:
        call, actions = step(Call("c1"), returned("NOANSWER"), cfg)
        assert call.phase is Phase.ANNOUNCING
        assert [type(a) for a in actions] == [Progress, Play]
        assert actions[1] == Play("sound:vm-nobodyavail", "c1-0-noanswer")

    def test_answered_call_is_released_and_recorded_as_answered_from_its_return(self, cfg: Config) -> None:
        call, actions = step(Call("c1"), returned("ANSWER", answered=True), cfg)
        assert actions == [Hangup("normal")]
        _, end = step(call, CallLeft("c1", T0 + timedelta(seconds=21)), cfg)
        [write] = end
        assert isinstance(write, WriteCdr)
        record = write.record
        assert (record.disposition, record.started_at, record.answered_at) == (
            Disposition.ANSWERED, T0, T0 + timedelta(seconds=20))

    def test_unknown_number_still_gets_an_announcement(self, cfg: Config) -> None:
        _, actions = step(Call("c1"), returned("BUSY", did="+31209999999"), cfg)
        assert actions[1] == Play("sound:vm-nobodyavail", "c1-0-noanswer")
