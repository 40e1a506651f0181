"""A customer's queue changed in the console's form, over HTTP against the real PostgreSQL (a scratch database
per test, test_console_db.py's): a save is a new version by the customer with the queue's own change row, a
bad agent is refused next to its field with nothing saved, a change to the queue meanwhile refuses the save,
staff attach the agreed fee, the history is the queue's customer's, and nobody reaches another customer's
queue (decision 0035)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_console_db import Console, csrf_of
from tests.e2e.test_console_db import console as console  # noqa: F401  # the fixture, a scratch database
from tests.e2e.test_console_flow_db import SAVED, SHOP, base_of, staff, store_as_admin, versions
from tests.e2e.test_console_flow_db import save as save_number
from tests.e2e.test_console_flow_db import flows as flows_fixture  # noqa: F401  # the directory for fees

pytestmark = pytest.mark.e2e

QUEUES = """queues:
  - name: desk
    customer: acme
    agents: ["+31612340071", "+31612340072"]
    max_wait_seconds: 45
  - name: boltq
    customer: bolt
    agents: ["+31655500071"]
numbers:
"""
EDIT = "/queues/desk/edit"
STAFF_EDIT = "/staff/customers/acme/queues/desk/edit"
NUMBER_EDIT = f"/numbers/{SHOP}/edit"


@pytest.fixture
def queued(flows_fixture: Console) -> Console:
    """The console's configuration with a queue for acme (desk) and one for bolt (boltq): v2, by an admin."""
    store_as_admin(flows_fixture, "numbers:\n", QUEUES)
    return flows_fixture


def save(c, path: str, base: str, **fields: str):  # type: ignore[no-untyped-def]
    data = {"agents": "+31612340071\n+31612340073", "reason": "a new colleague", "base": base, **fields}
    return c.post(path, data={**data, "csrf_token": csrf_of(c, path)})


class TestQueue:
    def test_a_customer_changes_the_agents_of_their_queue_and_sees_it_in_its_history(self, queued: Console) -> None:
        c = queued.sign_in("ann@acme.example")
        listed = c.get("/queues").text
        assert "desk" in listed and "+31612340072" in listed and "boltq" not in listed and "+31655500071" not in listed
        form = c.get(EDIT).text
        assert "+31612340072" in form and 'name="max_wait_seconds" value="45"' in form
        r = save(c, EDIT, "v2", strategy="roundrobin", overflow="number", overflow_value="+31201110002")
        assert r.status_code == 303, r.text
        assert (saved := SAVED.search(r.headers["location"])) and saved.group(1) == "v3"
        v3 = versions(queued)[-1]
        assert (v3["author"], v3["role"], v3["based_on"]) == ("ann@acme.example", "customer", 2)
        assert "+31612340073" in v3["content"] and "+31612340072" not in v3["content"]
        assert "bolt\n    agents: [\"+31655500071\"]" in v3["content"]  # bolt's queue as it was, byte for byte
        assert [tuple(r) for r in queued.sql("SELECT number, owner_before, owner_after FROM config_version_changes "
                                             "WHERE version_id = 3")] == [("queue:desk", "acme", "acme")]
        history = c.get(r.headers["location"]).text
        assert "Saved as version v3" in history and "+31612340073" in history and "a new colleague" in history
        assert "+31612340073" in c.get("/history").text  # the customer's changes hold their queues'

    def test_a_bad_agent_is_shown_next_to_its_field_and_nothing_is_saved(self, queued: Console) -> None:
        c = queued.sign_in("ann@acme.example")
        r = save(c, EDIT, "v2", agents="+31612340071\n+31909123456", max_wait_seconds="90")
        assert r.status_code == 400, r.text
        agents = re.search(r'name="agents"[^>]*>[^<]*</textarea></label>((?:<span class="field-error"[^>]*>[^<]*</span>)+)',
                           r.text)
        wait = re.search(r'name="max_wait_seconds"[^>]*></label>((?:<span class="field-error"[^>]*>[^<]*</span>)+)',
                         r.text)
        assert agents and "agent 2" in agents.group(1), r.text
        assert wait and "60" in wait.group(1), r.text
        assert len(versions(queued)) == 2

    def test_a_change_to_the_queue_meanwhile_refuses_the_save_and_another_s_does_not(self, queued: Console) -> None:
        """Also for the number's form: a change to one of the customer's queues refuses it, another's does not."""
        c = queued.sign_in("ann@acme.example")
        queue_base, number_base = base_of(c, EDIT), base_of(c, NUMBER_EDIT)
        store_as_admin(queued, '"+31655500071"]', '"+31655500079"]')  # bolt's queue: no reason to refuse
        assert save_number(c, NUMBER_EDIT, number_base, targets="+31612340009").status_code == 303
        assert save(c, EDIT, queue_base).status_code == 303
        queue_base, number_base = base_of(c, EDIT), base_of(c, NUMBER_EDIT)
        store_as_admin(queued, "- '+31612340073'", "- '+31612340074'")  # this queue, by an admin
        r = save(c, EDIT, queue_base, agents="+31612340075")
        assert r.status_code == 409 and "this queue changed since" in r.text and "+31612340074" in r.text
        r = save_number(c, NUMBER_EDIT, number_base, targets="+31612340008")
        assert r.status_code == 409 and "queue:desk" in r.text and "+31612340074" in r.text
        assert not {"+31612340075", "+31612340008"} & set(re.findall(r"\+[0-9]+", versions(queued)[-1]["content"]))

    def test_a_queue_that_came_from_another_customer_meanwhile_refuses_without_their_agents(
            self, queued: Console) -> None:
        c = queued.sign_in("ann@acme.example")
        number_base = base_of(c, NUMBER_EDIT)
        store_as_admin(queued, "customer: bolt\n    agents", "customer: acme\n    agents")  # boltq to acme
        r = save_number(c, NUMBER_EDIT, number_base, targets="+31612340008")
        assert r.status_code == 409 and "queue:boltq" in r.text and "+31655500071" not in r.text

    def test_staff_change_a_customer_s_queue_with_the_agreed_fee(self, queued: Console) -> None:
        sam = staff(queued)
        r = sam.post(STAFF_EDIT, data={"agents": "+31612340077", "reason": "agent swap as agreed", "base": "v2",
                                       "fee_eur": "12.50", "csrf_token": csrf_of(sam, STAFF_EDIT)})
        assert r.status_code == 303, r.text
        assert (versions(queued)[-1]["role"], versions(queued)[-1]["author"]) == ("staff", "sam@fairline.example")
        fee = queued.sql("SELECT customer_id, amount_eur, config_version FROM service_charges")
        assert [tuple(f) for f in fee] == [("acme", pytest.approx(12.5), "v3")]
        assert "12.50" in queued.sign_in("ann@acme.example").get("/queues/desk/history").text


