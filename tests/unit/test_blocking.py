"""Blocked callers (issue 18, decision 0030): refused before anything rings, recorded as blocked, never priced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from ari_app.config.yaml_loader import parse
from ari_app.core import flow
from ari_app.core.blocking import BUSY, MAX_BLOCKED, Blocklist, Refusal, caller_key, check_entry
from ari_app.core.events import CallDestroyed, CallStarted, HangupRequested, PlaybackDone
from ari_app.core.model import Config, Customer, Number, Route, Strategy, Target, TargetKind
from ari_app.errors import ConfigError
from rating.core.cdr import CallRecord, Disposition, rate_record
from rating.core.tariff import DEFAULT_RATES, NumberType

T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
NUMBER = "+31201230500"
ROUTE = Route(Strategy.SIMULTANEOUS, (Target("+31612340701", TargetKind.MOBILE, 20),))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TestCallerKey:
    @pytest.mark.parametrize(("caller", "key"), [
        ("+31612345678", "+31612345678"),
        ("31612345678", "+31612345678"),  # the carrier left out the '+'
        ("0031612345678", "+31612345678"),  # the international prefix
        ("+31 6-1234 5678", "+31612345678"),
        ("tel:+31612345678", "+31612345678"),
        ("0612345678", "+0612345678"),  # a national form: no E.164 prefix matches it
        (None, None), ("", None), ("anonymous", None), ("Restricted", None), ("+", None), ("++", None),
        ("\u0663\u0661", None),  # other scripts' digits are not dialled digits
    ])
    def test_as_the_dialplan_compares_it(self, caller: str | None, key: str | None) -> None:
        assert caller_key(caller) == key


class TestEntries:
    @pytest.mark.parametrize("raw", ["+31612345678", "+3161234", "+1", "+123456789012345", "withheld"])
    def test_accepted(self, raw: str) -> None:
        assert check_entry(raw) == raw

    @pytest.mark.parametrize("raw", ["31612345678", "+0612345678", "+", "+1234567890123456", "+31 6", "anonymous",
                                     "Withheld", "+3161234*", "", "+\u0663\u0661"])
    def test_refused(self, raw: str) -> None:
        with pytest.raises(ValueError, match="expected a caller's number or a prefix"):
            check_entry(raw)


class TestBlocklist:
    LIST = Blocklist.of(("+3161234", "+4930123456", "withheld"))

    @pytest.mark.parametrize(("caller", "refused"), [
        ("+31612345678", True), ("+3161234", True), ("0031612340000", True), ("31612349999", True),
        ("+3161235", False), ("+316123", False), ("+31201234567", False),
        ("+4930123456", True), ("+49301234567", True), ("+493012345", False),
        (None, True), ("anonymous", True),
    ])
    def test_refuses_the_prefixes_and_withheld_callers(self, caller: str | None, refused: bool) -> None:
        assert self.LIST.refuses(caller) is refused

    def test_withheld_callers_pass_unless_listed(self) -> None:
        assert not Blocklist.of(("+3161234",)).refuses(None)

    def test_entries_sorted_withheld_last(self) -> None:
        assert self.LIST.entries == ("+3161234", "+4930123456", "withheld")

    def test_refuses_a_bad_prefix_and_a_list_too_long(self) -> None:
        with pytest.raises(ValueError, match="expected a caller's number"):
            Blocklist(frozenset({"0612"}))
        with pytest.raises(ValueError, match=f"expected at most {MAX_BLOCKED}"):
            Blocklist(frozenset(f"+31{i:04d}" for i in range(MAX_BLOCKED)), withheld=True)

    @given(st.from_regex(r"\+[1-9][0-9]{0,14}", fullmatch=True), st.from_regex(r"[0-9]{0,6}", fullmatch=True))
    def test_a_prefix_refuses_every_number_that_starts_with_it_in_any_form(self, prefix: str, rest: str) -> None:
        blocklist = Blocklist.of((prefix,))
        assert blocklist.refuses(prefix + rest)
        assert blocklist.refuses("00" + prefix[1:] + rest)
        if len(prefix) > 2:  # a shorter number is not in the range
            assert not blocklist.refuses(prefix[:-1])


def refusal_for(number: Number, customer: Customer | None, caller: str | None) -> Refusal | None:
    """What the configuration holding `number` (and `customer`, if any) says about a call from `caller`."""
    customers = {customer.customer_id: customer} if customer is not None else {}
    return Config(customers=customers, numbers={number.e164: number}).refusal(number, caller)


class TestRefusalFor:
    def number(self, blocked: Blocklist | None = None, blocked_with: Refusal | None = None) -> Number:
        return Number(NUMBER, "acme", NumberType.LOCAL, route=ROUTE, blocked=blocked, blocked_with=blocked_with)

    def customer(self, blocked: Blocklist | None = None, blocked_with: Refusal | None = None) -> Customer:
        return Customer("acme", "Acme", blocked=blocked, blocked_with=blocked_with)

    def test_nobody_blocked_without_lists(self) -> None:
        assert refusal_for(self.number(), self.customer(), "+31612345678") is None
        assert refusal_for(self.number(), None, None) is None

    def test_the_numbers_list_and_the_customers_both_apply(self) -> None:
        number = self.number(Blocklist.of(("+3161234",)))
        customer = self.customer(Blocklist.of(("+4930", "withheld")))
        assert refusal_for(number, customer, "+31612345678") == BUSY
        assert refusal_for(number, customer, "+49301234567") == BUSY
        assert refusal_for(number, customer, None) == BUSY
        assert refusal_for(number, customer, "+31201234567") is None
        assert refusal_for(number, None, "+49301234567") is None

    def test_how_the_number_says_else_its_customer_else_busy(self) -> None:
        listed = Blocklist.of(("+3161234",))
        closed, sorry = Refusal("closed"), Refusal("sorry")
        assert refusal_for(self.number(listed, closed), self.customer(blocked_with=sorry), "+3161234") == closed
        assert refusal_for(self.number(listed), self.customer(blocked_with=sorry), "+3161234") == sorry
        assert refusal_for(self.number(blocked_with=closed), self.customer(listed), "+3161234") == closed
        assert refusal_for(self.number(listed), self.customer(), "+3161234") == BUSY


# ---- the call flow


def config(refusal: Refusal | None = None, *, recording: bool = False) -> Config:
    number = Number(NUMBER, "acme", NumberType.LOCAL, route=ROUTE, blocked=Blocklist.of(("+3161234", "withheld")),
                    blocked_with=refusal, recording=recording)
    return Config(customers={"acme": Customer("acme", "Acme")}, numbers={NUMBER: number})


def run(events: list[flow.FlowEvent], cfg: Config) -> tuple[flow.Call, list[flow.Action]]:
    call, actions = flow.Call("c1"), []
    for event in events:
        call, more = flow.step(call, event, cfg)
        actions += more
    return call, actions


def started(caller: str | None) -> CallStarted:
    return CallStarted("c1", at(0.001), NUMBER, caller, at(0), "Ring")


def the_cdr(actions: list[flow.Action]) -> CallRecord:
    [write] = [a for a in actions if isinstance(a, flow.WriteCdr)]
    return write.record


class TestBlockedCallsInTheFlow:
    def test_a_blocked_caller_is_released_busy_at_once_and_nothing_rings(self) -> None:
        call, actions = run([started("+31612345678")], config())
        assert actions == [flow.Hangup(flow.ReleaseReason.BUSY)]
        call, actions = run([started("+31612345678"), HangupRequested("c1", at(0.1), 17),
                             CallDestroyed("c1", at(0.2), 17)], config())
        record = the_cdr(actions)
        assert (record.disposition, record.hangup_cause, record.answered_at) == (Disposition.BLOCKED, 17, None)

    def test_an_announcement_as_early_media_then_busy(self) -> None:
        cfg = config(Refusal("ss-noservice"))
        call, actions = run([started(None)], cfg)
        assert actions == [flow.Progress(), flow.Play("sound:ss-noservice", "c1-blocked")]
        call, actions = run([started(None), PlaybackDone("c1", at(3), "c1-blocked", False)], cfg)
        assert actions[-1] == flow.Hangup(flow.ReleaseReason.BUSY)
        call, actions = run([started(None), PlaybackDone("c1", at(3), "c1-blocked", False),
                             CallDestroyed("c1", at(3.1), 17)], cfg)
        assert the_cdr(actions).disposition is Disposition.BLOCKED

    def test_still_blocked_when_the_caller_hangs_up_during_the_announcement(self) -> None:
        _, actions = run([started(None), HangupRequested("c1", at(1), 16), CallDestroyed("c1", at(1.1), 16)],
                         config(Refusal("ss-noservice")))
        assert the_cdr(actions).disposition is Disposition.BLOCKED

    def test_before_the_recording_notice_or_consent(self) -> None:
        call, actions = run([started("+31612345678")], config(recording=True))
        assert actions == [flow.Hangup(flow.ReleaseReason.BUSY)]
        assert call.data.terms == flow.Terms()

    def test_other_callers_are_routed(self) -> None:
        _, actions = run([started("+31612000000")], config())
        assert actions == [flow.Dial("Local/+31612340701-20@fairline-confirm/n,50", follow=True)]


class TestBlockedCallsCostNothing:
    def test_never_priced_and_never_counted_for_fair_use(self) -> None:
        record = CallRecord("c1", NUMBER, "+31612345678", at(0), None, at(3), Disposition.BLOCKED, 17)
        rated = rate_record(record, "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert (rated.price.list_price_eur, rated.price.billable_seconds) == (Decimal("0.0000"), 0)
        # Fair use counts answered calls only (rating/storage/billing.py): a blocked call never is.
        assert record.answered_at is None

    def test_the_disposition_survives_the_spool(self) -> None:
        record = CallRecord("c1", NUMBER, None, at(0), None, at(3), Disposition.BLOCKED, 17)
        rated = rate_record(record, "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert type(rated).from_json(rated.to_json()) == rated


# ---- the configuration

HEAD = """\
customers:
  - id: acme
    name: Acme
