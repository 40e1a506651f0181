"""A number's call flow as a form and back, and the loader's problems next to the fields they name
(console/core/flow_form.py, console/flow_text.py; decision 0035)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml

from ari_app.config import yaml_loader
from ari_app.errors import ConfigError
from console import flow_text
from console.core.flow_form import (TOP, Built, FlowForm, FormInvalid, customer_settings, field_of, item_of,
                                    parse_targets, place, shown)

CONFIG = """# the test's configuration
customers:
  - id: acme
    name: Acme BV
    voicemail: {email: office@acme.example}
  - id: bolt
    name: Bolt BV
numbers:
  - number: "+31201110001"        # the shop
    customer: acme
    type: local
    max_calls: 4
    route:
      strategy: sequential
      ring_seconds: 10
      confirm: true
      targets:
        - {number: "+31612340001", ring_seconds: 15}
        - "+31612340002"
        - {number: "+31612340003", confirm: false}
      no_answer: {voicemail: true}
    hours:
      mon-fri: "08:00-17:00"
    outside_hours: {voicemail: true}
    recording: false
    blocked_callers: ["+31612347799", withheld]
  # announcements from here on
  - number: "+31201110002"
    customer: acme
    type: local
    announcement: hello-world
  - number: "+31209990001"
    customer: bolt
    type: local
    route: {queue: bolt-desk}
queues:
  - name: bolt-desk
    customer: bolt
    agents: ["+31655500001"]
