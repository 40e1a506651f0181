"""The SQL of the console's billing pages (issue 19): the fees with the change each paid for, the contact
worklist and its notes, heavy-user marks. Invoices, totals, decisions and queue figures come from
rating/storage (billing.py, queue_report.py), the code `fairline invoice`, `heavy-user` and `queue report`
run. DDL: rating/storage/migrations/0022_console_contact_notes.sql. Bound parameters only."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from console.core.billing_view import ContactNote
from console.core.fair_use_chart import MONTHS, Standing
from rating.core.fair_use import Month
from rating.storage.billing import first_day


@dataclasses.dataclass(frozen=True, slots=True)
class Fee:
    """A service charge on an invoice, with the configuration change it paid for (when it names one)."""

    reference: str  # SC-<id>, as on the invoice line
    reason: str
    charged_by: str
    charged_at: datetime
    version: str | None  # e.g. v12
    change_reason: str | None  # the version's reason
    change_author: str | None  # who made the change
    change_role: str | None  # customer, staff or admin
    change_applied_at: datetime | None


async def fees(conn: asyncpg.Connection, customer_id: str, month: Month) -> dict[str, Fee]:
    """customer_id's service charges of month, by reference."""
    rows = await conn.fetch(
        """SELECT 'SC-' || s.id AS reference, s.reason, s.charged_by, s.charged_at,
                  coalesce(v.version, s.config_version) AS version, v.reason AS change_reason,
                  v.author AS change_author, v.role AS change_role, v.applied_at AS change_applied_at
           FROM service_charges s LEFT JOIN config_versions v ON v.id = s.config_version_id
           WHERE s.customer_id = $1 AND s.month = $2""", customer_id, first_day(month))
    return {r["reference"]: Fee(**dict(r)) for r in rows}


# ------------------------------------------------------------------ fair use: contact


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    month: date  # the fair-use month whose contact status the call was about
    spoke_with: str
    called_at: datetime
    note: str
    recorded_by: str  # the staff member's name
    recorded_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Contact:
    """A customer on the worklist: `contact` in the month, the six months up to it, the latest note."""

    customer_id: str
    name: str
    month: date
    history: tuple[Standing, ...]  # oldest first
    latest_note: Note | None
    noted: bool  # a note exists for this month's contact status


_NOTE = "n.month, n.spoke_with, n.called_at, n.note, u.name AS recorded_by, n.recorded_at"


def _note(r: asyncpg.Record) -> Note:
    return Note(r["month"], r["spoke_with"], r["called_at"], r["note"], r["recorded_by"], r["recorded_at"])


async def latest_fair_use_month(conn: asyncpg.Connection) -> date | None:
    """The newest month `fairline fair-use report` has stored."""
    value = await conn.fetchval("SELECT max(month) FROM fair_use_results")
    return value if isinstance(value, date) else None


async def worklist(conn: asyncpg.Connection, month: date) -> list[Contact]:
    """Every customer whose status in month is `contact`: those without a note for it first, then by id."""
    rows = await conn.fetch(
        f"""SELECT f.customer_id, c.name,
                   EXISTS (SELECT 1 FROM console_contact_notes x
                           WHERE x.customer_id = f.customer_id AND x.month = f.month) AS noted,
                   n.id IS NOT NULL AS has_note, {_NOTE}
            FROM fair_use_results f
            JOIN customers c USING (customer_id)
            LEFT JOIN LATERAL (SELECT * FROM console_contact_notes n WHERE n.customer_id = f.customer_id
                               ORDER BY n.recorded_at DESC, n.id DESC LIMIT 1) n ON true
            LEFT JOIN console_users u ON u.user_id = n.recorded_by
            WHERE f.month = $1 AND f.status = 'contact'
            ORDER BY noted, f.customer_id""", month)
    histories = await _histories(conn, [r["customer_id"] for r in rows], month)
    return [Contact(r["customer_id"], r["name"], month, histories.get(r["customer_id"], ()),
                    _note(r) if r["has_note"] else None, r["noted"]) for r in rows]


async def _histories(conn: asyncpg.Connection, customer_ids: Sequence[str],
                     month: date) -> dict[str, tuple[Standing, ...]]:
    first = first_day(Month(month.year, month.month).window(MONTHS)[0])
    rows = await conn.fetch(
        """SELECT customer_id, month, eligible_calls, platform_average, allowance, status, computed_at
           FROM fair_use_results WHERE customer_id = ANY($1::text[]) AND month BETWEEN $2 AND $3
           ORDER BY customer_id, month""", list(customer_ids), first, month)
    found: dict[str, list[Standing]] = {}
    for r in rows:
        found.setdefault(r["customer_id"], []).append(
            Standing(r["month"], r["eligible_calls"], r["platform_average"], r["allowance"], r["status"],
                     r["computed_at"]))
    return {cid: tuple(months) for cid, months in found.items()}


async def contact_month(conn: asyncpg.Connection, customer_id: str) -> date | None:
    """The customer's latest month with fair-use status `contact` (what a new note is about); None: never."""
    value = await conn.fetchval(
        "SELECT max(month) FROM fair_use_results WHERE customer_id = $1 AND status = 'contact'", customer_id)
    return value if isinstance(value, date) else None


async def history(conn: asyncpg.Connection, customer_id: str, month: date) -> tuple[Standing, ...]:
    return (await _histories(conn, [customer_id], month)).get(customer_id, ())


async def notes(conn: asyncpg.Connection, customer_id: str) -> list[Note]:
    """Every note about customer_id, newest first."""
    rows = await conn.fetch(
        f"""SELECT {_NOTE} FROM console_contact_notes n JOIN console_users u ON u.user_id = n.recorded_by
            WHERE n.customer_id = $1 ORDER BY n.recorded_at DESC, n.id DESC""", customer_id)
    return [_note(r) for r in rows]


async def add_note(conn: asyncpg.Connection, customer_id: str, month: date, note: ContactNote, *,
                   user_id: int, now: datetime) -> int:
    value = await conn.fetchval(
        """INSERT INTO console_contact_notes (customer_id, month, spoke_with, called_at, note, recorded_by,
                                              recorded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        customer_id, month, note.spoke_with, note.called_at, note.note, user_id, now)
    return int(value)


# ------------------------------------------------------------------ heavy users


@dataclasses.dataclass(frozen=True, slots=True)
class HeavyUserMark:
    """A heavy-user decision as recorded (heavy_user_decisions)."""

    decision_id: int
    month: date
    heavy: bool
    decided_by: str
    reason: str
    decided_at: datetime
    in_force: bool  # the latest decision for its month (view heavy_users)


async def heavy_user_marks(conn: asyncpg.Connection, customer_id: str, *, limit: int = 100) -> list[HeavyUserMark]:
    """customer_id's decisions, newest month first, each month's latest decision first."""
    rows = await conn.fetch(
        """SELECT d.id, d.month, d.heavy, d.decided_by, d.reason, d.decided_at,
                  row_number() OVER (PARTITION BY d.month ORDER BY d.decided_at DESC, d.id DESC) = 1 AS in_force
           FROM heavy_user_decisions d WHERE d.customer_id = $1
           ORDER BY d.month DESC, d.decided_at DESC, d.id DESC LIMIT $2""", customer_id, limit)
    return [HeavyUserMark(*r) for r in rows]


async def in_billing(conn: asyncpg.Connection, customer_id: str) -> bool:
    """Whether the customers table (filled by `fairline run` from the configuration) has the customer."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = $1)", customer_id))
