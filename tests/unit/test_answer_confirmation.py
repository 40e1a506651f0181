"""Answer confirmation (issue 18, decision 0031): a phone that must confirm takes a call only once
the person pressed 1, so a mobile's voicemail that answers does not end the route.

The dialplan does the asking (dialplan/extensions.conf, fairline-confirm); these tests cover what
fairline decides: which phones confirm, how they are dialled, and what the CDR says.
tests/e2e/test_answer_confirmation.py places the real calls.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ari_app.ari.event_parser import BadEvent, parse as parse_event
from ari_app.config.yaml_loader import load
from ari_app.core.events import TargetConfirmed, TargetDialed
from ari_app.core.flow import Dial, Phase, QueueConnected, step
from ari_app.core.model import (
    AnswerConfirmation,
    Config,
    Customer,
    Number,
    Queue,
    Route,
    Strategy,
    Target,
    TargetKind,
    ToQueue,
)
from ari_app.core.queueing import QueueSpec, RingStrategy
from rating.core.cdr import RatedCdr, rate_record
from rating.core.tariff import DEFAULT_RATES, NumberType
from tests.unit.test_flow import (
    CALL_ID,
    DESK,
    answered,
    MOBILE,
    at,
    continued,
    destroyed,
    returned,
    run,
    started,
    target_answered,
    target_dialed,
    the_cdr,
)
from tests.unit.test_routes import problems, routed, write

NUMBER = "+31201234501"
SEQUENTIAL = "+31201234502"
QUEUED = "+31201234503"
AGENT = "+31612345690"


def config(confirmation: AnswerConfirmation = AnswerConfirmation(), **queue: bool | None) -> Config:
    return Config(
        customers={"acme": Customer("acme", "Acme BV")},
        numbers={
            NUMBER: Number(NUMBER, "acme", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, (DESK, MOBILE))),
            SEQUENTIAL: Number(SEQUENTIAL, "acme", NumberType.LOCAL, route=Route(Strategy.SEQUENTIAL, (MOBILE, DESK))),
            QUEUED: Number(QUEUED, "acme", NumberType.LOCAL, route=Route(Strategy.SIMULTANEOUS, (), ToQueue("help"))),
        },
        queues={"help": Queue("acme", QueueSpec("help", (AGENT,), RingStrategy.RINGALL, 15, 5),
                              confirm=queue.get("confirm"))},
        confirmation=confirmation,
    )


def confirmed(target: Target, yes: bool, s: float = 4.0) -> TargetConfirmed:
    return TargetConfirmed(CALL_ID, at(s), target.e164, yes)


class TestWhoConfirms:
    def test_by_default_mobiles_confirm_and_landlines_do_not(self) -> None:
        default = AnswerConfirmation()

        assert (default.applies(MOBILE), default.applies(DESK)) == (True, False)

    @pytest.mark.parametrize(("mobiles", "landlines"), [(True, True), (False, False), (False, True)])
    def test_the_configuration_sets_each_kinds_default(self, mobiles: bool, landlines: bool) -> None:
        chosen = AnswerConfirmation(mobiles=mobiles, landlines=landlines)

        assert (chosen.applies(MOBILE), chosen.applies(DESK)) == (mobiles, landlines)

    @pytest.mark.parametrize("confirm", [True, False])
    def test_a_targets_own_choice_wins_over_its_kinds_default(self, confirm: bool) -> None:
        for target in (MOBILE, DESK):
            assert AnswerConfirmation().applies(dataclasses.replace(target, confirm=confirm)) is confirm

    def test_a_queues_choice_applies_to_its_agents(self) -> None:
        assert config().agent_confirms("help", AGENT)
        assert not config(confirm=False).agent_confirms("help", AGENT)
        assert config(AnswerConfirmation(mobiles=False), confirm=True).agent_confirms("help", AGENT)


class TestDial:
    def test_a_phone_that_confirms_is_rung_through_fairline_confirm_with_time_for_the_prompt(self) -> None:
        _, asked = run([started(NUMBER)], config())

        assert asked == [Dial("PJSIP/+31301234567@carrier-out&Local/+31612345601-20@fairline-confirm/n,50",
                              follow=True)]
        assert asked[0].extension == asked[0].dial  # an extension of fairline-dial, whose pattern allows it

    def test_one_confirming_phone_fits_an_extension_and_the_dialplans_pattern(self) -> None:
        _, asked = run([started(SEQUENTIAL)], config())

        assert asked == [Dial("Local/+31612345601-20@fairline-confirm/n,50", follow=True)]
        assert asked[0].extension == "Local/+31612345601-20@fairline-confirm/n,50"

    def test_without_confirmation_the_phones_are_dialled_straight(self) -> None:
        _, asked = run([started(NUMBER)], config(AnswerConfirmation(mobiles=False)))

        assert asked == [Dial("PJSIP/+31301234567@carrier-out&PJSIP/+31612345601@carrier-out,20", follow=True)]

    def test_two_legs_within_79_characters_are_an_extension(self) -> None:
        dial = "Local/+31612345601-20@fairline-confirm/n&PJSIP/+31612345602@carrier-out,50"

        assert Dial(dial, False).extension == dial

    @pytest.mark.parametrize("dial", [
        "Local/+31612345601@fairline-confirm/n,20",  # no ring time
        "Local/+31612345601-20@other/n,20",  # another context
        "Local/+31612345601-20@fairline-confirm,20",  # optimised away: fairline would lose the leg
        "Local/+31612345601-20@fairline-confirm/n,20,U(x)",  # Dial() options
    ])
    def test_anything_else_is_not_an_extension_of_fairline_dial(self, dial: str) -> None:
        assert Dial(dial, False).extension is None


class TestOutcome:
    def test_a_voicemail_that_answers_without_pressing_1_does_not_take_the_call_the_next_phone_does(self) -> None:
        """Sequential: the mobile's voicemail answers and says nothing; its leg ends unanswered; the desk answers."""
        call, asked = run([started(SEQUENTIAL), continued(), target_dialed(MOBILE), confirmed(MOBILE, False),
                           returned("NOANSWER", 30)], config())
        assert asked[-1] == Dial("PJSIP/+31301234567@carrier-out,15", follow=False)

        call, asked = run([target_dialed(DESK, 31), target_answered(DESK, 33), answered(33), returned("ANSWER", 90),
                           destroyed(16, 90.1)], config(), call)

        cdr = the_cdr(asked)
        assert (cdr.answered_target, cdr.answer_confirmed, cdr.unconfirmed_answers) == (DESK.e164, None, 1)

    def test_a_phone_that_pressed_1_is_recorded_as_confirmed(self) -> None:
        _, asked = run([started(SEQUENTIAL), continued(), target_dialed(MOBILE), confirmed(MOBILE, True),
                        target_answered(MOBILE, 5), answered(5), returned("ANSWER", 60), destroyed(16, 60.1)], config())

        cdr = the_cdr(asked)
        assert (cdr.answered_target, cdr.answer_confirmed, cdr.unconfirmed_answers) == (MOBILE.e164, True, 0)

    def test_a_lost_confirmation_event_does_not_lose_the_fact_the_leg_answered_only_after_1(self) -> None:
        _, asked = run([started(SEQUENTIAL), continued(), target_dialed(MOBILE), target_answered(MOBILE, 5),
                        answered(5), returned("ANSWER", 60), destroyed(16, 60.1)], config())

        assert the_cdr(asked).answer_confirmed is True

    def test_nobody_confirmed_the_call_is_not_answered(self) -> None:
        call, _ = run([started(SEQUENTIAL), continued(), target_dialed(MOBILE), confirmed(MOBILE, False),
                       returned("NOANSWER", 30), target_dialed(DESK, 31), returned("NOANSWER", 46)], config())

        assert call.data.answered_at is None
        assert (call.data.unconfirmed, call.phase) == (1, Phase.ANNOUNCING)

    def test_a_queue_agent_who_confirmed_is_recorded_so(self) -> None:
        call, _ = run([started(QUEUED)], config())
        assert call.phase is Phase.QUEUED

        connected, _ = step(call, QueueConnected(CALL_ID, at(10), AGENT, "agent-leg"), config())

        assert connected.data.answer_confirmed is True
        assert step(call, QueueConnected(CALL_ID, at(10), AGENT, "agent-leg"),
                    config(confirm=False))[0].data.answer_confirmed is None


