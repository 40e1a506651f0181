"""Queue columns of cdrs and `fairline queue report` against the e2e stack's real PostgreSQL.

CDRs go in through insert_cdrs, as the CDR writer stores them; the report runs as
`fairline queue report` does (argv through billing_cli's parser). November 2026's
queued calls, each visit's wait in seconds:

  acme, queue support (14 calls), then desk for the call that overflowed after 60.004 s:
    answered       5, 10, 15, 20, 30, 45, 60.000 (in time), 60.400 (just late)
    overflowed     60.002, 60.003 (to a number), 60.004 (into desk: answered after 8.250)
    queue_timeout  60.001, 60.005
    abandoned      3.500 (started 31 Oct 23:30 UTC: 1 November in Amsterdam)
  bakery, queue orders (6 calls): 4 timed out, 2 answered after 20 s
  coop, queue front (60 calls): 5 overflowed, 55 answered after 10 s
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from rating.core.cdr import CallRecord, Disposition, QueueOutcome, QueueVisit, RatedCdr, rate_record
from rating.core.queue_policy import ADVICE
from rating.core.tariff import DEFAULT_RATES, NumberType
from tests.e2e.conftest import LiveStack, StackDb

pytestmark = pytest.mark.e2e

ACME = "+31201234567"
BAKERY = "+3215123456"
COOP = "+31301234567"
NOV_3 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)

ANSWERED, OVERFLOWED = QueueOutcome.ANSWERED, QueueOutcome.OVERFLOWED
QUEUE_TIMEOUT, ABANDONED = QueueOutcome.QUEUE_TIMEOUT, QueueOutcome.ABANDONED


@dataclass
class Db(StackDb):
    """The stack's database: store CDRs, look at rows, run `fairline queue report`."""

    def refused(self, sql: str) -> str:
        """The name of the check constraint that refuses sql."""
        async def run() -> str:
            conn = await asyncpg.connect(self.url)
            try:
                with pytest.raises(asyncpg.CheckViolationError) as refusal:
                    await conn.execute(sql)
                return str(refusal.value.constraint_name)
            finally:
                await conn.close()

        return asyncio.run(run())

    def report(self, month: str, *options: str) -> tuple[int, str, str]:
        """`fairline queue report --month MONTH OPTIONS --database-url URL`: exit status, stdout, stderr."""
        return self.fairline("queue", "report", "--month", month, *options)


@pytest.fixture
def db(live_stack: LiveStack, capsys: pytest.CaptureFixture[str]) -> Iterator[Db]:
    """No CDRs; customers acme, bakery and coop."""
    d = Db(live_stack, capsys)
    d.report("2000-01")  # applies the migrations, whatever ran before
    d.sql("TRUNCATE cdrs, customers CASCADE")
    d.sql("INSERT INTO customers (customer_id, name) VALUES ('acme', 'Acme BV'), ('bakery', 'Bakery'), "
          "('coop', 'Coop')")
    yield d


def queued(call_id: str, customer: str, did: str, start: datetime, *waits: tuple[str, QueueOutcome, str],
           ) -> RatedCdr:
    """A call that waited in the queues given as (queue, outcome, seconds), one after the other."""
    visits, at = [], start + timedelta(seconds=2)
    for queue, outcome, seconds in waits:
        visits.append(QueueVisit(queue, at, Decimal(seconds), outcome))
        at += timedelta(seconds=float(seconds) + 1)
    answered = visits[-1].outcome in (ANSWERED, OVERFLOWED)  # an overflow number's phone answered
    record = CallRecord(call_id, did, "+31612345678", start, at if answered else None, at + timedelta(seconds=30),
                        Disposition.ANSWERED if answered else Disposition.ABANDONED, 16,
                        queue_visits=tuple(visits))
    return rate_record(record, customer, NumberType.LOCAL, DEFAULT_RATES)


def november() -> list[RatedCdr]:
    """The calls of the module docstring, plus a call that never queued and a queued one of December."""
    support = [(ANSWERED, s) for s in ("5", "10", "15", "20", "30", "45", "60.000", "60.400")]
    support += [(OVERFLOWED, "60.002"), (OVERFLOWED, "60.003"), (QUEUE_TIMEOUT, "60.001"), (QUEUE_TIMEOUT, "60.005")]
    cdrs = [queued(f"acme-{i}", "acme", ACME, NOV_3 + timedelta(hours=i), ("support", outcome, seconds))
            for i, (outcome, seconds) in enumerate(support)]
    cdrs += [
        queued("acme-chain", "acme", ACME, NOV_3, ("support", OVERFLOWED, "60.004"), ("desk", ANSWERED, "8.250")),
        queued("acme-abandoned", "acme", ACME, datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
               ("support", ABANDONED, "3.500")),
        queued("acme-december", "acme", ACME, datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
               ("support", ANSWERED, "1")),
        rate_record(CallRecord("acme-direct", ACME, None, NOV_3, NOV_3 + timedelta(seconds=5),
                               NOV_3 + timedelta(seconds=65), Disposition.ANSWERED, 16),
                    "acme", NumberType.LOCAL, DEFAULT_RATES),
    ]
    cdrs += [queued(f"bakery-{i}", "bakery", BAKERY, NOV_3 + timedelta(hours=i),
                    ("orders", QUEUE_TIMEOUT if i < 4 else ANSWERED, "60.000" if i < 4 else "20"))
             for i in range(6)]
    cdrs += [queued(f"coop-{i}", "coop", COOP, NOV_3 + timedelta(minutes=i),
                    ("front", OVERFLOWED if i < 5 else ANSWERED, "60.000" if i < 5 else "10"))
             for i in range(60)]
    return cdrs


