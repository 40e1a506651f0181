"""A number's history is its customer's own (migration 0025, decision 0035), over HTTP against the real
PostgreSQL (a scratch database per test): a number an admin moved from acme to bolt with `config apply`
shows bolt nothing of acme's time with it, and acme nothing of bolt's; staff see it all. The migration's
backfill gives the rows stored before it the owners `number_changes` gives them now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_console_db import Console
from tests.e2e.test_console_db import console as console  # noqa: F401  # the fixture, a scratch database
from tests.e2e.test_console_flow_db import SHOP, base_of, save, staff, store_as_admin
from tests.e2e.test_console_flow_db import flows as flows  # noqa: F401  # the fixture

pytestmark = pytest.mark.e2e

ACME_PHONE = "+31612340009"  # acme's, set while the number was acme's
BOLT_FIRST = "+31655500070"  # bolt's, set by the admin who moved the number
BOLT_PHONE = "+31655500077"  # bolt's, set after the move
MIGRATION = Path(__file__).parents[2] / "rating/storage/migrations/0025_change_owners.sql"


def _moved(flows: Console) -> None:
    """v2: ann (acme) sets a phone of hers; v3: an admin moves the number to bolt, ringing bolt's first phone (as
    `config apply` of an edited file: one replace in its text); v4: bob (bolt) sets another."""
    ann = flows.sign_in("ann@acme.example")
    assert save(ann, f"/numbers/{SHOP}/edit", "v1", targets=ACME_PHONE, reason="acme private reason"
                ).status_code == 303
    item = flows.sql("SELECT content FROM config_versions WHERE id = 2")[0][0]
    item = item[item.index(f"number: '{SHOP}'"):item.index(ACME_PHONE) + len(ACME_PHONE)]
    store_as_admin(flows, item, item.replace("customer: acme", "customer: bolt").replace(ACME_PHONE, BOLT_FIRST))
    bob = flows.sign_in("bob@bolt.example")
    edit = f"/numbers/{SHOP}/edit"
    assert save(bob, edit, base_of(bob, edit), targets=BOLT_PHONE, reason="bolt's own reason").status_code == 303


class TestOwnHistory:
    def test_a_moved_number_shows_each_customer_only_their_own_time_with_it(self, flows: Console) -> None:
        _moved(flows)
        assert [tuple(r) for r in flows.sql(
            "SELECT version_id, owner_before, owner_after FROM config_version_changes WHERE number = $1 "
            "ORDER BY version_id", SHOP)] == [(1, None, "acme"), (2, "acme", "acme"), (3, "acme", "bolt"),
                                               (4, "bolt", "bolt")]
        bob = flows.sign_in("bob@bolt.example")
        for path in (f"/numbers/{SHOP}/history", "/history"):
            text = bob.get(path).text
            assert "This number came to you in v3." in text and BOLT_PHONE in text and "bolt&#39;s own reason" in text
            leaked = [s for s in (ACME_PHONE, "+31612340001", "acme private reason", "ann@acme.example", "acme")
                      if s in text]
            assert not leaked, path
        ann = flows.sign_in("ann@acme.example")
        text = ann.get("/history").text
        assert ACME_PHONE in text and "went to another customer in v3" in text
        assert not [s for s in (BOLT_PHONE, "bolt", "v4") if s in text]
        assert ann.get(f"/numbers/{SHOP}/history").status_code == 404  # no longer hers
        sam = staff(flows)
        text = sam.get(f"/staff/customers/bolt/numbers/{SHOP}/history").text
        assert all(s in text for s in (ACME_PHONE, BOLT_PHONE, "acme private reason", "acme -&gt; bolt", "v1"))

    def test_rows_stored_before_the_migration_get_the_same_owners_from_the_backfill(self, flows: Console) -> None:
        _moved(flows)
        written = flows.sql("SELECT version_id, number, owner_before, owner_after FROM config_version_changes "
                            "ORDER BY version_id, number")
        assert any(r["owner_after"] == "bolt" for r in written)
        flows.sql("UPDATE config_version_changes SET owner_before = NULL, owner_after = NULL")
        sql = MIGRATION.read_text()
        flows.sql(sql[sql.index("WITH lines"):sql.index(";", sql.index("WITH lines")) + 1])
        assert flows.sql("SELECT version_id, number, owner_before, owner_after FROM config_version_changes "
                         "ORDER BY version_id, number") == written

    def test_a_change_whose_owner_is_not_known_is_shown_to_staff_only_and_said_so(self, flows: Console) -> None:
        flows.sql("UPDATE config_version_changes SET owner_before = NULL, owner_after = NULL")
        ann = flows.sign_in("ann@acme.example")
        text = ann.get(f"/numbers/{SHOP}/history").text
        assert "No changes yet." in text and "1 earlier change of this number" in text
        assert "v1" in staff(flows).get(f"/staff/customers/acme/numbers/{SHOP}/history").text
