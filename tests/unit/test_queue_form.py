"""A customer's queue as a form and back, the queue's item replaced in the text, and the loader's problems
next to the fields they name (console/core/queue_form.py, console/flow_text.py; decision 0035)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from ari_app.config import yaml_loader
from ari_app.config_versions import number_changes
from ari_app.errors import ConfigError
from console import flow_text
from console.core.flow_form import TOP, FormInvalid
from console.core.queue_form import QueueForm, item_of, place, queue_index, queues_of, shown

CONFIG = """customers:
  - id: acme
    name: Acme BV
    voicemail: {email: office@acme.example}
  - id: bolt
    name: Bolt BV
queues:
  # acme's desk
  - name: desk
    customer: acme
    agents: ["+31612340071", "+31612340072"]
    strategy: roundrobin
    ring_seconds: 12
    wrapup_seconds: 0
    max_wait_seconds: 45
    position_every_seconds: 30
    confirm: true
    overflow: {number: "+31201110002"}
  # bolt's
  - name: boltq
    customer: bolt
    agents: ["+31655500071"]
numbers:
  - number: "+31201110001"
    customer: acme
    type: local
    route: {queue: desk}
  - number: "+31201110002"
    customer: acme
    type: local
    announcement: hello-world
  - number: "+31209990001"
    customer: bolt
    type: local
    route: {queue: boltq}
"""
ROOT = yaml.safe_load(CONFIG)
DESK = ROOT["queues"][0]


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        yaml_loader.parse(text, "change")
    return list(refused.value.problems)


class TestForm:
    def test_an_unchanged_form_gives_back_the_same_item(self) -> None:
        assert item_of(shown(DESK), DESK) == DESK
        bolt = ROOT["queues"][1]
        assert item_of(shown(bolt), bolt) == bolt

    def test_the_form_shows_each_key_in_its_field(self) -> None:
        assert shown(DESK) == QueueForm(agents="+31612340071\n+31612340072\n", strategy="roundrobin",
                                        ring_seconds="12", wrapup_seconds="0", max_wait_seconds="45",
                                        position_every_seconds="30", confirm="yes", overflow="number",
                                        overflow_value="+31201110002")

    def test_empty_fields_are_the_defaults_and_name_and_customer_stay(self) -> None:
        item = item_of(QueueForm(agents="+31612340079\n\n"), DESK)
        assert item == {"name": "desk", "customer": "acme", "agents": ["+31612340079"]}

    def test_voicemail_overflow_and_seconds_as_typed_when_not_whole(self) -> None:
        item = item_of(replace(shown(DESK), overflow="voicemail", ring_seconds="soon"), DESK)
        assert item["overflow"] == {"voicemail": True} and item["ring_seconds"] == "soon"

    @pytest.mark.parametrize(("field", "value"), [("strategy", "random"), ("overflow", "hangup")])
    def test_a_choice_the_form_does_not_offer_is_refused_by_field(self, field: str, value: str) -> None:
        with pytest.raises(FormInvalid) as bad:
            item_of(replace(shown(DESK), **{field: value}), DESK)
        assert list(bad.value.problems.by_field) == [field]

    def test_the_customer_s_queues_only(self) -> None:
        assert [q["name"] for q in queues_of(ROOT, "acme")] == ["desk"]
        assert (queue_index(ROOT, "boltq"), queue_index(ROOT, "nope")) == (1, None)


class TestText:
    def test_replacing_a_queue_keeps_every_other_byte_and_its_change_row_is_its_own(self) -> None:
        item = item_of(replace(shown(DESK), agents="+31612340073"), DESK)
        text = flow_text.with_item(CONFIG, 0, item, "queues")
        assert text is not None and yaml.safe_load(text)["queues"][0] == item
        assert text.endswith(CONFIG[CONFIG.index("  # bolt's"):])
        assert text.startswith(CONFIG[:CONFIG.index("  - name: desk")])
        [change] = number_changes(CONFIG, text)
        assert (change.number, change.owner_before, change.owner_after) == ("queue:desk", "acme", "acme")
        assert number_changes(flow_text.dump({"queues": [DESK]}), flow_text.dump({"queues": [item]})) == [change]


class TestPlace:
    def test_a_premium_rate_agent_goes_to_the_agents_naming_which(self) -> None:
        item = item_of(replace(shown(DESK), agents="+31612340071\n+31909123456"), DESK)
        text = flow_text.with_item(CONFIG, 0, item, "queues")
        assert text is not None
        placed = place(problems_of(text), 0, staff=False).by_field
        assert list(placed) == ["agents"] and placed["agents"][0].startswith("agent 2: +31909123456")

    def test_a_wait_over_the_minute_goes_to_its_field(self) -> None:
        text = flow_text.with_item(CONFIG, 0, {**DESK, "max_wait_seconds": 90}, "queues")
        assert text is not None
        assert list(place(problems_of(text), 0, staff=False).by_field) == ["max_wait_seconds"]

    def test_a_problem_of_another_queue_goes_to_the_top_without_details_for_a_customer(self) -> None:
        message = "change:20: queues[1].agents[0]: +31655500071 of bolt: expected something"
        assert place([message], 0, staff=False).by_field[TOP] == [
            "this change does not fit the rest of the configuration; nothing was saved. Our staff can tell you more."]
        assert "bolt" in place([message], 0, staff=True).by_field[TOP][0]