class TestStorage:
    def test_a_call_that_overflowed_into_a_second_queue_is_stored_with_its_summary_and_every_visit(
        self, db: Db
    ) -> None:
        cdr = queued("chain", "acme", ACME, NOV_3, ("support", OVERFLOWED, "60.004"), ("desk", ABANDONED, "12.5"))
        assert db.store([cdr]) == {"chain"}
        row = json.loads(db.sql(
            "SELECT row_to_json(c) FROM (SELECT queue_name, queue_wait_seconds, queue_overflows, queue_disposition, "
            "queue_visits FROM cdrs WHERE call_id = 'chain') c"), parse_float=Decimal)
        assert row == {
            "queue_name": "support", "queue_wait_seconds": Decimal("72.504"), "queue_overflows": 1,
            "queue_disposition": "abandoned",
            "queue_visits": [
                {"queue": "support", "entered_at": "2026-11-03T09:00:02+00:00", "waited_seconds": "60.004",
                 "outcome": "overflowed"},
                {"queue": "desk", "entered_at": "2026-11-03T09:01:03.004000+00:00", "waited_seconds": "12.500",
                 "outcome": "abandoned"},
            ],
        }

    def test_a_call_that_never_queued_has_no_queue_figures_and_a_replay_doubles_nothing(self, db: Db) -> None:
        direct = rate_record(CallRecord("direct", ACME, None, NOV_3, NOV_3 + timedelta(seconds=5),
                                        NOV_3 + timedelta(seconds=65), Disposition.ANSWERED, 16),
                             "acme", NumberType.LOCAL, DEFAULT_RATES)
        chain = queued("chain", "acme", ACME, NOV_3, ("support", ANSWERED, "7"))
        assert db.store([direct, chain]) == {"direct", "chain"}
        assert db.store([direct, chain]) == set()
        assert db.sql("SELECT queue_name, queue_wait_seconds, queue_overflows, queue_disposition, queue_visits "
                      "FROM cdrs WHERE call_id = 'direct'") == "||0||[]"

    @pytest.mark.parametrize(("change", "constraint"), [
        ("queue_disposition = 'lost'", "cdrs_queue_disposition_check"),
        ("queue_visits = '[]'", "cdrs_queue_summary_complete"),
        ("queue_name = NULL", "cdrs_queue_summary_complete"),
    ])
    def test_the_schema_refuses_queue_columns_that_contradict_each_other(self, db: Db, change: str,
                                                                        constraint: str) -> None:
        db.store([queued("q", "acme", ACME, NOV_3, ("support", ANSWERED, "7"))])
        assert db.refused(f"UPDATE cdrs SET {change} WHERE call_id = 'q'") == constraint


class TestReport:
    def test_per_queue_figures_a_billing_person_can_check_by_hand(self, db: Db) -> None:
        db.store(november())
        status, out, err = db.report("2026-11", "--json")
        assert (status, err) == (0, "")
        queues = {q["queue"]: q for q in json.loads(out)["queues"]}
        assert list(queues) == ["desk", "front", "orders", "support"]
        assert queues["support"] == {
            "queue": "support", "customer_id": "acme",
            # The December call is not in November; the abandoned one of 31 Oct 23:30 UTC is.
            "calls": 14, "answered": 8,
            "answered_in_time": 7, "service_level_percent": "50.0",  # 60.400 s is too late
            "overflowed": 3, "queue_timeout": 2, "abandoned": 1,
            "average_wait_seconds": "39.208",  # 548.915 s / 14
            "p90_wait_seconds": "60.005",  # the 13th of the 14 waits in order: 90 % waited at most this long
        }
        assert queues["desk"] == {
            "queue": "desk", "customer_id": "acme", "calls": 1, "answered": 1, "answered_in_time": 1,
            "service_level_percent": "100.0", "overflowed": 0, "queue_timeout": 0, "abandoned": 0,
            "average_wait_seconds": "8.250", "p90_wait_seconds": "8.250",
        }

    def test_customers_whose_callers_often_hit_the_cap_are_flagged_with_the_policys_advice(self, db: Db) -> None:
        db.store(november())
        _, out, _ = db.report("2026-11", "--json")
        customers = [(c["customer_id"], c["queued_calls"], c["visits"], c["cap_hits"], c["cap_percent"],
                      c["flagged"], c["advice"]) for c in json.loads(out)["customers"]]
        assert customers == [
            ("acme", 14, 15, 5, "33.3", True, ADVICE),  # the chained call: one call, two visits
            ("bakery", 6, 6, 4, "66.7", False, None),  # often, but only 4 times
            ("coop", 60, 60, 5, "8.3", False, None),  # 5 times, but under 10 % of its visits
        ]

    def test_the_table_lines_up_and_names_the_flagged_customer(self, db: Db) -> None:
        db.store(november())
        status, out, err = db.report("2026-11")
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == ("Queues 2026-11: 80 queued calls, 81 queue visits (a call that overflows into another "
                            "queue counts in both)")
        header = lines.index("queue    customer  calls  answered  in 60 s  service %  overflowed  timeout  "
                             "abandoned  avg wait s  p90 wait s")
        assert lines[header + 4] == ("support  acme         14         8        7       50.0           3        2"
                                     "          1        39.2        60.0")
        assert "acme      Acme BV            14      15         5   33.3  FLAG" in lines
        assert lines[-1] == f"acme: callers hit the cap in 5 of 15 visits: {ADVICE}"

    def test_a_month_without_queued_calls_says_so(self, db: Db) -> None:
        db.store(november())
        assert db.report("2026-09") == (0, "no queued calls in 2026-09\n", "")
        status, out, _ = db.report("2026-09", "--json")
        assert (status, json.loads(out)["queues"], json.loads(out)["customers"]) == (0, [], [])
