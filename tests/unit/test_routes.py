"""Routes, targets, forwarding and opening hours in the configuration: parsed into frozen values, every problem named."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from phonenumbers import PhoneNumberType

from ari_app.config.yaml_loader import load
from ari_app.core.model import (
    DAYS,
    REFUSED_TARGETS,
    TARGET_KINDS,
    Announce,
    Config,
    ForwardTo,
    Number,
    OpeningHours,
    Route,
    Strategy,
    Target,
    TargetKind,
    ToQueue,
    Window,
)
from ari_app.errors import ConfigError
from rating.core.tariff import NumberType

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NUMBER = "+31201234567"

# Two customers, after the numbers so a case's line numbers are those of the file.
CUSTOMERS = "customers:\n  - id: acme\n    name: Acme BV\n  - id: bakery\n    name: Brussels Bakery\n"

# Lines 1-4: the first number, up to where its route goes.
HEAD = f'numbers:\n  - number: "{NUMBER}"\n    customer: acme\n    type: local\n'


def routed(route: str, more: str = "", *, head: str = HEAD) -> str:
    """A file whose first number has `route:` on line 5 and the `route` text from line 6; `more` numbers after it."""
    return head + "    route:\n" + textwrap.indent(route, "      ") + more + CUSTOMERS


def entry(number: str, body: str, customer: str = "acme") -> str:
    """Another item of `numbers`: `body` holds its keys, unindented."""
    return (f'  - number: "{number}"\n    customer: {customer}\n    type: local\n'
            + textwrap.indent(body, "    "))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fairline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """The problems `load` reports for `path` (the test fails if it reports none)."""
    with pytest.raises(ConfigError) as caught:
        load(path)
    return caught.value.problems


def where(found: list[str]) -> list[list[str]]:
    """FILE:LINE and KEY of each problem, in the order reported."""
    return [p.split(": ", 2)[:2] for p in found]


def route_of(tmp_path: Path, text: str, number: str = NUMBER) -> Route:
    route = load(write(tmp_path, text)).numbers[number].route
    assert route is not None
    return route


def mobile(e164: str, ring: int = 20) -> Target:
    return Target(e164, TargetKind.MOBILE, ring)


def fixed(e164: str, ring: int = 20) -> Target:
    return Target(e164, TargetKind.FIXED, ring)


class TestRouteLoads:
    """A valid route becomes a frozen Route: strategy, targets with kind and ring time, what happens on no answer."""

    def test_plain_targets_ring_at_once_for_twenty_seconds_then_nobody_available(self, tmp_path: Path) -> None:
        """The defaults: simultaneous, 20 s, the vm-nobodyavail announcement."""
        route = route_of(tmp_path, routed('targets: ["+31612345678", "+31201234599"]\n'))

        assert route == Route(Strategy.SIMULTANEOUS, (mobile("+31612345678"), fixed("+31201234599")),
                              Announce("vm-nobodyavail"))

    def test_sequential_route_keeps_target_order_and_each_ring_time(self, tmp_path: Path) -> None:
        route = route_of(tmp_path, routed(
            "strategy: sequential\n"
            "ring_seconds: 25\n"
            "targets:\n"
            '  - {number: "+31201234599", ring_seconds: 15}\n'
            '  - "+31612345678"\n'
            '  - number: "+31612345679"\n'
            "    ring_seconds: 120\n"
            "no_answer: {announcement: custom/closed}\n"))

        assert route == Route(Strategy.SEQUENTIAL,
                              (fixed("+31201234599", 15), mobile("+31612345678", 25), mobile("+31612345679", 120)),
                              Announce("custom/closed"))

    def test_route_ring_seconds_applies_to_every_target_of_a_simultaneous_route(self, tmp_path: Path) -> None:
        route = route_of(tmp_path, routed('strategy: simultaneous\nring_seconds: 1\ntargets: ["+31612345678"]\n'))

        assert route.targets == (mobile("+31612345678", 1),)

    def test_target_written_with_spaces_is_stored_in_e164(self, tmp_path: Path) -> None:
        route = route_of(tmp_path, routed('targets: ["+31 6 1234 5678", "+31-20-123-4599"]\n'))

        assert [t.e164 for t in route.targets] == ["+31612345678", "+31201234599"]

    def test_unquoted_target_keeps_its_digits(self, tmp_path: Path) -> None:
        """YAML would read +31612345678 as an integer; the file's text is used."""
        route = route_of(tmp_path, routed("targets:\n  - +31612345678\n"))

        assert route.targets == (mobile("+31612345678"),)

    def test_no_answer_forwards_to_another_of_the_customers_numbers(self, tmp_path: Path) -> None:
        route = route_of(tmp_path, routed('targets: ["+31612345678"]\nno_answer: {number: "+31 20 123 4568"}\n',
                                          entry("+31201234568", "announcement: beep\n")))

        assert route.no_answer == ForwardTo("+31201234568")

    def test_number_forwarded_to_may_be_announcement_only(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, routed('targets: ["+31612345678"]\nno_answer: {number: "+31201234568"}\n',
                                          entry("+31201234568", "announcement: beep\n"))))

        assert cfg.numbers["+31201234568"].route is None

    def test_routed_number_has_no_announcement_and_no_hours(self, tmp_path: Path) -> None:
        number = load(write(tmp_path, routed('targets: ["+31612345678"]\n'))).numbers[NUMBER]

        assert (number.announcement, number.hours, number.outside_hours, number.international_forwarding) == (
            None, None, None, False)

    def test_route_without_hours_is_in_force_at_any_time(self, tmp_path: Path) -> None:
        number = load(write(tmp_path, routed('targets: ["+31612345678"]\n'))).numbers[NUMBER]

        for instant in (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 12, 25, 23, 59, tzinfo=UTC)):
            assert number.route_at(instant) == number.route

    def test_loaded_route_cannot_be_changed(self, tmp_path: Path) -> None:
        route = route_of(tmp_path, routed('targets: ["+31612345678"]\n'))

        with pytest.raises(AttributeError):
            route.targets = ()  # type: ignore[misc]
        assert isinstance(route.targets, tuple)


