"""Blocked callers and closed days on the fallback path (decision 0030): the generated dialplan, and reconcile."""

from __future__ import annotations

from datetime import date

from ari_app.config.yaml_loader import parse
from ari_app.dialplan_gen import HOLIDAY_YEARS, fallback_dialplan
from rating.core.reconcile import CallPath, inbound_calls, reconcile
from tests.unit.test_reconcile import LATER, WINDOW, call, cdr, record

CONFIG = """\
customers:
  - {id: acme, name: Acme}
  - {id: xnz, name: X, blocked_callers: ["+4930", withheld], blocked_with: {announcement: ss-noservice}}
numbers:
  - number: "+31201230500"
    customer: acme
    type: local
    route: {targets: ["+31612340701"]}
    hours: {mon-fri: "08:00-18:00"}
    outside_hours: {targets: ["+31612340702"]}
    closed:
      public_holidays: true
      dates: ["2026-12-24/2026-12-31", "2027-01-02"]
      route: {targets: ["+31612340703"]}
    blocked_callers: ["+3161234", withheld]
  - number: "+31201230501"
    customer: xnz
    type: local
    route: {targets: ["+31612340704"]}
  - number: "+31201230502"
    customer: xnz
    type: local
    announcement: hello-world
    blocked_with: busy
  - number: "+31201230503"
    customer: acme
    type: local
    route: {targets: ["+31612340705"]}
    hours: {mon-fri: "08:00-18:00"}
    outside_hours: {targets: ["+31612340706"]}
    closed: {dates: ["2026-08-03"], announcement: closed-today}
  - number: "+31201230504"
    customer: acme
    type: local
    route: {targets: ["+31612340707"]}
    hours: {mon-fri: "08:00-18:00"}
    outside_hours: {targets: ["+31612340708"]}
    closed: {public_holidays: true}
"""


def generated() -> str:
    return fallback_dialplan(parse(CONFIG, "f.yaml"))


def extension(text: str, e164: str) -> str:
    """The lines of one extension of fairline-fallback."""
    fallback = text.split("[fairline-fallback]\n", 1)[1]
    start = fallback.index(f"exten => {e164},1,")
    end = fallback.find("\nexten => ", start + 1)
    return fallback[start:] if end < 0 else fallback[start:end + 1]


class TestBlockedCallersInTheFallback:
    def test_every_list_once_a_number_under_itself_a_customer_under_its_key(self) -> None:
        text = generated()
        blocked = text.split("[fairline-blocked-callers]\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert [line for line in blocked if not line.startswith(";")] == [
            "exten => +31201230500withheld,1,NoOp(blocked)",
            "exten => C1withheld,1,NoOp(blocked)",
            "exten => _+31201230500+3161234!,1,NoOp(blocked)",
            "exten => _C1+4930!,1,NoOp(blocked)",
        ]

    def test_a_number_checks_its_list_and_its_customers_before_it_rings(self) -> None:
        assert extension(generated(), "+31201230501") == (
            "exten => +31201230501,1,Set(FAIRLINE_BLOCKED_WITH=ss-noservice)\n"
            " same => n,Gosub(fairline-block,check,1(,C1))\n"
            ' same => n,GotoIf($["${GOSUB_RETVAL}" != ""]?fairline-blocked,s,1)\n'
            " same => n,Dial(Local/+31612340704-20@fairline-confirm/n,50)\n"
            " same => n,Hangup()\n")

    def test_the_numbers_own_refusal_wins_over_its_customers(self) -> None:
        assert extension(generated(), "+31201230502") == (
            "exten => +31201230502,1,Gosub(fairline-block,check,1(,C1))\n"
            ' same => n,GotoIf($["${GOSUB_RETVAL}" != ""]?fairline-blocked,s,1)\n'
            " same => n,Answer()\n same => n,Playback(hello-world)\n same => n,Hangup()\n")

    def test_no_lists_no_check_and_no_context(self) -> None:
        text = fallback_dialplan(parse(CONFIG.replace(', blocked_callers: ["+4930", withheld]', "").replace(
            '    blocked_callers: ["+3161234", withheld]\n', ""), "f.yaml"))
        assert "fairline-block" not in text
        assert extension(text, "+31201230501") == (
            "exten => +31201230501,1,Dial(Local/+31612340704-20@fairline-confirm/n,50)\n same => n,Hangup()\n")