class TestCdr:
    def test_the_confirmation_survives_the_spool(self) -> None:
        _, asked = run([started(SEQUENTIAL), continued(), target_dialed(MOBILE), confirmed(MOBILE, False),
                        confirmed(MOBILE, True, 9), target_answered(MOBILE, 10), answered(10), returned("ANSWER", 60),
                        destroyed(16, 60.1)], config())
        rated = rate_record(the_cdr(asked), "acme", NumberType.LOCAL, DEFAULT_RATES)

        back = RatedCdr.from_json(json.loads(json.dumps(rated.to_json())))

        assert back == rated
        assert (back.call.answer_confirmed, back.call.unconfirmed_answers) == (True, 1)

    def test_a_spool_line_from_before_confirmation_reads_as_not_asked(self) -> None:
        _, asked = run([started(SEQUENTIAL), continued(), target_dialed(MOBILE), target_answered(MOBILE, 5),
                        answered(5), returned("ANSWER", 60), destroyed(16, 60.1)], config())
        old = rate_record(the_cdr(asked), "acme", NumberType.LOCAL, DEFAULT_RATES).to_json()
        del old["answer_confirmed"], old["unconfirmed_answers"]

        call = RatedCdr.from_json(old).call

        assert (call.answer_confirmed, call.unconfirmed_answers) == (None, 0)