class TestTargetKinds:
    """Landlines and mobiles may be rung; what phonenumbers calls anything else is refused, toll fraud first."""

    @pytest.mark.parametrize(
        ("number", "target", "kind"),
        [
            (NUMBER, "+31612345678", TargetKind.MOBILE),
            (NUMBER, "+31201234599", TargetKind.FIXED),
            ("+3215123456", "+32470123456", TargetKind.MOBILE),
            ("+3215123456", "+3215123457", TargetKind.FIXED),
            # US numbers do not tell landline from mobile: counted as mobile, the dearer to reach.
            ("+12025550100", "+12025550123", TargetKind.MOBILE),
        ],
        ids=["nl-mobile", "nl-landline", "be-mobile", "be-landline", "us-fixed-line-or-mobile"],
    )
    def test_landline_or_mobile_in_the_numbers_country_is_rung_with_its_kind(
            self, tmp_path: Path, number: str, target: str, kind: TargetKind) -> None:
        head = HEAD.replace(NUMBER, number).replace("type: local", "type: national")
        route = route_of(tmp_path, routed(f'targets: ["{target}"]\n', head=head), number)

        assert route.targets == (Target(target, kind, 20),)

    @pytest.mark.parametrize(
        ("target", "says"),
        [
            ("+319001234567", "is a premium-rate number: refused to prevent toll fraud"),
            ("+3278791234", "is a shared-cost number: refused to prevent toll fraud"),
            ("+447012345678", "is a personal number: refused to prevent toll fraud"),
            ("+31881234567", "is a universal access number: refused to prevent toll fraud"),
            ("+31662345678", "is a pager number: refused"),
            ("+49177991234567", "is a voicemail access number: refused"),
            ("+31851234567", "is a nomadic VoIP number: refused"),
            ("+318001234567", "is a toll-free number: refused"),
        ],
        ids=["premium-rate", "shared-cost", "personal-number", "uan", "pager", "voicemail", "voip", "toll-free"],
    )
    def test_other_number_types_are_refused_saying_why(self, tmp_path: Path, target: str, says: str) -> None:
        """The type is checked before the country: a premium number abroad is refused as premium."""
        path = write(tmp_path, routed(f'targets:\n  - "+31612345678"\n  - "{target}"\n'))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:8: numbers[0].route.targets[1]: {target} {says}"), problem
        assert problem.endswith("expected a landline or mobile number"), problem

    def test_every_phonenumbers_type_is_either_rung_or_refused(self) -> None:
        """A type phonenumbers adds one day must be placed on purpose, not fall through."""
        types = {v for k, v in vars(PhoneNumberType).items() if k.isupper() and isinstance(v, int)}

        assert set(TARGET_KINDS) | set(REFUSED_TARGETS) == types
        assert not set(TARGET_KINDS) & set(REFUSED_TARGETS)

    @pytest.mark.parametrize(
        ("number_type", "fraud"),
        [
            (PhoneNumberType.PREMIUM_RATE, True),
            (PhoneNumberType.SHARED_COST, True),
            (PhoneNumberType.PERSONAL_NUMBER, True),
            (PhoneNumberType.UAN, True),
            (PhoneNumberType.PAGER, False),
            (PhoneNumberType.VOICEMAIL, False),
            (PhoneNumberType.VOIP, False),
            (PhoneNumberType.TOLL_FREE, False),
            (PhoneNumberType.UNKNOWN, False),
        ],
        ids=lambda v: str(v),
    )
    def test_refusal_cites_toll_fraud_exactly_where_it_applies(self, number_type: int, fraud: bool) -> None:
        assert ("toll fraud" in REFUSED_TARGETS[number_type]) is fraud


class TestTargetCountry:
    """Targets stay in the number's country, unless the number explicitly allows international forwarding."""

    @pytest.mark.parametrize(
        ("number", "target", "says"),
        [
            (NUMBER, "+32470123456", "+32470123456 is in BE, +31201234567 in NL"),
            (NUMBER, "+33612345678", "+33612345678 is in FR, +31201234567 in NL"),
            # Same calling code +1, another country: the country is what costs.
            ("+12025550100", "+14165550100", "+14165550100 is in CA, +12025550100 in US"),
        ],
        ids=["nl-to-be", "nl-to-fr", "us-to-canada"],
    )
    def test_target_in_another_country_is_refused(self, tmp_path: Path, number: str, target: str, says: str) -> None:
        head = HEAD.replace(NUMBER, number).replace("type: local", "type: international")
        path = write(tmp_path, routed(f'targets: ["{target}"]\n', head=head))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:6: numbers[0].route.targets[0]: {says}"), problem
        assert "international_forwarding: true" in problem

    def test_international_forwarding_allows_targets_abroad(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, routed('targets: ["+32470123456", "+31612345678"]\n',
                                          head=HEAD + "    international_forwarding: true\n")))

        number = cfg.numbers[NUMBER]
        assert number.international_forwarding is True
        assert number.route is not None
        assert number.route.targets == (mobile("+32470123456"), mobile("+31612345678"))

    def test_international_forwarding_false_is_the_default_said_out_loud(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed('targets: ["+32470123456"]\n', head=HEAD + "    international_forwarding: false\n"))

        assert where(problems(path)) == [[f"{path}:7", "numbers[0].route.targets[0]"]]

    def test_outside_hours_route_obeys_the_same_country_rule(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed('targets: ["+31612345678"]\n',
                                      '    hours: {mon-fri: "08:00-18:00"}\n'
                                      '    outside_hours: {targets: ["+32470123456"]}\n'))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:8: numbers[0].outside_hours.targets[0]: +32470123456 is in BE"), problem

    @pytest.mark.parametrize("value", ["yes", "1", '"maybe"', "[true]"])
    def test_international_forwarding_must_be_true_or_false(self, tmp_path: Path, value: str) -> None:
        path = write(tmp_path, routed('targets: ["+31612345678"]\n',
                                      head=HEAD + f"    international_forwarding: {value}\n"))

        [problem] = problems(path)

        assert problem == f"{path}:5: numbers[0].international_forwarding: expected true or false"


