"""Queues in the configuration: parsed into the queue core's spec, owned by a customer, every problem by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.config.yaml_loader import load
from ari_app.core.model import Announce, Config, ForwardTo, Queue, Target, TargetKind, ToQueue
from ari_app.errors import ConfigError
from ari_app.core.queueing import QueueSpec, RingStrategy

# The line numbers in the comments are those of the file; the tables below rely on them.
VALID = """\
customers:
  - id: acme
    name: Acme BV
  - id: bakery
    name: Brussels Bakery
numbers:
  - number: "+31201234567"
    customer: acme
    type: local
    route:
      targets: ["+31612345678"]
      no_answer: {queue: support}
  - number: "+31201230006"
    customer: acme
    type: local
    announcement: hello-world
queues:
  - name: support
    customer: acme
    agents: ["+31612340071", "+31201230971"]
    strategy: roundrobin
    ring_seconds: 10
    wrapup_seconds: 3
    max_wait_seconds: 45
    position_every_seconds: 30
    overflow: {number: "+31201230006"}
"""
# line 12: no_answer.queue   line 18: name   line 19: customer   line 20: agents   line 24: max_wait_seconds
# line 26: overflow

Q = "queues[0]"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fairline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(*changes: tuple[str, str]) -> str:
    """VALID with each (old, new) replaced once; the old text must be there."""
    text = VALID
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def problems(path: Path) -> list[tuple[int, str, str]]:
    """LINE, KEY and what was expected of each problem `load` reports, in the order reported."""
    with pytest.raises(ConfigError) as caught:
        load(path)
    found = []
    for problem in caught.value.problems:
        file_line, key, says = problem.split(": ", 2)
        file, line = file_line.rsplit(":", 1)
        assert file == str(path)
        found.append((int(line), key, says))
    return found


class TestQueueLoads:
    """A valid queue becomes a `Queue`: its owner, the core's `QueueSpec` and its overflow."""

    def test_valid_queue_gives_the_core_spec_and_the_overflow(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, VALID))

        assert dict(cfg.queues) == {"support": Queue(
            "acme",
            QueueSpec("support", ("+31612340071", "+31201230971"), RingStrategy.ROUNDROBIN, ring_seconds=10,
                      wrapup_seconds=3, max_wait_seconds=45, position_every_seconds=30),
            ForwardTo("+31201230006"),
        )}

    def test_no_answer_to_a_queue_of_the_same_customer_is_accepted(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, VALID))

        route = cfg.numbers["+31201234567"].route
        assert route is not None and route.no_answer == ToQueue("support")

    def test_route_may_send_callers_straight_to_a_queue(self, tmp_path: Path) -> None:
        """`route: {queue: NAME}`: nothing rings before the queue, whose agents the core rings."""
        cfg = load(write(tmp_path, edited(('      targets: ["+31612345678"]\n      no_answer: {queue: support}',
                                           "      queue: support"))))

        route = cfg.numbers["+31201234567"].route
        assert route is not None and route.targets == () and route.no_answer == ToQueue("support")

    def test_queue_without_optional_keys_takes_the_defaults(self, tmp_path: Path) -> None:
        text = VALID.split("    strategy: roundrobin\n")[0]
        cfg = load(write(tmp_path, text))

        assert cfg.queues["support"] == Queue(
            "acme", QueueSpec("support", ("+31612340071", "+31201230971"), RingStrategy.RINGALL, ring_seconds=15,
                              wrapup_seconds=5, max_wait_seconds=60, position_every_seconds=20),
            Announce("vm-nobodyavail"))

    def test_queue_nobody_sends_calls_to_is_valid(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, edited(("      no_answer: {queue: support}\n", ""))))

        assert list(cfg.queues) == ["support"]

    def test_overflow_may_be_an_announcement(self, tmp_path: Path) -> None:
        text = edited(('overflow: {number: "+31201230006"}', "overflow: {announcement: custom/closed}"))
        cfg = load(write(tmp_path, text))

        assert cfg.queues["support"].overflow == Announce("custom/closed")

    def test_overflow_may_ring_a_phone(self, tmp_path: Path) -> None:
        text = edited(('overflow: {number: "+31201230006"}', 'overflow: {target: "+31612340099"}'))
        cfg = load(write(tmp_path, text))

        assert cfg.queues["support"].overflow == Target("+31612340099", TargetKind.MOBILE, 20)

    def test_agents_abroad_are_accepted_for_a_number_with_international_forwarding(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, edited(('"+31612340071", "+31201230971"', '"+32470123456"'),
                                          ("    type: local\n    route:", "    type: local\n"
                                                                          "    international_forwarding: true\n"
                                                                          "    route:"))))

        assert cfg.queues["support"].spec.agents == ("+32470123456",)

    def test_config_built_in_code_has_no_queues(self) -> None:
        assert dict(Config(customers={}, numbers={}).queues) == {}