class TestEvents:
    def varset(self, variable: str, value: str) -> str:
        return json.dumps({"type": "ChannelVarset", "timestamp": "2026-12-07T10:00:00.000+0000",
                           "variable": variable, "value": value, "channel": {"id": "c1"}})

    @pytest.mark.parametrize(("variable", "yes"), [("FAIRLINE_CONFIRMED", True), ("FAIRLINE_UNCONFIRMED", False)])
    def test_the_dialplans_variables_become_confirmations(self, variable: str, yes: bool) -> None:
        event = parse_event(self.varset(variable, "+31612345601"))

        assert isinstance(event, TargetConfirmed)
        assert (event.channel_id, event.target, event.confirmed) == ("c1", "+31612345601", yes)

    def test_other_variables_are_ignored(self) -> None:
        assert type(parse_event(self.varset("FAIRLINE_DID", "+31201234501"))).__name__ == "Ignored"

    @pytest.mark.parametrize("value", ["", "31612345601", "+3161234560x", "+" + "1" * 16])
    def test_a_value_that_is_not_a_phone_is_a_bad_event(self, value: str) -> None:
        with pytest.raises(BadEvent, match="value: expected the E.164 number"):
            parse_event(self.varset("FAIRLINE_CONFIRMED", value))

    def test_a_leg_through_fairline_confirm_names_its_phone(self) -> None:
        event = parse_event(json.dumps({
            "type": "Dial", "timestamp": "2026-12-07T10:00:00.000+0000", "dialstatus": "",
            "dialstring": "+31612345601-20@fairline-confirm/n", "caller": {"id": "c1"}, "peer": {"id": "p1"}}))

        assert event == TargetDialed("c1", event.at, "p1", "+31612345601")  # type: ignore[union-attr]


class TestConfiguration:
    def test_defaults_mobiles_confirm(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, routed('targets: ["+31612345678", "+31201234599"]\n')))
        route = cfg.numbers["+31201234567"].route
        assert route is not None

        assert [cfg.confirms(t) for t in route.targets] == [True, False]

    def test_route_target_and_top_level_keys(self, tmp_path: Path) -> None:
        text = ("answer_confirmation: {mobiles: false, landlines: true}\n"
                + routed('confirm: true\ntargets:\n  - "+31612345678"\n'
                         '  - {number: "+31201234599", confirm: false}\n'))
        cfg = load(write(tmp_path, text))
        route = cfg.numbers["+31201234567"].route
        assert route is not None

        assert cfg.confirmation == AnswerConfirmation(mobiles=False, landlines=True)
        assert [(t.confirm, cfg.confirms(t)) for t in route.targets] == [(True, True), (False, False)]

    def test_a_queue_may_say_whether_its_agents_confirm(self, tmp_path: Path) -> None:
        text = routed('queue: help\n') + ("queues:\n  - name: help\n    customer: acme\n"
                                          '    agents: ["+31612345690"]\n    confirm: false\n')
        cfg = load(write(tmp_path, text))

        assert cfg.queues["help"].confirm is False
        assert not cfg.agent_confirms("help", "+31612345690")

    @pytest.mark.parametrize(("text", "line", "key", "says"), [
        (routed('confirm: yes\ntargets: ["+31612345678"]\n'), 6, "numbers[0].route.confirm", "expected true or false"),
        (routed('targets:\n  - {number: "+31612345678", confirm: 1}\n'), 7, "numbers[0].route.targets[0].confirm",
         "expected true or false"),
        ("answer_confirmation: {mobile: false}\n" + routed('targets: ["+31612345678"]\n'), 1,
         "answer_confirmation.mobile", "unknown key; expected one of landlines, mobiles"),
        ("answer_confirmation: true\n" + routed('targets: ["+31612345678"]\n'), 1, "answer_confirmation",
         "expected a mapping with mobiles and landlines"),
        ("answer_confirmation: {landlines: maybe}\n" + routed('targets: ["+31612345678"]\n'), 1,
         "answer_confirmation.landlines", "expected true or false"),
    ])
    def test_a_bad_value_names_file_line_and_key(self, tmp_path: Path, text: str, line: int, key: str,
                                                 says: str) -> None:
        path = write(tmp_path, text)

        [problem] = problems(path)

        assert problem.startswith(f"{path}:{line}: {key}: "), problem
        assert says in problem