def _route_problem_cases() -> list[Any]:
    """(route text, line, key, words the expectation contains); the route text starts on line 6."""
    r = "numbers[0].route"
    ring = "expected whole seconds from 1 to 120"
    shape = "expected exactly one of {announcement: SOUND}"
    t = 'targets: ["+31612345678"]\n'
    return [
        # The route itself
        pytest.param('- "+31612345678"\n', 6, r, "expected a mapping with targets", id="route-a-list"),
        pytest.param(t + "strategi: sequential\n", 7, f"{r}.strategi",
                     "unknown key; expected one of confirm, no_answer, queue, ring_seconds, strategy, targets", id="unknown-key"),
        pytest.param("strategy: sequential\n", 6, f"{r}.targets", "missing; expected a list of E.164 numbers",
                     id="targets-missing"),
        pytest.param("targets: []\n", 6, f"{r}.targets", "expected a list of at least one", id="targets-empty"),
        pytest.param("targets:\n", 6, f"{r}.targets", "expected a list of at least one", id="targets-null"),
        pytest.param('targets: "+31612345678"\n', 6, f"{r}.targets", "expected a list", id="targets-not-a-list"),
        pytest.param("strategy: round-robin\n" + t, 6, f"{r}.strategy", "expected one of simultaneous, sequential",
                     id="strategy-unknown"),
        pytest.param("strategy: Sequential\n" + t, 6, f"{r}.strategy", "expected one of", id="strategy-capitalised"),
        # Ring time
        pytest.param("ring_seconds: 0\n" + t, 6, f"{r}.ring_seconds", ring, id="ring-zero"),
        pytest.param("ring_seconds: 121\n" + t, 6, f"{r}.ring_seconds", ring, id="ring-above-120"),
        pytest.param("ring_seconds: -5\n" + t, 6, f"{r}.ring_seconds", ring, id="ring-negative"),
        pytest.param("ring_seconds: 20.5\n" + t, 6, f"{r}.ring_seconds", ring, id="ring-fraction"),
        pytest.param("ring_seconds: 20s\n" + t, 6, f"{r}.ring_seconds", ring, id="ring-with-unit"),
        pytest.param("ring_seconds: [20]\n" + t, 6, f"{r}.ring_seconds", ring, id="ring-a-list"),
        pytest.param('strategy: sequential\ntargets:\n  - {number: "+31612345678", ring_seconds: 0}\n', 8,
                     f"{r}.targets[0].ring_seconds", ring, id="target-ring-zero"),
        pytest.param('strategy: sequential\ntargets:\n  - {number: "+31612345678", ring_seconds: 300}\n', 8,
                     f"{r}.targets[0].ring_seconds", ring, id="target-ring-above-120"),
        pytest.param('targets:\n  - {number: "+31612345678", ring_seconds: 10}\n', 7, f"{r}.targets[0].ring_seconds",
                     "applies only to strategy: sequential", id="target-ring-in-simultaneous-route"),
        # Targets
        pytest.param('targets: ["0612345678"]\n', 6, f"{r}.targets[0]", "expected an E.164 number in quotes",
                     id="target-national-format"),
        pytest.param("targets:\n  - 31612345678\n", 7, f"{r}.targets[0]", "in quotes", id="target-without-plus"),
        pytest.param('targets: ["+3161234"]\n', 6, f"{r}.targets[0]", "'+3161234' is not a valid E.164 number",
                     id="target-too-short"),
        pytest.param('targets: ["+999"]\n', 6, f"{r}.targets[0]", "not a valid E.164 number", id="target-invalid"),
        pytest.param('targets:\n  - ["+31612345678"]\n', 7, f"{r}.targets[0]", "or a mapping with number, ring_seconds and confirm",
                     id="target-a-list"),
        pytest.param("strategy: sequential\ntargets:\n  - {ring_seconds: 5}\n", 8, f"{r}.targets[0].number",
                     "missing; expected an E.164 number", id="target-mapping-without-number"),
        pytest.param('targets:\n  - {numbr: "+31612345678"}\n', 7, f"{r}.targets[0].numbr",
                     "unknown key; expected one of confirm, number, ring_seconds", id="target-mapping-misspelt-key"),
        pytest.param('targets:\n  - {number: "0612345678"}\n', 7, f"{r}.targets[0].number", "in quotes",
                     id="target-mapping-bad-number"),
        pytest.param(f'targets: ["{NUMBER}"]\n', 6, f"{r}.targets[0]", f"{NUMBER} is the number itself",
                     id="target-the-number-itself"),
        pytest.param('targets: ["+31 20 123 4567"]\n', 6, f"{r}.targets[0]", "is the number itself",
                     id="target-the-number-itself-spelled-otherwise"),
        pytest.param('targets:\n  - "+31612345678"\n  - "+31201234599"\n  - "+31 6 1234 5678"\n', 9,
                     f"{r}.targets[2]", f"+31612345678 is already {r}.targets[0]; expected each target once",
                     id="target-twice"),
        pytest.param('strategy: sequential\ntargets:\n  - "+31612345678"\n  - {number: "+31612345678", ring_seconds: 5}\n',
                     9, f"{r}.targets[1].number", "is already", id="target-twice-once-as-mapping"),
        # No answer
        pytest.param(t + "no_answer: vm-nobodyavail\n", 7, f"{r}.no_answer", shape, id="no-answer-a-string"),
        pytest.param(t + "no_answer: {}\n", 7, f"{r}.no_answer", shape, id="no-answer-empty"),
        pytest.param(t + 'no_answer: {announcement: beep, number: "+31201234568"}\n', 7, f"{r}.no_answer", shape,
                     id="no-answer-two-things"),
        pytest.param(t + "no_answer: {mailbox: beep}\n", 7, f"{r}.no_answer.mailbox",
                     "unknown key; expected one of announcement, number, queue, voicemail", id="no-answer-unknown-key"),
        pytest.param(t + "no_answer: {voicemail: beep}\n", 7, f"{r}.no_answer.voicemail",
                     "expected true", id="no-answer-voicemail-not-true"),
        pytest.param(t + "no_answer: {announcement: ../../etc/passwd}\n", 7, f"{r}.no_answer.announcement",
                     "expected an Asterisk sound name", id="no-answer-sound-leaving-sounds-dir"),
        pytest.param(t + "no_answer: {announcement: }\n", 7, f"{r}.no_answer.announcement",
                     "expected an Asterisk sound name", id="no-answer-sound-empty"),
        pytest.param(t + "no_answer: {queue: support}\n", 7, f"{r}.no_answer.queue",
                     "support is not a queue in 'queues'", id="no-answer-queue-unknown"),
        pytest.param(t + 'no_answer: {number: "0201234568"}\n', 7, f"{r}.no_answer.number",
                     "expected another of the customer's numbers in E.164", id="no-answer-number-national-format"),
        pytest.param(t + 'no_answer: {number: "+999"}\n', 7, f"{r}.no_answer.number", "in E.164",
                     id="no-answer-number-invalid"),
        pytest.param(t + 'no_answer: {number: "+31201234568"}\n', 7, f"{r}.no_answer.number",
                     "+31201234568 is not a number in 'numbers'", id="no-answer-number-not-configured"),
    ]