def _queue_problem_cases() -> list[object]:
    agent = f"{Q}.agents[0]"
    return [
        pytest.param(("max_wait_seconds: 45", "max_wait_seconds: 90"),
                     [(24, f"{Q}.max_wait_seconds", "queues may not keep callers waiting for more than one minute")],
                     id="max-wait-above-the-policy"),
        pytest.param(("max_wait_seconds: 45", "max_wait_seconds: 0"),
                     [(24, f"{Q}.max_wait_seconds", "expected whole seconds from 1")], id="max-wait-zero"),
        pytest.param(("{queue: support}", "{queue: sales}"),
                     [(12, "numbers[0].route.no_answer.queue", "sales is not a queue in 'queues'")],
                     id="unknown-queue"),
        pytest.param(("{queue: support}", "{queue: Support!}"),
                     [(12, "numbers[0].route.no_answer.queue", "expected the name of one of the customer's queues")],
                     id="queue-name-malformed-in-no-answer"),
        pytest.param(("      no_answer: {queue: support}", "      queue: support"),
                     [(11, "numbers[0].route.targets", "a route with queue sends every caller straight to the queue")],
                     id="queue-route-with-targets"),
        pytest.param(('      targets: ["+31612345678"]\n      no_answer: {queue: support}', "      queue: sales"),
                     [(11, "numbers[0].route.queue", "sales is not a queue in 'queues'")],
                     id="queue-route-to-unknown-queue"),
        pytest.param(('      targets: ["+31612345678"]\n      no_answer: {queue: support}', "      queue: [support]"),
                     [(11, "numbers[0].route.queue", "expected the name of one of the customer's queues")],
                     id="queue-route-name-not-a-name"),
        pytest.param(("    customer: acme\n    agents", "    customer: bakery\n    agents"),
                     [(12, "numbers[0].route.no_answer.queue", "queue support belongs to customer bakery"),
                      (26, f"{Q}.overflow.number", "+31201230006 belongs to customer acme")],
                     id="another-customers-queue"),
        pytest.param(("    customer: acme\n    agents", "    customer: acne\n    agents"),
                     [(19, f"{Q}.customer", "'acne' is not a customer in 'customers'")], id="unknown-customer"),
        pytest.param(("- name: support", "- name: Support"),
                     [(12, "numbers[0].route.no_answer.queue", "support is not a queue in 'queues'"),
                      (18, f"{Q}.name", "expected a name of a-z")], id="name-malformed"),
        pytest.param(('"+31612340071", "+31201230971"', '"+319001234567"'),
                     [(20, agent, "+319001234567 is a premium-rate number")], id="agent-premium"),
        pytest.param(('"+31612340071", "+31201230971"', '"0612340071"'),
                     [(20, agent, "expected an E.164 number in quotes")], id="agent-national-format"),
        pytest.param(('"+31612340071", "+31201230971"', '"+32470123456"'),
                     [(20, agent, "+32470123456 is in BE, +31201234567 (which sends calls to queue support) in NL")],
                     id="agent-abroad"),
        pytest.param(('"+31612340071", "+31201230971"', '"+31201230006"'),
                     [(20, agent, "+31201230006 is a number fairline serves")], id="agent-served-number"),
        pytest.param(('"+31612340071", "+31201230971"', '"+31612340071", "+31 6 1234 0071"'),
                     [(20, f"{Q}.agents[1]", "+31612340071 is already queues[0].agents[0]")], id="agent-twice"),
        pytest.param(('agents: ["+31612340071", "+31201230971"]', "agents: []"),
                     [(20, f"{Q}.agents", "expected a list of at least one")], id="agents-empty"),
        pytest.param(("strategy: roundrobin", "strategy: random"),
                     [(21, f"{Q}.strategy", "expected one of ringall, roundrobin, longestidle")], id="strategy"),
        pytest.param(("ring_seconds: 10", "ring_seconds: 61"),
                     [(22, f"{Q}.ring_seconds", "expected whole seconds from 1 to 60")], id="ring-above-60"),
        pytest.param(("wrapup_seconds: 3", "wrapup_seconds: 601"),
                     [(23, f"{Q}.wrapup_seconds", "expected whole seconds from 0 to 600")], id="wrapup-above-600"),
        pytest.param(('overflow: {number: "+31201230006"}', 'overflow: {number: "+31201230007"}'),
                     [(26, f"{Q}.overflow.number", "+31201230007 is not a number in 'numbers'")],
                     id="overflow-to-unknown-number"),
        pytest.param(('overflow: {number: "+31201230006"}', "overflow: {queue: support}"),
                     [(26, f"{Q}.overflow.queue", "unknown key; expected one of announcement, number, target")],
                     id="overflow-to-a-queue"),
        pytest.param(('overflow: {number: "+31201230006"}', 'overflow: {target: "+32470123456"}'),
                     [(26, f"{Q}.overflow.target", "+32470123456 is in BE, +31201234567 (which sends calls to "
                                                   "queue support) in NL")],
                     id="overflow-phone-abroad"),
        pytest.param(('overflow: {number: "+31201230006"}', 'overflow: {target: "+319001234567"}'),
                     [(26, f"{Q}.overflow.target", "+319001234567 is a premium-rate number: refused to prevent "
                                                   "toll fraud")],
                     id="overflow-phone-premium-rate"),
        pytest.param(('overflow: {number: "+31201230006"}', 'overflow: {target: "+31201230006"}'),
                     [(26, f"{Q}.overflow.target", "+31201230006 is a number fairline serves")],
                     id="overflow-phone-is-a-served-number"),
        pytest.param(("    overflow:", "    overfow:"),
                     [(26, f"{Q}.overfow", "unknown key")], id="unknown-key"),
    ]


