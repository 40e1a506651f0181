"""The console's pure rules: password policy, session expiry, CSRF, lockout, TOTP, the calls filter."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pyotp
import pytest

from console.core import call_filter, csrf, passwords, sessions, throttle, totp
from console.core.call_filter import CallFilter, Cursor, FilterError

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
ALICE = passwords.Holder(name="Alice Jansen", email="alice.jansen@example.nl")


class TestPasswordRules:
    @pytest.mark.parametrize(("password", "why"), [
        ("Xq7!vR2#", "too short: 8 characters, at least 12 are needed"),
        ("password1234", "too easy to guess: this is a very common password"),
        ("qwertyuiopasdf", "too easy to guess"),
        ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ("jansen-Correct-Horse-Battery", "contains your name or e-mail address"),
        ("ALICE.JANSEN@example.nl!x9", "contains your name or e-mail address"),
    ])
    def test_a_weak_or_personal_password_is_refused_saying_why(self, password: str, why: str) -> None:
        found = passwords.problems(password, ALICE)
        assert any(p.startswith(why) for p in found), found

    def test_a_long_unguessable_password_of_someone_else_s_words_passes(self) -> None:
        assert passwords.problems("plaid-otter-marmalade-vortex", ALICE) == []

    def test_every_broken_rule_is_reported_not_only_the_first(self) -> None:
        found = passwords.problems("alice", ALICE)
        assert [p.split(":")[0] for p in found] == ["too short", "contains your name or e-mail address",
                                                   "too easy to guess"]

    def test_short_name_parts_do_not_forbid_every_password_containing_them(self) -> None:
        assert passwords.problems("totally-quixotic-lemur-waltz", passwords.Holder("Al Bo", "al@x.nl")) == []

    def test_the_rules_are_explained_in_one_sentence(self) -> None:
        assert passwords.explained().startswith("A password needs at least 12 characters, not containing your name")

    def test_a_generated_password_passes_the_rules_and_differs_each_time(self) -> None:
        made = {passwords.generate() for _ in range(5)}
        assert len(made) == 5
        for p in made:
            assert len(p) == 23 and passwords.problems(p, ALICE) == []

    def test_argon2id_hash_verifies_the_password_and_nothing_else(self) -> None:
        h = passwords.hash_password("plaid-otter-marmalade-vortex")
        assert h.startswith("$argon2id$")
        assert passwords.verify(h, "plaid-otter-marmalade-vortex")
        assert not passwords.verify(h, "plaid-otter-marmalade-vortex ")
        assert not passwords.verify("not a hash", "anything")
        assert not passwords.needs_rehash(h)

    def test_a_hash_with_older_parameters_is_remade(self) -> None:
        import argon2
        old = argon2.PasswordHasher(time_cost=1, memory_cost=8192).hash("plaid-otter-marmalade-vortex")
        assert passwords.needs_rehash(old)

    @pytest.mark.parametrize(("age", "max_days", "due"), [
        (timedelta(days=179, hours=23), 180, None), (timedelta(days=180), 180, 180), (timedelta(days=400), 180, 400),
        (timedelta(days=4000), 0, None)])
    def test_a_change_is_due_once_the_password_reaches_its_age(self, age: timedelta, max_days: int,
                                                               due: int | None) -> None:
        assert passwords.change_due(T0 - age, T0, max_days) == due


class TestSessionExpiry:
    POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12),
                                    second_factor=timedelta(minutes=5))

    @pytest.mark.parametrize(("since_start", "since_seen", "signed_in", "ended"), [
        (timedelta(hours=1), timedelta(minutes=29), True, None),
        (timedelta(hours=1), timedelta(minutes=30), True, sessions.Ended.IDLE),
        (timedelta(hours=12), timedelta(0), True, sessions.Ended.ABSOLUTE),  # busy all day: still ends
        (timedelta(minutes=4), timedelta(minutes=4), False, None),
        (timedelta(minutes=5), timedelta(0), False, sessions.Ended.ABSOLUTE),  # the code came too late
    ])
    def test_a_session_ends_when_idle_or_too_old(self, since_start: timedelta, since_seen: timedelta,
                                                 signed_in: bool, ended: sessions.Ended | None) -> None:
        assert sessions.ended(created_at=T0 - since_start, last_seen_at=T0 - since_seen, signed_in=signed_in,
                              now=T0, policy=self.POLICY) == ended

    def test_the_table_keeps_a_digest_not_the_token(self) -> None:
        token = sessions.new_token()
        assert len(token) >= 43 and sessions.digest(token) != token and len(sessions.digest(token)) == 64
        assert sessions.new_token() != token


class TestCsrf:
    def test_only_the_expected_token_is_valid(self) -> None:
        token = csrf.new_token()
        assert csrf.valid(token, token)
        assert not csrf.valid(token, csrf.new_token())
        assert not csrf.valid(token, None) and not csrf.valid(token, "")
        assert not csrf.valid(None, token) and not csrf.valid("", "")


class TestLockout:
    POLICY = throttle.ThrottlePolicy(window=timedelta(minutes=15), per_account=5, per_address=20)

    def lock(self, account: list[timedelta], address: list[timedelta] = []) -> throttle.Lock | None:
        return throttle.lock(account_failures=[T0 - a for a in account], address_failures=[T0 - a for a in address],
                             now=T0, policy=self.POLICY)

    def test_four_failures_leave_the_account_open(self) -> None:
        assert self.lock([timedelta(minutes=m) for m in (1, 2, 3, 4)]) is None

    def test_five_failures_within_the_window_lock_the_account_for_a_window_after_the_last(self) -> None:
        assert self.lock([timedelta(minutes=m) for m in (1, 2, 3, 4, 14)]) == throttle.Lock(
            throttle.Locked.ACCOUNT, T0 - timedelta(minutes=1) + timedelta(minutes=15))

    def test_failures_older_than_the_window_are_forgotten(self) -> None:
        assert self.lock([timedelta(minutes=m) for m in (1, 2, 3, 4, 15)]) is None

    def test_an_address_trying_many_accounts_is_locked_on_its_own_count(self) -> None:
        assert self.lock([], [timedelta(seconds=s) for s in range(19)]) is None
        locked = self.lock([], [timedelta(seconds=s) for s in range(20)])
        assert locked is not None and locked.why is throttle.Locked.ADDRESS

    def test_the_fifth_failure_is_the_one_audited_as_the_lockout(self) -> None:
        assert [n for n in range(1, 9) if throttle.locks_now(n, self.POLICY)] == [5]


class TestTotp:
    def test_the_current_code_is_accepted_once(self) -> None:
        secret = totp.new_secret()
        code = pyotp.TOTP(secret).at(T0)
        step = totp.accepted_step(secret, code, now=T0, last_step=None)
        assert step == pyotp.TOTP(secret).timecode(T0)
        assert totp.accepted_step(secret, code, now=T0, last_step=step) is None  # replayed

    def test_one_step_of_drift_is_accepted_two_are_not(self) -> None:
        secret = totp.new_secret()
        assert totp.accepted_step(secret, pyotp.TOTP(secret).at(T0 - timedelta(seconds=30)), now=T0,
                                  last_step=None) is not None
        assert totp.accepted_step(secret, pyotp.TOTP(secret).at(T0 - timedelta(seconds=90)), now=T0,
                                  last_step=None) is None

    @pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef"])
    def test_a_malformed_code_is_refused(self, code: str) -> None:
        assert totp.accepted_step(totp.new_secret(), code, now=T0, last_step=None) is None

    def test_the_uri_names_the_issuer_and_the_account(self) -> None:
        secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        uri = totp.provisioning_uri(secret, "alice@example.nl")
        assert uri.startswith(f"otpauth://totp/fairline:alice%40example.nl?secret={secret}")
        assert totp.grouped("JBSWY3DPEHPK3PXP") == "JBSW Y3DP EHPK 3PXP"


class TestCallFilter:
    TODAY = date(2026, 12, 7)

    def test_without_filters_the_last_31_days_of_every_number_and_outcome(self) -> None:
        assert call_filter.parse({}, today=self.TODAY) == CallFilter(date(2026, 11, 7), self.TODAY)

    def test_the_filters_as_typed(self) -> None:
        f = call_filter.parse({"from": "2026-11-01", "to": "2026-11-30", "number": "+31201234567",
                               "outcome": "answered"}, today=self.TODAY)
        assert (f.start, f.end) == (datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))
        assert (f.number, f.outcome) == ("+31201234567", "answered")

    @pytest.mark.parametrize(("params", "field", "message"), [
        ({"from": "yesterday"}, "from", "a date such as 2026-12-07, not 'yesterday'"),
        ({"from": "2026-12-08", "to": "2026-12-07"}, "from", "2026-12-08 is after 2026-12-07"),
        ({"from": "2025-01-01", "to": "2026-12-07"}, "from", "at most 366 days at once"),
        ({"number": "0201234567"}, "number", "an E.164 number such as +31201234567"),
        ({"outcome": "won"}, "outcome", "one of answered, no_answer"),
        ({"after": "!!!"}, "after", "not a page link this console made"),
    ])
    def test_a_bad_filter_names_its_field_and_what_was_expected(self, params: dict[str, str], field: str,
                                                              message: str) -> None:
        with pytest.raises(FilterError) as bad:
            call_filter.parse(params, today=self.TODAY)
        assert bad.value.field == field and bad.value.message.startswith(message)

    def test_the_cursor_round_trips_through_the_query_string(self) -> None:
        cursor = Cursor(T0, "1733572800.17")
        f = call_filter.parse({"after": cursor.encode(), "outcome": "blocked"}, today=self.TODAY)
        assert f.after == cursor
        assert call_filter.parse(f.query(after=cursor), today=self.TODAY) == f