class TestRouteProblems:
    """Each route problem reads FILE:LINE: KEY: what was expected, and comes alone."""

    @pytest.mark.parametrize(("route", "line", "key", "says"), _route_problem_cases())
    def test_problem_names_file_line_and_key(self, tmp_path: Path, route: str, line: int, key: str,
                                            says: str) -> None:
        path = write(tmp_path, routed(route))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:{line}: {key}: "), problem
        assert says in problem

    def test_every_route_problem_is_reported_in_one_run(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed(
            "strategy: sequential\n"  # 6
            "ring_seconds: 0\n"  # 7: out of range
            "targets:\n"  # 8
            '  - "+319001234567"\n'  # 9: premium
            '  - "+32470123456"\n'  # 10: abroad
            '  - {number: "+31612345678", ring_seconds: 500}\n'  # 11: out of range
            "no_answer: {queue: sales}\n"))  # 12: reserved

        assert where(problems(path)) == [
            [f"{path}:7", "numbers[0].route.ring_seconds"],
            [f"{path}:9", "numbers[0].route.targets[0]"],
            [f"{path}:10", "numbers[0].route.targets[1]"],
            [f"{path}:11", "numbers[0].route.targets[2].ring_seconds"],
            [f"{path}:12", "numbers[0].route.no_answer.queue"],
        ]

    def test_queue_key_is_reserved_for_queues(self) -> None:
        """`queue: NAME` parses as a name; it is refused until queues exist, not taken as unknown."""
        assert ToQueue("support").name == "support"


class TestRouteOrAnnouncement:
    """A number rings a route or plays an announcement: exactly one of the two."""

    @pytest.mark.parametrize(
        ("more", "line", "key", "says"),
        [
            ("    announcement: hello-world\n", 7, "numbers[0].announcement",
             "a number has a route or an announcement, not both"),
            ("", 2, "numbers[0].route", "missing; expected a route (whom to ring) or an announcement"),
        ],
        ids=["both", "neither"],
    )
    def test_exactly_one_of_route_and_announcement(self, tmp_path: Path, more: str, line: int, key: str,
                                                   says: str) -> None:
        if more:
            path = write(tmp_path, routed('targets: ["+31612345678"]\n', more))
        else:
            path = write(tmp_path, HEAD + CUSTOMERS)

        [problem] = problems(path)

        assert problem.startswith(f"{path}:{line}: {key}: {says}"), problem

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"announcement": "beep", "route": Route(Strategy.SIMULTANEOUS, (mobile("+31612345678"),))},
            {"route": Route(Strategy.SIMULTANEOUS, (mobile("+31612345678"),)),
             "hours": OpeningHours(AMSTERDAM, ((),) * 7)},
            {"route": Route(Strategy.SIMULTANEOUS, (mobile("+31612345678"),)),
             "outside_hours": Route(Strategy.SIMULTANEOUS, (mobile("+31612345679"),))},
            {"announcement": "beep", "hours": OpeningHours(AMSTERDAM, ((),) * 7),
             "outside_hours": Route(Strategy.SIMULTANEOUS, (mobile("+31612345679"),))},
        ],
        ids=["neither", "both", "hours-without-outside-route", "outside-route-without-hours",
             "hours-on-announcement-number"],
    )
    def test_number_that_breaks_the_rules_cannot_be_built(self, kwargs: dict[str, Any]) -> None:
        """Code that builds a Number by hand (tests, tools) gets the loader's guarantees too."""
        with pytest.raises(ValueError):
            Number(NUMBER, "acme", NumberType.LOCAL, **kwargs)

    def test_route_needs_a_target(self) -> None:
        with pytest.raises(ValueError):
            Route(Strategy.SEQUENTIAL, ())

    def test_number_built_by_position_as_before_is_announcement_only(self) -> None:
        """Number(e164, customer, type, announcement) still works: the new fields have defaults."""
        number = Number(NUMBER, "acme", NumberType.LOCAL, "hello-world")

        assert (number.route, number.route_at(datetime(2026, 1, 1, tzinfo=UTC))) == (None, None)