"""


def item(i: int) -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG)["numbers"][i])


def advanced_of(form: FlowForm) -> Any:
    value, problem = flow_text.parse_advanced(form.advanced)
    assert problem is None
    return value


def round_trip(i: int, *, staff: bool) -> dict[str, Any]:
    view = shown(item(i), staff=staff)
    form = replace(view.form, advanced=flow_text.dump(view.advanced) if view.advanced else "")
    return item_of(form, view.fixed, advanced_of(form), staff=staff).item


class TestItemToFormAndBack:
    @pytest.mark.parametrize("i", [0, 1, 2])
    @pytest.mark.parametrize("staff", [False, True])
    def test_an_unchanged_form_gives_the_same_item(self, i: int, staff: bool) -> None:
        assert round_trip(i, staff=staff) == item(i)

    def test_the_form_shows_targets_one_a_line_and_the_rest_in_advanced(self) -> None:
        view = shown(item(0), staff=False)
        assert view.form.targets == "+31612340001, 15 s\n+31612340002\n+31612340003, no confirm\n"
        assert (view.form.answer, view.form.strategy, view.form.ring_seconds, view.form.confirm) == (
            "targets", "sequential", "10", "yes")
        assert (view.form.no_answer, view.form.no_answer_value, view.form.recording) == ("voicemail", "", "no")
        assert view.form.blocked_callers == "+31612347799\nwithheld\n"
        assert set(view.advanced) == {"hours", "outside_hours"}
        assert view.fixed == {"number": "+31201110001", "customer": "acme", "type": "local", "max_calls": 4}

    def test_staff_see_the_limits_in_advanced_customers_do_not(self) -> None:
        assert "max_calls" in shown(item(0), staff=True).advanced
        assert "max_calls" not in shown(item(0), staff=False).advanced

    def test_a_queue_and_an_announcement_number(self) -> None:
        assert (shown(item(2), staff=True).form.answer, shown(item(2), staff=True).form.queue) == ("queue", "bolt-desk")
        view = shown(item(1), staff=False)
        assert (view.form.answer, view.form.announcement) == ("announcement", "hello-world")

    def test_defaults_are_left_out_of_the_item(self) -> None:
        form = FlowForm(targets="+31612340009\n\n")
        built = item_of(form, {"number": "+31201110001", "customer": "acme", "type": "local"}, None, staff=False)
        assert built.item == {"number": "+31201110001", "customer": "acme", "type": "local",
                              "route": {"targets": ["+31612340009"]}}

    def test_a_new_route_replaces_the_announcement(self) -> None:
        view = shown(item(1), staff=False)
        form = replace(view.form, answer="targets", targets="+31612340009", no_answer="announcement",
                       no_answer_value="beep")
        built = item_of(form, view.fixed, None, staff=False).item
        assert "announcement" not in built and built["route"] == {"targets": ["+31612340009"],
                                                                  "no_answer": {"announcement": "beep"}}


class TestTargetLines:
    def test_number_ring_time_and_confirmation(self) -> None:
        targets, lines, problems = parse_targets("+31612340001, 15 s, confirm\n\n+31 6 1234 0002\n+31612340003,no confirm")
        assert targets == [{"number": "+31612340001", "ring_seconds": 15, "confirm": True}, "+31 6 1234 0002",
                           {"number": "+31612340003", "confirm": False}]
        assert (lines, problems) == ((1, 3, 4), [])

    def test_a_line_not_understood_says_which_and_what_was_expected(self) -> None:
        _, _, problems = parse_targets("+31612340001\n+31612340002, soon")
        assert problems == ["line 2: 'soon': expected a number, then optionally its ring time and confirm or no "
                            "confirm, e.g. +31612345678, 15 s, confirm"]
        with pytest.raises(FormInvalid) as bad:
            item_of(FlowForm(targets="+31612340002, soon"), {}, None, staff=False)
        assert list(bad.value.problems.by_field) == ["targets"]


class TestAdvanced:
    @pytest.mark.parametrize(("advanced", "staff", "message"), [
        ({"route": {}}, False, "route: set in the fields above; expected the number's other keys"),
        ({"customer": "bolt"}, True, "customer: not changed here; expected the number's other keys"),
        ({"max_calls": 50}, False, "max_calls: set by our staff; ask them to change it"),
        (["hours"], False, "expected keys and their values (a YAML mapping), e.g. hours: {mon-fri: 08:00-17:00}"),
    ])
    def test_keys_that_belong_elsewhere_are_refused(self, advanced: Any, staff: bool, message: str) -> None:
        with pytest.raises(FormInvalid) as bad:
            item_of(FlowForm(targets="+31612340001"), {}, advanced, staff=staff)
        assert bad.value.problems.by_field == {"advanced": [message]}

    def test_staff_may_set_the_limits(self) -> None:
        built = item_of(FlowForm(targets="+31612340001"), {}, {"max_calls": 50}, staff=True)
        assert built.item["max_calls"] == 50

    def test_yaml_that_does_not_parse_says_where(self) -> None:
        value, problem = flow_text.parse_advanced("hours:\n  mon: [08:00\n")
        assert value is None and problem is not None and problem.startswith("line 3: not valid YAML")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        yaml_loader.check(text, "change")
    return refused.value.problems


class TestProblemsNextToTheirField:
    @pytest.mark.parametrize(("key", "field"), [
        ("numbers[3].route.targets[1]", "targets"), ("numbers[3].route.targets", "targets"),
        ("numbers[3].route.strategy", "strategy"), ("numbers[3].route.ring_seconds", "ring_seconds"),
        ("numbers[3].route.no_answer.queue", "no_answer"), ("numbers[3].route.queue", "queue"),
        ("numbers[3].route", "answer"), ("numbers[3].announcement", "announcement"),
        ("numbers[3].blocked_callers[0]", "blocked_callers"), ("numbers[3].recording", "recording"),
        ("numbers[3].hours.mon", "advanced"), ("numbers[3].closed", "advanced"), ("numbers[3]", TOP),
        ("numbers[3].type", TOP),
    ])
    def test_a_key_of_the_edited_number_names_its_field(self, key: str, field: str) -> None:
        found = field_of(key, 3, "targets")
        assert found is not None and found[0] == field

    @pytest.mark.parametrize("key", ["numbers[30].route", "numbers[4]", "customers[0].voicemail", "queues[0]"])
    def test_another_number_s_key_names_no_field(self, key: str) -> None:
        assert field_of(key, 3, "targets") is None

    def test_a_premium_target_is_refused_next_to_its_line_with_the_loader_s_message(self) -> None:
        view = shown(item(0), staff=False)
        form = replace(view.form, targets="+31612340001, 15 s\n\n+319001234567", advanced=flow_text.dump(view.advanced))
        built = item_of(form, view.fixed, advanced_of(form), staff=False)
        text = flow_text.with_item(CONFIG, 0, built.item)
        assert text is not None
        placed = place(problems_of(text), 0, built, form.answer, staff=False)
        assert list(placed.by_field) == ["targets"]
        [message] = placed.by_field["targets"]
        assert message.startswith("line 3: +319001234567 is a premium-rate number: refused to prevent toll fraud")

    def test_a_bad_ring_time_and_bad_hours_go_to_their_fields(self) -> None:
        view = shown(item(0), staff=False)
        form = replace(view.form, ring_seconds="500", advanced="hours:\n  mon-fri: \"17:00-08:00\"\n"
                                                             "outside_hours: {voicemail: true}\n")
        built = item_of(form, view.fixed, advanced_of(form), staff=False)
        text = flow_text.with_item(CONFIG, 0, built.item)
        assert text is not None
        placed = place(problems_of(text), 0, built, form.answer, staff=False)
        assert placed.by_field["ring_seconds"] == ["route.ring_seconds: expected whole seconds from 1 to 120"]
        assert [m.split(":")[0] for m in placed.by_field["advanced"]] == ["hours.mon-fri"]

    def test_a_problem_elsewhere_is_at_the_top_without_details_for_a_customer(self) -> None:
        message = "change:40: numbers[2].route.queue: bolt-desk is full of secrets"
        assert place([message], 0, Built({}), "targets", staff=False).by_field[TOP] == [
            "this change does not fit the rest of the configuration; nothing was saved. Our staff can tell you more."]
        assert place([message], 0, Built({}), "targets", staff=True).by_field[TOP] == [
            "numbers[2].route.queue: bolt-desk is full of secrets"]


class TestReplacingTheItem:
    def test_only_the_item_changes_and_the_comments_after_it_stay(self) -> None:
        view = shown(item(0), staff=False)
        form = replace(view.form, targets="+31612340009", strategy="simultaneous", ring_seconds="",
                       advanced=flow_text.dump(view.advanced))
        built = item_of(form, view.fixed, advanced_of(form), staff=False)
        text = flow_text.with_item(CONFIG, 0, built.item)
        assert text is not None
        yaml_loader.check(text, "change")
        assert text.startswith("# the test's configuration\ncustomers:")
        assert "  # announcements from here on\n  - number: \"+31201110002\"" in text
        assert text.endswith(CONFIG[CONFIG.index("  - number: \"+31201110002\""):])
        new = yaml.safe_load(text)
        assert new["numbers"][0]["route"]["targets"] == ["+31612340009"] and new["numbers"][1:] == yaml.safe_load(
            CONFIG)["numbers"][1:]

    def test_the_number_is_found_however_it_is_written(self) -> None:
        root = flow_text.load(CONFIG.replace('"+31209990001"', '"+31 20 999 0001"'))
        assert flow_text.number_index(root, "+31209990001") == 2
        assert flow_text.number_index(root, "+31209990009") is None

    def test_a_text_with_anchors_is_not_cut(self) -> None:
        text = CONFIG.replace("    route: {queue: bolt-desk}", "    route: &r {queue: bolt-desk}")
        assert flow_text.with_item(text, 0, item(0)) is None


class TestCustomerSettings:
    def test_the_customer_s_entry_and_queues_and_nothing_of_another(self) -> None:
        root = yaml.safe_load(CONFIG)
        assert customer_settings(root, "bolt") == {"customer": [{"id": "bolt", "name": "Bolt BV"}],
                                                   "queues": [root["queues"][0]]}
        assert customer_settings(root, "acme")["queues"] == []


class TestTheChangeStored:
    def test_the_item_s_change_is_what_the_store_computes_for_the_whole_text(self) -> None:
        from ari_app.config_versions import number_changes
        from console.flow_pages import _item_changes

        view = shown(item(0), staff=True)
        form = replace(view.form, targets="+31612340009, 15 s", advanced=flow_text.dump(view.advanced))
        built = item_of(form, view.fixed, advanced_of(form), staff=True)
        text = flow_text.with_item(CONFIG, 0, built.item)
        assert text is not None
        whole = number_changes(CONFIG, text)
        assert [c.number for c in whole] == ["+31201110001"]
        assert _item_changes(item(0), built.item) == whole
