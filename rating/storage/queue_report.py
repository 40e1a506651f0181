"""The monthly queue report: how long callers waited, per queue and per customer.

Every figure counts queue *visits* (cdrs.queue_visits): a caller who overflows from
one queue into another is one visit of each, the first one overflowed. Documented
for billing in docs/billing.md (`fairline queue report`).
"""

from __future__ import annotations

import dataclasses
from decimal import Context, Decimal

import asyncpg

from rating.storage.billing import first_day
from rating.core.fair_use import Month
# The policy's figures, named here too for the report's readers (tests, the e2e report test).
from rating.core.queue_policy import FLAG_MIN_CAP_HITS, FLAG_MIN_CAP_PERCENT, SERVICE_LEVEL_SECONDS


_EXACT = Context(prec=28)


@dataclasses.dataclass(frozen=True, slots=True)
class QueueLine:
    """One queue's visits in the month."""

    queue: str
    customer_id: str
    calls: int  # visits
    answered: int
    answered_in_time: int  # answered after at most SERVICE_LEVEL_SECONDS
    overflowed: int
    queue_timeout: int
    abandoned: int
    total_wait_seconds: Decimal
    p90_wait_seconds: Decimal  # 90 % of the visits waited at most this long (an observed wait)

    @property
    def service_level_percent(self) -> Decimal:
        """Visits answered within SERVICE_LEVEL_SECONDS per 100 visits, unrounded."""
        return _EXACT.divide(Decimal(100 * self.answered_in_time), Decimal(self.calls))

    @property
    def average_wait_seconds(self) -> Decimal:
        """The mean wait of the visits, unrounded."""
        return _EXACT.divide(self.total_wait_seconds, Decimal(self.calls))


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerLine:
    """How often one customer's callers hit the wait cap in the month."""

    customer_id: str
    name: str
    queued_calls: int  # calls with at least one queue visit
    visits: int
    cap_hits: int  # visits that ended at the cap: overflowed or queue_timeout

    @property
    def cap_percent(self) -> Decimal:
        """Cap hits per 100 visits, unrounded."""
        return _EXACT.divide(Decimal(100 * self.cap_hits), Decimal(self.visits))

    @property
    def flagged(self) -> bool:
        """Callers hit the cap often: at least FLAG_MIN_CAP_HITS times and FLAG_MIN_CAP_PERCENT of visits."""
        return self.cap_hits >= FLAG_MIN_CAP_HITS and 100 * self.cap_hits >= FLAG_MIN_CAP_PERCENT * self.visits


@dataclasses.dataclass(frozen=True, slots=True)
class QueueReport:
    """A month's queue figures: per queue (by name), per customer (by id)."""

    month: Month
    queues: tuple[QueueLine, ...]
    customers: tuple[CustomerLine, ...]


# The month's visits on customers' numbers, one row each; {and_customer}: none, or one customer's only.
_VISITS = """
SELECT c.call_id, c.customer_id, v.queue, v.waited_seconds, v.outcome
FROM cdrs c
CROSS JOIN LATERAL jsonb_to_recordset(c.queue_visits) AS v(queue text, waited_seconds numeric, outcome text)
WHERE c.billing_month = $1 AND c.queue_name IS NOT NULL AND c.customer_id IS NOT NULL {and_customer}
"""

_QUEUES_OF = f"""
WITH visits AS ({_VISITS})
SELECT queue, customer_id, count(*)::int AS calls,
       count(*) FILTER (WHERE outcome = 'answered')::int AS answered,
       count(*) FILTER (WHERE outcome = 'answered' AND waited_seconds <= $2)::int AS answered_in_time,
       count(*) FILTER (WHERE outcome = 'overflowed')::int AS overflowed,
       count(*) FILTER (WHERE outcome = 'queue_timeout')::int AS queue_timeout,
       count(*) FILTER (WHERE outcome = 'abandoned')::int AS abandoned,
       sum(waited_seconds) AS total_wait_seconds,
       percentile_disc(0.9) WITHIN GROUP (ORDER BY waited_seconds) AS p90_wait_seconds
FROM visits
GROUP BY queue, customer_id
ORDER BY queue, customer_id
"""

_CUSTOMERS_OF = f"""
WITH visits AS ({_VISITS})
SELECT v.customer_id, coalesce(cu.name, '') AS name,
       count(DISTINCT v.call_id)::int AS queued_calls, count(*)::int AS visits,
       count(*) FILTER (WHERE v.outcome IN ('overflowed', 'queue_timeout'))::int AS cap_hits
FROM visits v
LEFT JOIN customers cu USING (customer_id)
GROUP BY v.customer_id, cu.name
ORDER BY v.customer_id
"""
_QUEUES = _QUEUES_OF.format(and_customer="")
_CUSTOMERS = _CUSTOMERS_OF.format(and_customer="")
# One customer's part of the report (the console's service levels): the same statements, one more condition.
_CUSTOMER_QUEUES = _QUEUES_OF.format(and_customer="AND c.customer_id = $3")
_CUSTOMER_CUSTOMERS = _CUSTOMERS_OF.format(and_customer="AND c.customer_id = $2")


async def queue_report(conn: asyncpg.Connection, month: Month) -> QueueReport:
    """The queue figures of the calls in billing month `month`; both parts from one snapshot."""
    day = first_day(month)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        queues = await conn.fetch(_QUEUES, day, SERVICE_LEVEL_SECONDS)
        customers = await conn.fetch(_CUSTOMERS, day)
    return QueueReport(
        month=month,
        queues=tuple(QueueLine(**dict(r)) for r in queues),
        customers=tuple(CustomerLine(**dict(r)) for r in customers),
    )


async def customer_queue_report(conn: asyncpg.Connection, customer_id: str, month: Month) -> QueueReport:
    """customer_id's lines of queue_report(month): its queues, and itself in customers (when it had visits)."""
    day = first_day(month)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        queues = await conn.fetch(_CUSTOMER_QUEUES, day, SERVICE_LEVEL_SECONDS, customer_id)
        customers = await conn.fetch(_CUSTOMER_CUSTOMERS, day, customer_id)
    return QueueReport(
        month=month,
        queues=tuple(QueueLine(**dict(r)) for r in queues),
        customers=tuple(CustomerLine(**dict(r)) for r in customers),
    )