class TestForwarding:
    """no_answer: {number: ...} goes on to another of the same customer's numbers, never round in a loop."""

    A, B, C = "+31201234567", "+31201234568", "+31201234569"

    @staticmethod
    def forward_to(number: str) -> str:
        return f'route:\n  targets: ["+31612345678"]\n  no_answer: {{number: "{number}"}}\n'

    def test_forward_to_another_customers_number_is_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
                                      entry(self.B, "announcement: beep\n", customer="bakery")))

        [problem] = problems(path)

        assert problem == (f"{path}:7: numbers[0].route.no_answer.number: {self.B} belongs to customer bakery; "
                           "calls to acme's numbers can only be forwarded to another of acme's numbers")

    def test_target_that_fairline_serves_is_refused(self, tmp_path: Path) -> None:
        """Ringing it would leave through the carrier and come back in as a new call: no hop limit stops that."""
        path = write(tmp_path, routed(f'targets: ["+31612345678", "{self.B}"]\n',
                                      entry(self.B, "announcement: beep\n")))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:6: numbers[0].route.targets[1]: {self.B} is a number fairline serves"), problem
        assert f'no_answer: {{number: "{self.B}"}}' in problem

    def test_two_numbers_forwarding_to_each_other_are_refused_with_the_loop_spelled_out(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
                                      entry(self.B, self.forward_to(self.A))))

        [problem] = problems(path)

        assert problem == (f"{path}:7: numbers[0].route.no_answer.number: forwarding loop "
                           f"{self.A} -> {self.B} -> {self.A}: a call nobody answers would go round until the "
                           "hop limit; expected a route that ends in an announcement")

    def test_number_forwarding_to_itself_is_a_loop(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.A}"}}\n'))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:7: numbers[0].route.no_answer.number: forwarding loop "
                                  f"{self.A} -> {self.A}:"), problem

    def test_loop_through_three_numbers_is_spelled_from_the_first_in_the_file(self, tmp_path: Path) -> None:
        """Found wherever the search starts; told from the number the admin sees first."""
        path = write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.C}"}}\n',
                                      entry(self.B, self.forward_to(self.A)) + entry(self.C, self.forward_to(self.B))))

        [problem] = problems(path)

        assert f"forwarding loop {self.A} -> {self.C} -> {self.B} -> {self.A}:" in problem
        assert problem.startswith(f"{path}:7: numbers[0].route.no_answer.number: "), problem

    def test_loop_through_an_outside_hours_route_is_refused(self, tmp_path: Path) -> None:
        """B forwards back to A only at night; at night the loop is real."""
        path = write(tmp_path, routed(
            f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
            entry(self.B, 'route: {targets: ["+31612345679"]}\n'
                          'hours: {mon-fri: "08:00-18:00"}\n'
                          f'outside_hours: {{targets: ["+31612345670"], no_answer: {{number: "{self.A}"}}}}\n')))

        [problem] = problems(path)

        assert f"forwarding loop {self.A} -> {self.B} -> {self.A}:" in problem

    def test_loop_is_reported_once_however_many_ways_it_closes(self, tmp_path: Path) -> None:
        """A forwards to B by day and by night: one loop, one problem."""
        path = write(tmp_path, routed(
            f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
            '    hours: {mon-fri: "08:00-18:00"}\n'
            f'    outside_hours: {{targets: ["+31612345670"], no_answer: {{number: "{self.B}"}}}}\n'
            + entry(self.B, self.forward_to(self.A))))

        assert len(problems(path)) == 1

    def test_loop_beyond_a_number_that_leads_into_it_names_only_the_loop(self, tmp_path: Path) -> None:
        """A -> B -> C -> B: A is fine on its own; the loop is B -> C -> B, told from B's line."""
        path = write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
                                      entry(self.B, self.forward_to(self.C)) + entry(self.C, self.forward_to(self.B))))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:13: numbers[1].route.no_answer.number: forwarding loop "
                                  f"{self.B} -> {self.C} -> {self.B}:"), problem

    def test_two_separate_loops_are_each_reported(self, tmp_path: Path) -> None:
        d = "+31201234570"
        path = write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
                                      entry(self.B, self.forward_to(self.A)) + entry(self.C, self.forward_to(d))
                                      + entry(d, self.forward_to(self.C))))

        found = problems(path)

        assert [p.split("forwarding loop ")[1].split(":")[0] for p in found] == [
            f"{self.A} -> {self.B} -> {self.A}", f"{self.C} -> {d} -> {self.C}"]

    def test_chain_of_forwards_without_a_loop_is_accepted(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, routed(f'targets: ["+31612345678"]\nno_answer: {{number: "{self.B}"}}\n',
                                          entry(self.B, self.forward_to(self.C))
                                          + entry(self.C, 'route: {targets: ["+31612345670"]}\n'))))

        assert [cfg.numbers[n].route.no_answer for n in (self.A, self.B, self.C)] == [  # type: ignore[union-attr]
            ForwardTo(self.B), ForwardTo(self.C), Announce("vm-nobodyavail")]

    def test_loop_check_is_linear_in_the_number_of_numbers(self, tmp_path: Path) -> None:
        """A ring of 2,000 forwarding numbers: one problem, found without walking every path."""
        numbers = [f"+3120123{i:04d}" for i in range(2000)]
        text = "numbers:\n" + "".join(
            entry(n, f'route: {{targets: ["+31612{i:06d}"], no_answer: {{number: "{numbers[(i + 1) % 2000]}"}}}}\n')
            for i, n in enumerate(numbers)) + CUSTOMERS

        [problem] = problems(write(tmp_path, text))

        assert f"forwarding loop {numbers[0]} -> {numbers[1]} -> " in problem
        assert problem.count(" -> ") == 2000


# ---- opening hours


def hours_file(hours: str) -> str:
    """A file whose first number has its hours from line 7 (`hours:` on line 6) and an outside route after them."""
    return (HEAD + '    route: {targets: ["+31612345678"]}\n    hours:\n' + textwrap.indent(hours, "      ")
            + '    outside_hours: {targets: ["+31612345679"]}\n' + CUSTOMERS)


