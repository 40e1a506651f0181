"""Call flows changed in the console's forms, over HTTP against the real PostgreSQL (a scratch database per
test, test_console_db.py's): a save is a new version by the customer, a bad route is refused next to its
field with nothing saved, a stale edit is refused with what changed, another customer's save meanwhile is
no reason to refuse, staff attach the agreed fee, the history shows it all, and nobody reaches another
customer's number (decision 0035)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import asyncpg
import httpx2
import pytest
from starlette.testclient import TestClient

from ari_app.config_versions import number_changes
from rating.storage.config_store import newest_version, store_version
from tests.e2e.test_console_db import (ACME_NUMBERS, BOLT_NUMBER, BOLT_SECRETS, Console, csrf_of, enrol,
                                       post_form)
from tests.e2e.test_console_db import console as console  # noqa: F401  # the fixture, a scratch database

pytestmark = pytest.mark.e2e

SHOP = ACME_NUMBERS[0]  # rings +31612340001
EDIT = f"/numbers/{SHOP}/edit"
STAFF_EDIT = f"/staff/customers/acme/numbers/{SHOP}/edit"
SAVED = re.compile(r"/history\?saved=(v[0-9]+)")


@pytest.fixture
def flows(console: Console) -> Iterator[Console]:  # noqa: F811
    """The console fixture, with the number directory `fairline run` keeps (a fee names a customer's numbers)."""
    console.sql("""INSERT INTO numbers (e164, customer_id, number_type, active_from)
                   VALUES ($1, 'acme', 'local', '2026-01-01'), ($2, 'acme', 'local', '2026-01-01'),
                          ($3, 'bolt', 'local', '2026-01-01')""", *ACME_NUMBERS, BOLT_NUMBER)
    yield console


def base_of(c: TestClient, path: str) -> str:
    found = re.search(r'name="base" value="(v[0-9]+)"', c.get(path).text)
    assert found
    return found.group(1)


def save(c: TestClient, path: str, base: str, *, token_from: str | None = None, **fields: str) -> httpx2.Response:
    """Post the edit form at `path` (the CSRF token from that page, or from `token_from` where it is refused)."""
    data = {"answer": "targets", "strategy": "simultaneous", "reason": "the shop's new mobile", "base": base, **fields}
    return c.post(path, data={**data, "csrf_token": csrf_of(c, token_from or path)})


def versions(console: Console) -> list[asyncpg.Record]:
    return console.sql("SELECT id, version, author, role, reason, based_on, content FROM config_versions ORDER BY id")


def staff(console: Console) -> TestClient:
    c = console.client()
    post_form(c, "/login", {"email": "sam@fairline.example", "password": "plaid-otter-marmalade-vortex"})
    enrol(console, c, "sam@fairline.example")
    return c


def store_as_admin(console: Console, old: str, new: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(console.url)
        try:
            newest = await newest_version(conn)
            assert newest is not None and old in newest.content
            text = newest.content.replace(old, new)
            await store_version(conn, content=text, author="admin", role="admin", reason="meanwhile",
                                based_on=newest.id, changes=number_changes(newest.content, text))
        finally:
            await conn.close()
    asyncio.run(run())


class TestSave:
    def test_a_customer_s_change_is_a_new_version_by_them_and_shows_in_the_history(self, flows: Console) -> None:
        c = flows.sign_in("ann@acme.example")
        form = c.get(EDIT)
        assert form.status_code == 200 and "+31612340001" in form.text and 'value="v1"' in form.text
        r = save(c, EDIT, "v1", targets="+31612340009\n+31612340010, no confirm", ring_seconds="15")
        assert r.status_code == 303, r.text
        saved = SAVED.search(r.headers["location"])
        assert saved and saved.group(1) == "v2"
        [_, v2] = versions(flows)
        assert (v2["author"], v2["role"], v2["reason"], v2["based_on"]) == (
            "ann@acme.example", "customer", "the shop's new mobile", 1)
        assert [r["number"] for r in flows.sql("SELECT number FROM config_version_changes WHERE version_id = 2")] == [SHOP]
        assert '- +31612340009' in v2["content"] or "'+31612340009'" in v2["content"]
        history = c.get(r.headers["location"])
        assert history.status_code == 200 and "Saved as version v2" in history.text
        assert all(s in history.text for s in ("v2", "ann@acme.example", "customer", "the shop&#39;s new mobile"))
        assert "+31612340009" in history.text  # the diff
        mine = c.get("/history")
        assert "v2" in mine.text and "v1" in mine.text  # the first version added the number

    def test_an_invalid_route_is_shown_next_to_its_field_and_nothing_is_saved(self, flows: Console) -> None:
        c = flows.sign_in("ann@acme.example")
        r = save(c, EDIT, "v1", targets="+31612340009\n+319001234567", reason="")
        assert r.status_code == 400
        page = r.text
        targets_field = page[page.index('name="targets"'):page.index('name="strategy"')]
        assert "line 2: +319001234567 is a premium-rate number: refused to prevent toll fraud" in targets_field
        reason_field = page[page.index('name="reason"'):]
        assert "expected a few words on why" in reason_field
        assert "+319001234567" in page[page.index("<textarea name=\"targets\""):]  # what was typed stays
        assert len(versions(flows)) == 1
        same = save(c, EDIT, "v1", targets="+31612340001")  # the flow as it is: no version either
        assert same.status_code == 200 and "Nothing changed" in same.text and len(versions(flows)) == 1


class TestStale:
    def test_a_change_to_the_number_meanwhile_refuses_the_save_and_shows_what_changed(self, flows: Console) -> None:
        c = flows.sign_in("ann@acme.example")
        base = base_of(c, EDIT)
        store_as_admin(flows, '"+31612340001"', '"+31612340077"')
        r = save(c, EDIT, base, targets="+31612340009")
        assert r.status_code == 409
        assert "Not saved: this number changed since you opened the form" in r.text
        assert "+31612340077" in r.text and SHOP in r.text  # the store's per-number diff
        assert 'name="base" value="v2"' in r.text  # the form again, from the newest
        assert len(versions(flows)) == 2

    def test_another_customer_s_save_meanwhile_is_no_reason_to_refuse(self, flows: Console) -> None:
        ann = flows.sign_in("ann@acme.example")
        base = base_of(ann, EDIT)
        bob = flows.sign_in("bob@bolt.example")
        bolt_edit = f"/numbers/{BOLT_NUMBER}/edit"
        assert save(bob, bolt_edit, base_of(bob, bolt_edit), targets="+31655500002").status_code == 303
        r = save(ann, EDIT, base, targets="+31612340009")
        assert r.status_code == 303 and r.headers["location"].endswith("saved=v3&over=v1")
        v3 = versions(flows)[-1]
        assert v3["based_on"] == 2 and "+31655500002" in v3["content"] and "+31612340009" in v3["content"]
        assert "Other numbers changed since v1" in ann.get(r.headers["location"]).text


class TestStaff:
    def test_staff_change_a_customer_s_flow_with_the_agreed_fee_on_that_version_or_neither(
            self, flows: Console) -> None:
        c = staff(flows)
        assert "Agreed fee" in c.get(STAFF_EDIT).text
        r = save(c, STAFF_EDIT, "v1", targets="+31612340009", fee_eur="12.34567")
        assert r.status_code == 400 and "expected at most 4 decimals" in r.text
        flows.sql("DELETE FROM numbers WHERE e164 = $1", SHOP)  # a number the directory does not know yet
        r = save(c, STAFF_EDIT, "v1", targets="+31612340009", fee_eur="25")
        assert r.status_code == 400 and "changed none of acme&#39;s numbers" in r.text and "nothing was saved" in r.text
        assert len(versions(flows)) == 1 and flows.sql("SELECT count(*) FROM service_charges")[0][0] == 0
        assert not {"flow_changed", "fee_charged"} & set(flows.audit("sam@fairline.example"))

        flows.sql("INSERT INTO numbers (e164, customer_id, number_type, active_from) "
                  "VALUES ($1, 'acme', 'local', '2026-01-01')", SHOP)
        r = save(c, STAFF_EDIT, "v1", targets="+31612340009", reason="as agreed on the phone", fee_eur="25")
        assert r.status_code == 303, r.text
        [_, v2] = versions(flows)
        assert (v2["author"], v2["role"]) == ("sam@fairline.example", "staff")
        [fee] = flows.sql("SELECT customer_id, amount_eur, config_version, config_version_id, charged_by, reason "
                          "FROM service_charges")
        # The refused save above took an id and gave it back: versions are numbered with gaps, never reused.
        assert tuple(fee) == ("acme", 25, v2["version"], v2["id"], "sam@fairline.example", "as agreed on the phone")
        assert "25.0000" in c.get(r.headers["location"]).text
        details = flows.sql("SELECT event, detail FROM console_audit WHERE event IN ('flow_changed', 'fee_charged') "
                            "ORDER BY id")
        assert [tuple(d) for d in details] == [
            ("flow_changed", f"acme {SHOP} {v2['version']}: as agreed on the phone"),
            ("fee_charged", f"acme EUR 25 for {v2['version']}")]
        ann = flows.sign_in("ann@acme.example")
        history = ann.get(f"/numbers/{SHOP}/history").text
        assert "sam@fairline.example" in history and "staff" in history and "25.0000" in history


class TestAuthorization:
    """One scratch database a test: each test tries every path in a loop."""

    CUSTOMER_REFUSED = [f"/numbers/{BOLT_NUMBER}/edit", f"/numbers/{BOLT_NUMBER}/history", "/numbers/%2B31209990001/edit",
                        "/numbers/+31209990009/edit", STAFF_EDIT, f"/staff/customers/acme/numbers/{SHOP}/history",
                        "/staff/customers/acme/history", f"/staff/customers/bolt/numbers/{BOLT_NUMBER}/edit"]

    def test_a_customer_gets_404_for_another_s_number_and_staff_pages(self, flows: Console) -> None:
        c = flows.sign_in("ann@acme.example")
        for path in self.CUSTOMER_REFUSED:
            assert (c.get(path).status_code, c.get(path).text) == (404, "Not found"), path
            if path.endswith("/edit"):
                r = save(c, path, "v1", token_from="/numbers", targets="+31612340009")
                assert (r.status_code, r.text) == (404, "Not found"), path
        assert len(versions(flows)) == 1

    def test_staff_get_404_for_a_number_not_of_the_customer_in_the_url_and_for_customer_pages(
            self, flows: Console) -> None:
        c = staff(flows)
        for path in (f"/staff/customers/bolt/numbers/{SHOP}/edit", f"/staff/customers/bolt/numbers/{SHOP}/history",
                     "/staff/customers/nobody/history", EDIT, f"/numbers/{SHOP}/history", "/history"):
            assert (c.get(path).status_code, c.get(path).text) == (404, "Not found"), path
        r = save(c, f"/staff/customers/bolt/numbers/{SHOP}/edit", "v1", token_from="/staff/customers",
                 targets="+31612340009")
        assert (r.status_code, r.text) == (404, "Not found")
        assert len(versions(flows)) == 1

    def test_a_customer_s_history_holds_nothing_of_another_customer(self, flows: Console) -> None:
        bob = flows.sign_in("bob@bolt.example")
        bolt_edit = f"/numbers/{BOLT_NUMBER}/edit"
        assert save(bob, bolt_edit, "v1", targets="+31655500002", reason="bolt secret reason").status_code == 303
        ann = flows.sign_in("ann@acme.example")
        for path in ("/history", f"/numbers/{SHOP}/history", EDIT):
            text = ann.get(path).text.lower()
            assert not [s for s in (*BOLT_SECRETS, "bolt secret reason", "+31655500002") if s.lower() in text], path

    def test_without_a_session_pages_lead_to_the_login_and_saves_are_refused(self, flows: Console) -> None:
        c = flows.client()
        token = csrf_of(c, "/login")  # a real pre-login token: still no session
        for path in (EDIT, f"/numbers/{SHOP}/history", "/history", STAFF_EDIT, "/staff/customers/acme/history"):
            r = c.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/login"), path
            if path.endswith("/edit"):
                assert c.post(path, data={"csrf_token": token, "targets": "+31612340009", "base": "v1"}
                              ).status_code == 403
        assert len(versions(flows)) == 1