class TestQueueProblems:
    """Each queue problem reads FILE:LINE: KEY: what was expected."""

    @pytest.mark.parametrize(("change", "expected"), _queue_problem_cases())
    def test_problem_names_line_and_key(self, tmp_path: Path, change: tuple[str, str],
                                        expected: list[tuple[int, str, str]]) -> None:
        found = problems(write(tmp_path, edited(change)))

        assert [(line, key) for line, key, _ in found] == [(line, key) for line, key, _ in expected]
        for (_, _, says), (_, _, part) in zip(found, expected):
            assert part in says

    def test_max_wait_above_the_policy_cites_it(self, tmp_path: Path) -> None:
        [(_, _, says)] = problems(write(tmp_path, edited(("max_wait_seconds: 45", "max_wait_seconds: 90"))))

        assert says == ("queue support: max_wait_seconds 90 is refused: queues may not keep callers waiting for "
                        "more than one minute (60 s); set it to 60 or less and configure an overflow")

    def test_duplicate_name_is_reported_at_the_later_queue(self, tmp_path: Path) -> None:
        text = VALID + '  - name: support\n    customer: acme\n    agents: ["+31612340072"]\n'  # 27

        assert problems(write(tmp_path, text)) == [
            (27, "queues[1].name", "queue support is already queues[0]; expected each name once")]

    def test_loop_through_a_queue_overflow_is_refused(self, tmp_path: Path) -> None:
        text = edited(("    announcement: hello-world\n",
                       '    route:\n      targets: ["+31612345679"]\n      no_answer: {number: "+31201234567"}\n'))

        [(line, key, says)] = problems(write(tmp_path, text))

        assert (line, key) == (12, "numbers[0].route.no_answer.queue")
        assert says.startswith("forwarding loop +31201234567 -> queue support -> +31201230006 -> +31201234567: ")

    def test_every_problem_is_reported_in_one_run(self, tmp_path: Path) -> None:
        text = edited(("{queue: support}", "{queue: sales}"),
                      ('"+31612340071", "+31201230971"', '"+319001234567", "+31201230971"'),
                      ("ring_seconds: 10", "ring_seconds: 0"),
                      ("max_wait_seconds: 45", "max_wait_seconds: 90"),
                      ('overflow: {number: "+31201230006"}', 'overflow: {number: "+31201230007"}'))
        text += '  - name: support\n    customer: acme\n    agents: ["+31612340072"]\n'  # 27

        assert [(line, key) for line, key, _ in problems(write(tmp_path, text))] == [
            (12, "numbers[0].route.no_answer.queue"),
            (20, f"{Q}.agents[0]"),
            (22, f"{Q}.ring_seconds"),
            (24, f"{Q}.max_wait_seconds"),
            (26, f"{Q}.overflow.number"),
            (27, "queues[1].name"),
        ]