def _hours_problem_cases() -> list[Any]:
    """(hours text, line, key, words the expectation contains); the hours text starts on line 7."""
    h = "numbers[0].hours"
    day = "expected a day (mon, tue, wed, thu, fri, sat, sun) or a range like mon-fri"
    like = 'expected opening times like "08:00-18:00"'
    clock = "expected times from 00:00 to 23:59 (24:00 only as an end)"
    return [
        pytest.param('monday: "08:00-18:00"\n', 7, f"{h}.monday", day, id="day-spelled-out"),
        pytest.param('Mon: "08:00-18:00"\n', 7, f"{h}.Mon", day, id="day-capitalised"),
        pytest.param('mon-fry: "08:00-18:00"\n', 7, f"{h}.mon-fry", day, id="range-with-unknown-day"),
        pytest.param('mon-fri-sat: "08:00-18:00"\n', 7, f"{h}.mon-fri-sat", day, id="range-of-three"),
        pytest.param('weekdays: "08:00-18:00"\n', 7, f"{h}.weekdays", day, id="weekdays"),
        pytest.param('fri-mon: "08:00-18:00"\n', 7, f"{h}.fri-mon", "expected a range in week order",
                     id="range-backwards"),
        pytest.param('mon: "08:00-12:00"\nmon: "13:00-17:00"\n', 8, f"{h}.mon", "given twice", id="day-twice"),
        pytest.param('mon: "8-17"\n', 7, f"{h}.mon", like, id="hours-without-minutes"),
        pytest.param('mon: "08:00"\n', 7, f"{h}.mon", like, id="start-only"),
        pytest.param('mon: "08.00-18.00"\n', 7, f"{h}.mon", like, id="dots"),
        pytest.param('mon: "8am-6pm"\n', 7, f"{h}.mon", like, id="am-pm"),
        pytest.param("mon: \n", 7, f"{h}.mon", like, id="window-empty"),
        pytest.param("mon: []\n", 7, f"{h}.mon", like, id="window-list-empty"),
        pytest.param("mon: {opens: 8}\n", 7, f"{h}.mon", like, id="window-a-mapping"),
        pytest.param('mon: "25:00-26:00"\n', 7, f"{h}.mon", clock, id="hour-25"),
        pytest.param('mon: "08:60-09:00"\n', 7, f"{h}.mon", clock, id="minute-60"),
        pytest.param('mon: "24:00-24:00"\n', 7, f"{h}.mon", clock, id="start-at-24"),
        pytest.param('mon: "20:00-24:30"\n', 7, f"{h}.mon", clock, id="end-past-24"),
        pytest.param('mon: "18:00-08:00"\n', 7, f"{h}.mon", "'18:00-08:00' ends before it starts", id="end-before-start"),
        pytest.param('mon: "22:00-02:00"\n', 7, f"{h}.mon", '"22:00-24:00" and "00:00-02:00" the next day',
                     id="past-midnight"),
        pytest.param('mon: "08:00-08:00"\n', 7, f"{h}.mon", "ends before it starts", id="empty-window"),
        pytest.param('mon: ["08:00-18:00", "x"]\n', 7, f"{h}.mon[1]", like, id="bad-window-in-a-list"),
        pytest.param('mon: ["08:00-12:00", "11:00-13:00"]\n', 7, f"{h}.mon[1]",
                     "11:00-13:00 overlaps 08:00-12:00 on mon; expected windows that do not overlap",
                     id="overlap-in-a-list"),
        pytest.param('mon: ["08:00-12:00", "08:00-12:00"]\n', 7, f"{h}.mon[1]", "08:00-12:00 overlaps 08:00-12:00",
                     id="same-window-twice"),
        pytest.param('mon-fri: "08:00-18:00"\nwed: "12:00-13:00"\n', 8, f"{h}.wed",
                     "12:00-13:00 overlaps 08:00-18:00 on wed", id="day-inside-a-range"),
        pytest.param('wed: "12:00-13:00"\nmon-fri: "08:00-18:00"\n', 8, f"{h}.mon-fri",
                     "08:00-18:00 overlaps 12:00-13:00 on wed", id="range-over-an-earlier-day"),
        pytest.param('mon-wed: "08:00-12:00"\ntue-fri: "11:00-14:00"\n', 8, f"{h}.tue-fri",
                     "11:00-14:00 overlaps 08:00-12:00 on tue, wed", id="overlapping-ranges-once-with-days"),
        pytest.param("{}\n", 7, h, "expected days (mon, tue, wed, thu, fri, sat, sun, or a range like mon-fri)",
                     id="hours-empty"),
        pytest.param('"08:00-18:00"\n', 7, h, "expected days", id="hours-a-string"),
        pytest.param('- mon: "08:00-18:00"\n', 7, h, "expected days", id="hours-a-list"),
    ]


class TestHoursProblems:
    """Each opening-hours problem reads FILE:LINE: KEY: what was expected, and comes alone."""

    @pytest.mark.parametrize(("hours", "line", "key", "says"), _hours_problem_cases())
    def test_problem_names_file_line_and_key(self, tmp_path: Path, hours: str, line: int, key: str,
                                            says: str) -> None:
        path = write(tmp_path, hours_file(hours))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:{line}: {key}: "), problem
        assert says in problem

    def test_window_overlapping_two_others_is_reported_for_each(self, tmp_path: Path) -> None:
        path = write(tmp_path, hours_file('mon: ["09:00-10:00", "11:00-12:00", "08:00-18:00"]\n'))

        found = problems(path)

        assert [p.split(": ", 2)[2] for p in found] == [
            "08:00-18:00 overlaps 09:00-10:00 on mon; expected windows that do not overlap",
            "08:00-18:00 overlaps 11:00-12:00 on mon; expected windows that do not overlap",
        ]

    def test_hours_without_an_outside_route_are_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed('targets: ["+31612345678"]\n', '    hours: {mon-fri: "08:00-18:00"}\n'))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:7: numbers[0].outside_hours: missing; opening hours need the route "
                                  "outside them"), problem

    def test_outside_route_without_hours_is_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed('targets: ["+31612345678"]\n',
                                      '    outside_hours: {targets: ["+31612345679"]}\n'))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:7: numbers[0].outside_hours: applies only outside opening hours"), problem

    def test_hours_on_an_announcement_only_number_are_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, HEAD + "    announcement: beep\n"
                                      '    hours: {mon-fri: "08:00-18:00"}\n'
                                      '    outside_hours: {targets: ["+31612345679"]}\n' + CUSTOMERS)

        [problem] = problems(path)

        assert problem.startswith(f"{path}:6: numbers[0].hours: opening hours choose between route and "
                                  "outside_hours"), problem

    def test_outside_route_is_checked_like_a_route(self, tmp_path: Path) -> None:
        path = write(tmp_path, routed('targets: ["+31612345678"]\n', '    hours: {mon-fri: "08:00-18:00"}\n'
                                      "    outside_hours:\n      targets: []\n"))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:9: numbers[0].outside_hours.targets: expected a list"), problem


def minutes(window: str) -> Window:
    """Window("08:30-17:00") -> Window(510, 1020), for building expectations by hand."""
    start, end = window.split("-")
    return Window(int(start[:2]) * 60 + int(start[3:]), int(end[:2]) * 60 + int(end[3:]))


def opening(zone: ZoneInfo = AMSTERDAM, **days: str | list[str]) -> OpeningHours:
    """OpeningHours with the given windows per day (mon=..., sun=...); other days closed."""
    week = []
    for day in DAYS:
        windows = days.get(day, [])
        week.append(tuple(minutes(w) for w in ([windows] if isinstance(windows, str) else windows)))
    return OpeningHours(zone, tuple(week))


