"""The billing pages' pure parts: months in addresses, staff's forms (a message per wrong field, nothing
made while one is wrong), money and durations as `fairline invoice` writes them, the queue policy's hint."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from console.core.billing_view import (
    NOTE_MAX,
    REASON_MAX,
    ContactNote,
    HeavyUserDecision,
    called_at_text,
    cap_hint,
    contact_note_form,
    duration,
    four,
    heavy_user_form,
    month_in_path,
    recent_months,
)
from rating.core.fair_use import Month
from rating.core.queue_policy import ADVICE

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


class TestMonths:
    @pytest.mark.parametrize(("text", "month"), [("2026-11", Month(2026, 11)), ("0001-01", Month(1, 1))])
    def test_a_month_in_an_address_is_yyyy_mm(self, text: str, month: Month) -> None:
        assert month_in_path(text) == month

    @pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-11", "2026-11.csv", "bolt", "", "2026-11 "])
    def test_anything_else_is_no_month(self, text: str) -> None:
        assert month_in_path(text) is None

    def test_recent_months_end_with_today_s_newest_first_across_a_year(self) -> None:
        assert recent_months(date(2026, 2, 28), 4) == (Month(2026, 2), Month(2026, 1), Month(2025, 12),
                                                       Month(2025, 11))


class TestFormatting:
    @pytest.mark.parametrize(("amount", "text"), [(Decimal("13.5"), "13.5000"), (Decimal("0"), "0.0000"),
                                                  (Decimal("0.00005"), "0.0001"), (Decimal("25.0000"), "25.0000")])
    def test_money_has_four_decimals_half_up(self, amount: Decimal, text: str) -> None:
        assert four(amount) == text

    @pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (59, "0:59"), (60, "1:00"), (3725, "62:05"),
                                                   (None, "")])
    def test_a_call_s_time_is_minutes_and_seconds_a_fee_has_none(self, seconds: int | None, text: str) -> None:
        assert duration(seconds) == text


class TestHeavyUserForm:
    def test_a_complete_form_is_the_decision(self) -> None:
        assert heavy_user_form({"month": " 2026-11 ", "decision": "mark", "reason": " agreed by phone "}) == (
            HeavyUserDecision(Month(2026, 11), True, "agreed by phone"), {})
        assert heavy_user_form({"month": "2026-11", "decision": "unmark", "reason": "x"})[0] == HeavyUserDecision(
            Month(2026, 11), False, "x")

    def test_each_wrong_field_has_its_own_message_and_there_is_no_decision(self) -> None:
        decision, errors = heavy_user_form({"month": "2026-13", "decision": "maybe", "reason": "   "})
        assert decision is None
        assert errors == {"month": "Expected a month as YYYY-MM, e.g. 2026-11.",
                          "decision": "Choose: mark as heavy user, or unmark.",
                          "reason": "Say why, for the record (the customer may ask)."}

    def test_a_missing_field_counts_as_empty(self) -> None:
        assert set(heavy_user_form({})[1]) == {"month", "decision", "reason"}

    def test_one_wrong_field_is_enough_to_refuse(self) -> None:
        decision, errors = heavy_user_form({"month": "2026-11", "decision": "mark", "reason": "x" * (REASON_MAX + 1)})
        assert decision is None and errors == {"reason": f"At most {REASON_MAX} characters, please; this is "
                                                         f"{REASON_MAX + 1}."}


class TestContactNoteForm:
    def test_a_complete_form_is_the_note_at_its_time_in_utc(self) -> None:
        note, errors = contact_note_form({"spoke_with": "Ann (owner)", "called_at": "2026-12-07 14:30",
                                          "note": "Agreed: heavy user from January."}, now=NOW)
        assert errors == {}
        assert note == ContactNote("Ann (owner)", datetime(2026, 12, 7, 14, 30, tzinfo=UTC),
                                   "Agreed: heavy user from January.")

    def test_the_time_may_be_written_with_a_t_as_browsers_do(self) -> None:
        note, _ = contact_note_form({"spoke_with": "x", "called_at": "2026-12-07T09:05", "note": "y"}, now=NOW)
        assert note is not None and note.called_at == datetime(2026, 12, 7, 9, 5, tzinfo=UTC)

    @pytest.mark.parametrize("when", ["yesterday", "2026-12-07", "2026-02-30 10:00", "2026-12-07 25:00", ""])
    def test_a_time_that_is_not_one_is_refused_saying_how_to_write_it(self, when: str) -> None:
        note, errors = contact_note_form({"spoke_with": "x", "called_at": when, "note": "y"}, now=NOW)
        assert note is None
        assert errors == {
            "called_at": "Expected the time of the call as YYYY-MM-DD HH:MM (UTC), e.g. 2026-12-07 14:30."}

    def test_a_call_later_than_now_is_refused(self) -> None:
        note, errors = contact_note_form({"spoke_with": "x", "called_at": "2026-12-07 15:01", "note": "y"}, now=NOW)
        assert note is None and errors == {
            "called_at": "That is later than now (2026-12-07 15:00 UTC): note a call once it is made."}

    def test_whom_and_what_are_required_and_bounded(self) -> None:
        too_long = "n" * (NOTE_MAX + 1)
        _, errors = contact_note_form({"spoke_with": " ", "called_at": "2026-12-07 14:30", "note": too_long}, now=NOW)
        assert errors == {"spoke_with": 'Say whom you spoke with (or "no answer").',
                          "note": f"At most {NOTE_MAX} characters, please; this is {NOTE_MAX + 1}."}

    def test_the_form_shows_a_time_as_it_takes_it(self) -> None:
        assert called_at_text(NOW) == "2026-12-07 15:00"
        note, _ = contact_note_form({"spoke_with": "x", "called_at": called_at_text(NOW), "note": "y"}, now=NOW)
        assert note is not None and note.called_at == NOW


class TestCapHint:
    def test_a_flagged_customer_gets_the_policy_s_advice_in_plain_words(self) -> None:
        hint = cap_hint(flagged=True, cap_hits=7, visits=40, cap_percent=Decimal("17.5"))
        assert hint is not None
        assert "waited the full 60 seconds and were sent on in 7 of 40 queue visits (17.5 %)" in hint
        assert hint.endswith(f"The policy's advice: {ADVICE}.") and "grow the team" in hint

    def test_no_hint_unless_flagged(self) -> None:
        assert cap_hint(flagged=False, cap_hits=4, visits=5, cap_percent=Decimal(80)) is None