class TestClosedDaysInTheFallback:
    def test_a_closed_day_rings_the_closures_route_not_the_daytime_target(self) -> None:
        assert extension(generated(), "+31201230500") == (
            "exten => +31201230500,1,Gosub(fairline-block,check,1(+31201230500,))\n"
            ' same => n,GotoIf($["${GOSUB_RETVAL}" != ""]?fairline-blocked,s,1)\n'
            " same => n,Set(FAIRLINE_TODAY=${STRFTIME(${EPOCH},Europe/Amsterdam,%Y%m%d)})\n"
            " same => n,GotoIf(${DIALPLAN_EXISTS(fairline-holidays,NL${FAIRLINE_TODAY},1)}?closed)\n"
            " same => n,GotoIf($[${FAIRLINE_TODAY} >= 20261224 & ${FAIRLINE_TODAY} <= 20261231]?closed)\n"
            " same => n,GotoIf($[${FAIRLINE_TODAY} >= 20270102 & ${FAIRLINE_TODAY} <= 20270102]?closed)\n"
            " same => n,Dial(Local/+31612340701-20@fairline-confirm/n,50)\n"
            " same => n,Hangup()\n"
            " same => n(closed),Dial(Local/+31612340703-20@fairline-confirm/n,50)\n"
            " same => n,Hangup()\n")

    def test_the_closures_announcement(self) -> None:
        assert extension(generated(), "+31201230503").endswith(
            " same => n,Dial(Local/+31612340705-20@fairline-confirm/n,50)\n same => n,Hangup()\n"
            " same => n(closed),Answer()\n same => n,Playback(closed-today)\n same => n,Hangup()\n")

    def test_without_its_own_route_the_outside_hours_route(self) -> None:
        assert extension(generated(), "+31201230504").endswith(
            " same => n(closed),Dial(Local/+31612340708-20@fairline-confirm/n,50)\n same => n,Hangup()\n")

    def test_the_holidays_of_each_calendar_in_use_for_every_year_of_the_window(self) -> None:
        holidays = [line for line in generated().split("[fairline-holidays]\n", 1)[1].split("\n\n", 1)[0].splitlines()
                    if not line.startswith(";")]
        assert "exten => NL20261225,1,NoOp(public holiday)" in holidays
        assert "exten => NL20270427,1,NoOp(public holiday)" in holidays  # King's Day
        assert "exten => NL20261224,1,NoOp(public holiday)" not in holidays
        assert {line[11:15] for line in holidays} == {str(y) for y in HOLIDAY_YEARS}

    def test_a_subdivisions_calendar_has_a_key_of_its_own(self) -> None:
        text = fallback_dialplan(parse(CONFIG.replace("public_holidays: true}", "public_holidays: Zuid}"), "f.yaml"))
        assert "DIALPLAN_EXISTS(fairline-holidays,NLZuid${FAIRLINE_TODAY},1)" in extension(text, "+31201230504")
        assert "exten => NLZuid20261225,1,NoOp(public holiday)" in text

    def test_the_holiday_window_reaches_five_years_ahead(self) -> None:
        """The fallback knows no holidays past HOLIDAY_YEARS: move the window on before it runs out."""
        assert date.today().year + 5 < HOLIDAY_YEARS.stop, "extend ari_app/dialplan_gen.py HOLIDAY_YEARS"

    def test_same_output_whatever_the_order_of_customers(self) -> None:
        lines = CONFIG.splitlines(keepends=True)
        swapped = "".join(lines[:1] + [lines[2], lines[1]] + lines[3:])
        assert fallback_dialplan(parse(swapped, "f.yaml")) == generated()


class TestReconcileBlocked:
    def test_the_fallbacks_refusal_is_its_own_path(self) -> None:
        [c] = inbound_calls([record(dcontext="fairline-blocked", dst="s", lastapp="Hangup",
                                    did="+31201230500")]).values()
        assert c.path is CallPath.BLOCKED and not c.for_fairline

    def test_counted_apart_and_no_difference(self) -> None:
        """The fallback refused it by design: fairline has no CDR of it, and none is missing."""
        found = reconcile([call("1"), call("2", path=CallPath.BLOCKED)], [cdr("1")], WINDOW, now=LATER)
        assert (found.blocked, found.differences, found.asterisk_calls, found.limited) == (1, 0, 1, 0)