class TestHoursLoad:
    """Valid opening hours become one tuple of windows per weekday, on the number's own clock."""

    def test_days_and_ranges_become_windows_per_weekday(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, hours_file('mon-fri: "08:30-17:30"\nsat: ["13:00-16:00", "10:00-12:00"]\n'
                                              'sun: "20:00-24:00"\n')))

        assert cfg.numbers[NUMBER].hours == opening(
            mon="08:30-17:30", tue="08:30-17:30", wed="08:30-17:30", thu="08:30-17:30", fri="08:30-17:30",
            sat=["10:00-12:00", "13:00-16:00"], sun="20:00-24:00")

    def test_a_day_in_a_range_and_on_its_own_gets_both_windows(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, hours_file('mon-fri: "08:00-12:00"\nfri: "13:00-15:00"\n')))

        hours = cfg.numbers[NUMBER].hours
        assert hours is not None
        assert hours.week[4] == (minutes("08:00-12:00"), minutes("13:00-15:00"))

    @pytest.mark.parametrize("window", ['"8:30-17:30"', '"08:30 - 17:30"', "08:30-17:30"],
                             ids=["one-digit-hour", "spaces", "unquoted"])
    def test_window_may_be_written_loosely(self, tmp_path: Path, window: str) -> None:
        cfg = load(write(tmp_path, hours_file(f"mon: {window}\n")))

        assert cfg.numbers[NUMBER].hours == opening(mon="08:30-17:30")

    def test_windows_that_touch_do_not_overlap(self, tmp_path: Path) -> None:
        """One closes at 12:00, the next opens at 12:00: 12:00 itself belongs to the second."""
        cfg = load(write(tmp_path, hours_file('mon: ["08:00-12:00", "12:00-13:00"]\n')))

        assert cfg.numbers[NUMBER].hours == opening(mon=["08:00-12:00", "12:00-13:00"])

    @pytest.mark.parametrize(
        ("number", "zone"),
        [(NUMBER, "Europe/Amsterdam"), ("+3215123456", "Europe/Brussels"), ("+12025550100", "America/New_York")],
    )
    def test_hours_are_on_the_clock_of_the_numbers_country(self, tmp_path: Path, number: str, zone: str) -> None:
        text = hours_file('mon: "08:00-18:00"\n').replace(NUMBER, number).replace("type: local", "type: national")
        text = text.replace('"+31612345678"', '"+3215123457"' if number.startswith("+32") else
                            '"+12025550123"' if number.startswith("+1") else '"+31612345678"')
        text = text.replace('"+31612345679"', '"+3215123458"' if number.startswith("+32") else
                            '"+12025550124"' if number.startswith("+1") else '"+31612345679"')

        hours = load(write(tmp_path, text)).numbers[number].hours

        assert hours is not None and hours.zone == ZoneInfo(zone)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


OFFICE = opening(mon="08:00-18:00", tue="08:00-18:00", wed="08:00-18:00", thu="08:00-18:00", fri="08:00-18:00",
                 sun="08:00-18:00")


