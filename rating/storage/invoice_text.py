"""The text of `fairline invoice`, formatted by PostgreSQL and streamed to the output.

A month can hold millions of invoice lines. Decoding each into Python objects and
formatting it there took about 10 µs a line and held every line in memory (115 s
and 7.2 GB for 8 million lines, docs/performance.md). Here PostgreSQL formats the
lines, in its parallel workers, and `COPY (...) TO STDOUT` sends them; this module
only copies the bytes. Memory grows with the customers (a row each), not the lines.

The text is the same as a Python table would print: each invoice's columns padded
to their widest cell. The widths come from a first, aggregate query (one row per
customer); the second query pads every line with them. Both run in one
REPEATABLE READ transaction, so they see the same lines.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg

from rating.storage.billing import first_day
from rating.core.fair_use import Month

Sink = Callable[[bytes], Awaitable[None]]

# For the two queries only (SET LOCAL), measured on a 10-million-CDR month
# (docs/performance.md). With 50,000 customers the per-customer aggregate needs about
# 40 MB per process: at the default work_mem (4 MB) it spilled to disk. The join of
# the lines to the widths is misestimated (no statistics for an array): the planner
# chose to sort all the lines by customer for a merge join, a second sort of the
# month, where a hash of the 50,000 widths does (48 against 57 s of PostgreSQL CPU).
# DateStyle fixes the text of the time column, whatever the server's default. JIT
# stays as the server has it: on, it saved 2 to 4 s of CPU here.
_SETTINGS = ("SET LOCAL work_mem = '64MB'", "SET LOCAL enable_mergejoin = off", "SET LOCAL DateStyle = ISO")

# Per customer with lines in the month: the width of each column whose cells vary
# (at least its header's), and the lines around the table: title, header, total.
# Column widths count characters, as Python's len() and PostgreSQL's rpad() do.
_INVOICES = """
WITH sums AS (
    SELECT customer_id,
           greatest(9, max(length(reference))) AS reference_width,
           greatest(11, max(length(description))) AS description_width,
           greatest(7, max(length(billable_seconds::text))) AS seconds_width,
           greatest(8, max(length(list_price_eur::text))) AS list_width,
           greatest(10, max(length(amount_eur::text))) AS amount_width,
           round(coalesce(sum(amount_eur) FILTER (WHERE kind = 'call'), 0), 4) AS calls_eur,
           round(coalesce(sum(amount_eur) FILTER (WHERE kind <> 'call'), 0), 4) AS service_charges_eur
    FROM invoice_lines
    WHERE month = $1
    GROUP BY customer_id
)
SELECT s.customer_id, s.reference_width, s.description_width, s.seconds_width, s.list_width, s.amount_width,
       'Invoice ' || $2::text || ' for ' || s.customer_id || ' (' || coalesce(c.name, '') || ')' AS title,
       concat_ws('  ', 'at (UTC)           ', rpad('reference', s.reference_width),
                 rpad('description', s.description_width), lpad('seconds', s.seconds_width), 'eligible',
                 lpad('list EUR', s.list_width), lpad('amount EUR', s.amount_width)) AS header,
       'calls ' || s.calls_eur || ' + service charges ' || s.service_charges_eur
       || ' = total ' || (s.calls_eur + s.service_charges_eur) || ' EUR' AS total,
       s.calls_eur + s.service_charges_eur AS total_eur
FROM sums s
LEFT JOIN customers c USING (customer_id)
ORDER BY s.customer_id
"""

# Every line of every invoice, in order: per customer its title and table header,
# its calls by start, its service charges, the total and a blank line. Customers
# come in the order of the arrays (by id, as _INVOICES sorts them): sorting by that
# position compares numbers, not text in the database's collation. The time column
# is always 19 characters wide (years 1 to 9999).
_LINES = """
WITH invoices AS NOT MATERIALIZED (
    SELECT *
    FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[], $8::text[], $9::text[],
                $10::text[]) WITH ORDINALITY
         AS i(customer_id, reference_width, description_width, seconds_width, list_width, amount_width,
              title, header, total, position)
)
SELECT line FROM (
    SELECT i.position, p.part, false AS charge, NULL::timestamptz AS at, NULL::text AS reference, p.line
    FROM invoices i
    CROSS JOIN LATERAL (VALUES (0, i.title), (1, i.header), (3, i.total), (4, '')) AS p(part, line)
    UNION ALL
    SELECT i.position, 2, l.kind <> 'call', l.at, l.reference,
           concat_ws('  ', date_trunc('second', l.at AT TIME ZONE 'UTC')::text,
                     rpad(l.reference, i.reference_width), rpad(l.description, i.description_width),
                     lpad(coalesce(l.billable_seconds::text, ''), i.seconds_width),
                     CASE WHEN l.fair_use_eligible THEN 'yes     ' ELSE 'no      ' END,
                     lpad(l.list_price_eur::text, i.list_width), lpad(l.amount_eur::text, i.amount_width)) AS line
    FROM invoice_lines l
    JOIN invoices i USING (customer_id)
    WHERE l.month = $1
) AS lines
ORDER BY position, part, charge, at, reference
"""

# COPY's text format escapes a backslash and the control characters \b \f \n \r \t \v
# (a tab is its column delimiter). A line needs them back only when its text has one.
_ESCAPE = re.compile(rb"\\[\\bfnrtv]")
_UNESCAPED = {b"\\\\": b"\\", b"\\b": b"\b", b"\\f": b"\f", b"\\n": b"\n", b"\\r": b"\r", b"\\t": b"\t",
              b"\\v": b"\v"}


def unescape_copy_text(data: bytes) -> bytes:
    """Rows of one text column as COPY ... TO STDOUT sent them, without its escapes: the column's text."""
    if b"\\" not in data:
        return data
    return _ESCAPE.sub(lambda m: _UNESCAPED[m[0]], data)


async def write_invoices(conn: asyncpg.Connection, month: Month, write: Sink) -> None:
    """Every customer's invoice for month as a text table, by customer id, then the grand total; to write."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for setting in _SETTINGS:
            await conn.execute(setting)
        invoices = await conn.fetch(_INVOICES, first_day(month), str(month))
        if not invoices:
            await write(f"no invoice lines for {month}\n".encode())
            return

        async def unescaped(data: bytes) -> None:
            # asyncpg hands over whole CopyData messages, one row each: an escape is never cut in two.
            await write(unescape_copy_text(data))

        # The arrays _LINES takes, in its order. COPY takes no parameters: asyncpg quotes
        # them into the statement (a few hundred bytes per customer).
        columns = list(zip(*(row[:9] for row in invoices)))
        await conn.copy_from_query(_LINES, first_day(month), *columns, output=unescaped)
    grand = sum((row["total_eur"] for row in invoices), Decimal("0.0000"))
    await write(f"{len(invoices)} invoices for {month}, together {grand:f} EUR\n".encode())
