"""The charge rule: what a customer pays for a rated call.

Calls on fair-use-eligible numbers (local and national, `NumberType.fair_use_eligible`,
and not forwarded abroad) are free, unless the customer is marked a heavy user for the
call's billing month: then, as for every other call, they pay list price.

`charged_amount` is the rule. PostgreSQL applies it too, where it prices CDRs as they
are stored and re-settles a month when a heavy-user decision changes; both do so through
`charge_sql`, the same rule written as an SQL expression, so Python and SQL cannot drift
apart (tests/e2e/test_storage_db.py checks them against each other).
"""

from __future__ import annotations

from decimal import Decimal

from rating.core.tariff import RatedPrice

FREE = Decimal("0.0000")


def charged_amount(price: RatedPrice, heavy_user: bool) -> Decimal:
    """What the customer pays for a call: nothing for an eligible call unless they are a heavy user that month."""
    if price.fair_use_eligible and not heavy_user:
        return FREE
    return price.list_price_eur


def charge_sql(*, eligible: str, heavy: str, list_price: str) -> str:
    """`charged_amount` as an SQL expression over the given column expressions; a NULL `heavy` means not heavy."""
    return f"CASE WHEN {eligible} AND NOT coalesce({heavy}, false) THEN 0 ELSE {list_price} END"