class TestOpeningHoursIsOpen:
    """is_open: in a window on the number's wall clock, start included, end excluded, whatever DST does."""

    @pytest.mark.parametrize(
        ("hours", "instant", "open_"),
        [
            # Winter, CET = UTC+1: Monday 2 March 2026
            (OFFICE, utc(2026, 3, 2, 6, 59, 59, 999999), False),  # 07:59:59.999999
            (OFFICE, utc(2026, 3, 2, 7, 0), True),  # 08:00 opens
            (OFFICE, utc(2026, 3, 2, 12, 0), True),
            (OFFICE, utc(2026, 3, 2, 16, 59, 59, 999999), True),  # 17:59:59.999999
            (OFFICE, utc(2026, 3, 2, 17, 0), False),  # 18:00 closed
            # Summer, CEST = UTC+2: Monday 6 July 2026
            (OFFICE, utc(2026, 7, 6, 5, 59, 59), False),  # 07:59:59
            (OFFICE, utc(2026, 7, 6, 6, 0), True),  # 08:00
            (OFFICE, utc(2026, 7, 6, 15, 59, 59), True),  # 17:59:59
            (OFFICE, utc(2026, 7, 6, 16, 0), False),  # 18:00
            # A day without windows
            (OFFICE, utc(2026, 3, 7, 11, 0), False),  # Saturday noon
            # The day is the local day: Friday 23:30 UTC is Saturday 00:30 in Amsterdam
            (opening(sat="00:00-01:00"), utc(2026, 3, 6, 23, 30), True),
            (opening(fri="23:00-24:00"), utc(2026, 3, 6, 23, 30), False),
            # A window to 24:00 is open until the last instant of the day
            (opening(mon="20:00-24:00"), utc(2026, 3, 2, 22, 59, 59, 999999), True),  # Mon 23:59:59.999999
            (opening(mon="20:00-24:00"), utc(2026, 3, 2, 23, 0), False),  # Tue 00:00
            # One minute a day (the end-to-end tests' "always closed" number)
            (opening(mon="00:00-00:01"), utc(2026, 3, 1, 23, 0), True),  # Mon 00:00:00
            (opening(mon="00:00-00:01"), utc(2026, 3, 1, 23, 0, 59), True),  # Mon 00:00:59
            (opening(mon="00:00-00:01"), utc(2026, 3, 1, 23, 1), False),  # Mon 00:01
        ],
        ids=["winter-just-before-opening", "winter-opening", "winter-noon", "winter-just-before-closing",
             "winter-closing", "summer-just-before-opening", "summer-opening", "summer-just-before-closing",
             "summer-closing", "closed-day", "local-saturday-after-utc-friday", "not-utc-friday",
             "until-midnight-last-instant", "until-midnight-next-day", "one-minute-start", "one-minute-last-second",
             "one-minute-over"],
    )
    def test_open_at_window_edges(self, hours: OpeningHours, instant: datetime, open_: bool) -> None:
        assert hours.is_open(instant) is open_

    @pytest.mark.parametrize(
        ("hours", "instant", "open_"),
        [
            # Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC).
            (OFFICE, utc(2026, 3, 29, 5, 59), False),  # 07:59 CEST
            (OFFICE, utc(2026, 3, 29, 6, 0), True),  # 08:00 CEST: an hour earlier in UTC than on Saturday
            (OFFICE, utc(2026, 3, 29, 15, 59), True),  # 17:59 CEST
            (OFFICE, utc(2026, 3, 29, 16, 0), False),  # 18:00 CEST
            (opening(sun="02:00-03:00"), utc(2026, 3, 29, 0, 59, 59), False),  # 01:59:59 CET
            (opening(sun="02:00-03:00"), utc(2026, 3, 29, 1, 0), False),  # 03:00 CEST: 02:00-03:00 never came
            (opening(sun="01:00-03:00"), utc(2026, 3, 29, 0, 0), True),  # 01:00 CET
            (opening(sun="01:00-03:00"), utc(2026, 3, 29, 0, 59), True),  # 01:59 CET
            (opening(sun="01:00-03:00"), utc(2026, 3, 29, 1, 0), False),  # 03:00 CEST: one real hour open
            (opening(sun="03:00-04:00"), utc(2026, 3, 29, 1, 0), True),  # 03:00 CEST, the instant after 01:59:59 CET
            # Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC).
            (OFFICE, utc(2026, 10, 25, 6, 59), False),  # 07:59 CET
            (OFFICE, utc(2026, 10, 25, 7, 0), True),  # 08:00 CET: an hour later in UTC than on Saturday
            (OFFICE, utc(2026, 10, 25, 16, 59), True),  # 17:59 CET
            (OFFICE, utc(2026, 10, 25, 17, 0), False),  # 18:00 CET
            (opening(sun="02:00-03:00"), utc(2026, 10, 24, 23, 59), False),  # 01:59 CEST
            (opening(sun="02:00-03:00"), utc(2026, 10, 25, 0, 0), True),  # 02:00 CEST, the first time
            (opening(sun="02:00-03:00"), utc(2026, 10, 25, 0, 59), True),  # 02:59 CEST
            (opening(sun="02:00-03:00"), utc(2026, 10, 25, 1, 0), True),  # 02:00 CET, the second time
            (opening(sun="02:00-03:00"), utc(2026, 10, 25, 1, 59), True),  # 02:59 CET
            (opening(sun="02:00-03:00"), utc(2026, 10, 25, 2, 0), False),  # 03:00 CET: two real hours open
        ],
        ids=["spring-0759", "spring-0800", "spring-1759", "spring-1800", "spring-0159-before-the-gap",
             "spring-gap-window-never-opens", "spring-window-across-gap-open-at-0100",
             "spring-window-across-gap-open-at-0159", "spring-window-across-gap-closed-at-0300",
             "spring-window-after-gap", "autumn-0759", "autumn-0800", "autumn-1759", "autumn-1800",
             "autumn-0159-cest", "autumn-0200-cest", "autumn-0259-cest", "autumn-0200-cet", "autumn-0259-cet",
             "autumn-0300-cet"],
    )
    def test_windows_follow_the_wall_clock_across_dst_changes(self, hours: OpeningHours, instant: datetime,
                                                             open_: bool) -> None:
        assert hours.is_open(instant) is open_

    def test_instant_in_any_time_zone_means_the_same_moment(self) -> None:
        """02:00 in New York on a winter Monday is 08:00 in Amsterdam."""
        new_york = datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("America/New_York"))

        assert (OFFICE.is_open(new_york), OFFICE.is_open(new_york - timedelta(seconds=1))) == (True, False)

    def test_hours_of_a_number_abroad_follow_its_own_dst(self) -> None:
        """US clocks go forward on 8 March 2026, three weeks before Amsterdam's."""
        washington = opening(ZoneInfo("America/New_York"), mon="09:00-17:00")

        assert washington.is_open(utc(2026, 3, 2, 14, 0)) is True  # 09:00 EST
        assert washington.is_open(utc(2026, 3, 9, 13, 0)) is True  # 09:00 EDT
        assert washington.is_open(utc(2026, 3, 9, 12, 59)) is False  # 08:59 EDT

    def test_naive_instant_is_refused(self) -> None:
        """A naive datetime has no moment: guessing its zone would open at the wrong hour."""
        with pytest.raises(ValueError):
            OFFICE.is_open(datetime(2026, 3, 2, 12, 0))

    def test_every_minute_of_a_week_matches_the_windows(self) -> None:
        """Minute by minute through the week clocks go forward: open exactly inside the windows, on the local clock."""
        hours = opening(mon=["08:00-12:00", "13:00-17:30"], sat="10:00-11:00", sun="01:00-04:00")
        start = utc(2026, 3, 22, 23, 0)  # Monday 23 March 00:00 CET
        for minute in range(7 * 24 * 60):
            instant = start + timedelta(minutes=minute)
            local = instant.astimezone(AMSTERDAM)
            hhmm = local.hour * 60 + local.minute
            expected = ((local.weekday() == 0 and (480 <= hhmm < 720 or 780 <= hhmm < 1050))
                        or (local.weekday() == 5 and 600 <= hhmm < 660)
                        or (local.weekday() == 6 and 60 <= hhmm < 240))
            assert hours.is_open(instant) is expected, local

    def test_window_reads_as_written(self) -> None:
        assert [str(minutes(w)) for w in ("08:30-17:00", "00:00-24:00")] == ["08:30-17:00", "00:00-24:00"]

    def test_opening_hours_have_seven_days(self) -> None:
        with pytest.raises(ValueError):
            OpeningHours(AMSTERDAM, ((),) * 5)


class TestRouteAt:
    """Number.route_at: the route in force at an instant; outside_hours when the hours say closed."""

    @pytest.fixture()
    def cfg(self, tmp_path: Path) -> Config:
        return load(write(tmp_path, hours_file('mon-fri: "08:00-18:00"\n')))

    @pytest.mark.parametrize(
        ("instant", "target"),
        [
            (utc(2026, 3, 2, 7, 0), "+31612345678"),  # Monday 08:00 CET
            (utc(2026, 3, 2, 6, 59), "+31612345679"),  # Monday 07:59 CET
            (utc(2026, 3, 6, 17, 0), "+31612345679"),  # Friday 18:00 CET
            (utc(2026, 3, 7, 12, 0), "+31612345679"),  # Saturday
            (utc(2026, 7, 6, 6, 0), "+31612345678"),  # Monday 08:00 CEST
        ],
        ids=["open", "before-opening", "after-closing", "weekend", "open-in-summer"],
    )
    def test_route_in_force_follows_the_hours(self, cfg: Config, instant: datetime, target: str) -> None:
        route = cfg.numbers[NUMBER].route_at(instant)

        assert route is not None and route.targets == (mobile(target),)
