"""rate_record: every finished call becomes exactly one priced (or knowingly unpriced) CDR."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

import pytest

from rating.core.cdr import CallRecord, Disposition, RatedCdr, node_of, rate_record
from rating.core.tariff import DEFAULT_RATES, NumberType

CET = timezone(timedelta(hours=1))


def call(did: str = "+31201234567", *, start: datetime = datetime(2026, 11, 23, 18, 59, 30, tzinfo=CET),
         answer_after: float | None = 10, duration: float = 90) -> CallRecord:
    answered = start + timedelta(seconds=answer_after) if answer_after is not None else None
    end = (answered or start) + timedelta(seconds=duration)
    return CallRecord("c1", did, "+31612345678", start, answered, end,
                      Disposition.ANSWERED if answered else Disposition.ABANDONED, 16)


class TestRateRecord:
    def test_answered_local_call_is_priced_like_the_published_example(self) -> None:
        """The issue's worked example: 90 s across 19:00, 20 peak + 70 off-peak, EUR 0.1217."""
        rated = rate_record(call(), "acme", NumberType.LOCAL, DEFAULT_RATES)
        p = rated.price
        assert (p.billable_seconds, p.peak_seconds, p.offpeak_seconds) == (90, 20, 70)
        assert (p.setup_eur, p.usage_eur, p.list_price_eur) == (Decimal("0.0400"), Decimal("0.0817"), Decimal("0.1217"))
        assert p.fair_use_eligible and rated.rating_error is None

    def test_unanswered_call_costs_nothing(self) -> None:
        rated = rate_record(call(answer_after=None), "acme", NumberType.PREMIUM, DEFAULT_RATES)
        assert rated.price.list_price_eur == 0 and rated.price.billable_seconds == 0

    def test_number_not_in_service_is_kept_without_customer_or_price(self) -> None:
        rated = rate_record(call("+31209999999", answer_after=None), None, None, DEFAULT_RATES)
        assert rated.customer_id is None and rated.number_type is None
        assert rated.price.list_price_eur == 0 and not rated.price.fair_use_eligible

    def test_did_that_is_not_a_number_still_gets_a_utc_billing_month(self) -> None:
        rated = rate_record(call("0123", start=datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)),
                            None, None, DEFAULT_RATES)
        assert rated.billing_month == date(2026, 11, 1)

    def test_billing_month_follows_the_numbers_local_clock(self) -> None:
        """23:30 UTC on 31 October is already 1 November in Amsterdam."""
        rated = rate_record(call(start=datetime(2026, 10, 31, 23, 30, tzinfo=timezone.utc)), "acme",
                            NumberType.LOCAL, DEFAULT_RATES)
        assert rated.billing_month == date(2026, 11, 1)

    def test_call_that_cannot_be_priced_is_kept_with_the_reason(self) -> None:
        """A call answered before the first tariff version: kept, unpriced, with why."""
        early = call(start=datetime(1999, 6, 1, 12, 0, tzinfo=CET))
        rated = rate_record(early, "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert rated.rating_error is not None and "answer" in rated.rating_error
        assert rated.price.list_price_eur == 0
        assert rated.call == early


class TestRatingBasis:
    """Each CDR says what priced it (issue 16): billing explains an amount from the row, without re-rating."""

    def test_a_priced_call_names_its_tariff_version_and_its_clock(self) -> None:
        rated = rate_record(call(), "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert (rated.price.tariff, rated.rating_zone) == ("2000-01-01: 0.04 + 0.07/0.05 per min", "Europe/Amsterdam")

    def test_a_number_abroad_is_rated_on_its_own_clock(self) -> None:
        rated = rate_record(call("+12125551234"), "acme", NumberType.INTERNATIONAL, DEFAULT_RATES)
        assert rated.rating_zone == "America/New_York"

    def test_an_unanswered_call_names_its_clock_but_no_tariff(self) -> None:
        rated = rate_record(call(answer_after=None), "acme", NumberType.LOCAL, DEFAULT_RATES)
        assert (rated.price.tariff, rated.rating_zone) == (None, "Europe/Amsterdam")

    def test_a_did_that_is_not_a_number_is_rated_on_utc_and_says_so(self) -> None:
        rated = rate_record(call("0123"), None, None, DEFAULT_RATES)
        assert (rated.price.tariff, rated.rating_zone) == (None, "UTC")

    def test_a_spool_line_without_them_reads_as_unknown(self) -> None:
        """Lines spooled before issue 16 lack both; they read back as None, not as a guess."""
        line = rate_record(call(), "acme", NumberType.LOCAL, DEFAULT_RATES).to_json()
        del line["tariff"], line["rating_zone"]
        back = RatedCdr.from_json(line)
        assert (back.price.tariff, back.rating_zone) == (None, None)


class TestJson:
    @given(answer_after=st.one_of(st.none(), st.integers(0, 120)), duration=st.integers(0, 7200),
           number_type=st.sampled_from(list(NumberType)))
    def test_a_cdr_survives_the_spool_format_unchanged(self, answer_after: int | None, duration: int,
                                                       number_type: NumberType) -> None:
        did = {"tollfree": "+318001234567", "premium": "+319001234567"}.get(number_type.value, "+31201234567")
        rated = rate_record(call(did, answer_after=answer_after, duration=duration), "acme", number_type,
                            DEFAULT_RATES)
        assert RatedCdr.from_json(rated.to_json()) == rated


class TestNodeOf:
    @pytest.mark.parametrize(("call_id", "node"), [
        ("fairline1-1795622110.0", "fairline1"),  # systemname set: Asterisk prefixes every channel id
        ("1795622110.0", ""),  # no systemname
        ("pbx-ams-2-1795622110.17", "pbx-ams-2"),
        ("hist-001", ""),  # a historic import's own id
        ("-1795622110.0", ""),
    ])
    def test_the_node_is_the_systemname_asterisk_put_before_the_channel_id(self, call_id: str, node: str) -> None:
        assert node_of(call_id) == node