class TestAuthorization:
    def test_another_customer_s_queue_and_staff_pages_are_not_found_for_a_customer(self, queued: Console) -> None:
        c = queued.sign_in("ann@acme.example")
        for path in ("/queues/boltq/edit", "/queues/boltq/history", "/queues/nope/edit",
                     "/staff/customers/acme/queue-settings", STAFF_EDIT, "/staff/customers/bolt/queues/boltq/history"):
            r = c.get(path)
            assert (r.status_code, r.text) == (404, "Not found"), path
        token = csrf_of(c, EDIT)
        for path in ("/queues/boltq/edit", STAFF_EDIT):
            r = c.post(path, data={"agents": "+31612340079", "reason": "x", "base": "v2", "csrf_token": token})
            assert (r.status_code, r.text) == (404, "Not found"), path
        assert len(versions(queued)) == 2

    def test_staff_get_404_for_a_queue_not_of_the_customer_in_the_url_and_for_customer_pages(
            self, queued: Console) -> None:
        sam = staff(queued)
        for path in ("/staff/customers/acme/queues/boltq/edit", "/staff/customers/acme/queues/boltq/history",
                     "/staff/customers/nobody/queue-settings", "/queues", EDIT):
            r = sam.get(path)
            assert (r.status_code, r.text) == (404, "Not found"), path
        assert "/staff/customers/acme/queue-settings" in sam.get("/staff/customers/acme").text
        assert "/staff/customers/acme/queues/desk/edit" in sam.get("/staff/customers/acme/queue-settings").text

    def test_without_a_session_pages_lead_to_the_login_and_saves_are_refused(self, queued: Console) -> None:
        c = queued.client()
        token = csrf_of(c, "/login")
        for path in ("/queues", EDIT, "/queues/desk/history", STAFF_EDIT, "/staff/customers/acme/queue-settings"):
            r = c.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/login"), path
        for path in (EDIT, STAFF_EDIT):
            assert c.post(path, data={"csrf_token": token, "agents": "+31612340079", "base": "v2"}).status_code == 403
        assert len(versions(queued)) == 2