"""
NUMBERS = f"""\
numbers:
  - number: "{NUMBER}"
    customer: acme
    type: local
    route: {{targets: ["+31612340701"]}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, "f.yaml")
    return caught.value.problems


class TestBlockedInTheConfiguration:
    def test_loads_on_customers_and_numbers(self) -> None:
        cfg = parse(HEAD + '    blocked_callers: ["+4930", withheld]\n    blocked_with: {announcement: sorry}\n'
                    + NUMBERS + '    blocked_callers: ["+31612347799"]\n    blocked_with: busy\n', "f.yaml")
        customer, number = cfg.customers["acme"], cfg.numbers[NUMBER]
        assert (customer.blocked, customer.blocked_with) == (Blocklist.of(("+4930", "withheld")), Refusal("sorry"))
        assert (number.blocked, number.blocked_with) == (Blocklist.of(("+31612347799",)), BUSY)

    def test_none_by_default(self) -> None:
        cfg = parse(HEAD + NUMBERS, "f.yaml")
        assert (cfg.customers["acme"].blocked, cfg.numbers[NUMBER].blocked, cfg.numbers[NUMBER].blocked_with) == (
            None, None, None)

    @pytest.mark.parametrize(("more", "expected"), [
        ('    blocked_callers: ["0612345678"]\n',
         "f.yaml:9: numbers[0].blocked_callers[0]: '0612345678': expected a caller's number or a prefix of one in "
         "E.164: '+' and up to 15 digits, like \"+31612345678\" or \"+3190\", or withheld (callers who present no "
         "number)"),
        ('    blocked_callers: [anonymous]\n', "f.yaml:9: numbers[0].blocked_callers[0]: 'anonymous': expected"),
        ('    blocked_callers: ["+31 6 1234"]\n', "f.yaml:9: numbers[0].blocked_callers[0]: '+31 6 1234': expected"),
        ('    blocked_callers: ["+3161234", withheld, "+3161234"]\n',
         "f.yaml:9: numbers[0].blocked_callers[2]: +3161234 is already numbers[0].blocked_callers[0]; expected "
         "each caller once"),
        ('    blocked_callers:\n      - [1]\n', "f.yaml:10: numbers[0].blocked_callers[0]: expected a caller's"),
        ('    blocked_callers: "+3161234"\n', "f.yaml:9: numbers[0].blocked_callers: expected a list of callers; "
                                           "each expected a caller's number"),
        ('    blocked_callers: []\n', "f.yaml:9: numbers[0].blocked_callers: expected a list of callers"),
        ('    blocked_with: reject\n', "f.yaml:9: numbers[0].blocked_with: expected busy, or {announcement: SOUND} "
                                     "(played as early media, then busy)"),
        ('    blocked_with: {announcement: "../etc"}\n',
         "f.yaml:9: numbers[0].blocked_with.announcement: expected an Asterisk sound name like hello-world"),
        ('    blocked_with: {sound: x}\n', "f.yaml:9: numbers[0].blocked_with.sound: unknown key; expected one of "
                                         "announcement"),
        ('    blocked_with: {}\n', "f.yaml:9: numbers[0].blocked_with: expected busy, or {announcement: SOUND}"),
    ], ids=["national-form", "anonymous-is-spelt-withheld", "spaces", "twice", "not-a-scalar", "not-a-list", "empty",
            "unknown-refusal", "bad-sound", "unknown-key", "empty-mapping"])
    def test_each_problem_on_a_number_names_file_line_and_key(self, more: str, expected: str) -> None:
        [problem] = problems(HEAD + NUMBERS + more)
        assert problem.startswith(expected), problem

    def test_a_customers_problem_names_its_line_and_key(self) -> None:
        [problem] = problems(HEAD + '    blocked_callers: ["+31", "31"]\n' + NUMBERS)
        assert problem.startswith("f.yaml:4: customers[0].blocked_callers[1]: '31': expected"), problem

    def test_a_list_too_long(self) -> None:
        callers = ", ".join(f'"+3161{i:04d}"' for i in range(MAX_BLOCKED + 1))
        assert problems(HEAD + NUMBERS + f"    blocked_callers: [{callers}]\n") == [
            f"f.yaml:9: numbers[0].blocked_callers: {MAX_BLOCKED + 1} callers; expected at most {MAX_BLOCKED} "
            "(a prefix blocks a whole range)"]
