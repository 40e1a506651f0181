"""The pages over fairline's data. A customer's pages take the customer from the session, never from
the request: a number or filter of another customer's is answered as one that does not exist."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from console import storage
from console.config_cache import ConfigCache
from console.core import call_filter
from console.core.numbers_view import customers, numbers_of
from console.guard import Visit, not_found
from console.render import page

CUSTOMERS_PAGE = 100
CSV_CHUNK = 1000


def _cache(request: Request) -> ConfigCache:
    cache: ConfigCache = request.app.state.config_cache
    return cache


async def my_numbers(request: Request, visit: Visit) -> Response:
    current = await _cache(request).current(visit.conn)
    lines = numbers_of(current[1], visit.customer_id) if current else []
    return page(request, visit, "numbers.html", numbers=lines, version=current[0] if current else None)


async def my_number(request: Request, visit: Visit) -> Response:
    current = await _cache(request).current(visit.conn)
    e164 = request.path_params["e164"]
    found = [n for n in numbers_of(current[1], visit.customer_id) if n.e164 == e164] if current else []
    if not found:
        return not_found()
    return page(request, visit, "number.html", number=found[0], version=current[0] if current else None)


async def _own_filter(request: Request, visit: Visit) -> call_filter.CallFilter | Response:
    """The page's filter; a number not the customer's is a 404, a malformed filter a 400 that says why."""
    try:
        f = call_filter.parse(request.query_params, today=visit.now.date())
    except call_filter.FilterError as bad:
        return page(request, visit, "calls.html", status=400, calls=[], error=bad, filter=None, next_query=None,
                    numbers=[], outcomes=call_filter.OUTCOMES, params=request.query_params)
    if f.number is not None:
        current = await _cache(request).current(visit.conn)
        if current is None or f.number not in {n.e164 for n in numbers_of(current[1], visit.customer_id)}:
            return not_found()
    return f


async def my_calls(request: Request, visit: Visit) -> Response:
    f = await _own_filter(request, visit)
    if isinstance(f, Response):
        return f
    rows = await storage.calls(visit.conn, visit.customer_id, f, limit=call_filter.PAGE_SIZE + 1)
    more = len(rows) > call_filter.PAGE_SIZE
    rows = rows[:call_filter.PAGE_SIZE]
    current = await _cache(request).current(visit.conn)
    numbers = [n.e164 for n in numbers_of(current[1], visit.customer_id)] if current else []
    return page(request, visit, "calls.html", calls=rows, error=None, filter=f, numbers=numbers,
                outcomes=call_filter.OUTCOMES, params=request.query_params,
                next_query=f.query(after=rows[-1].cursor) if more else None, csv_query=f.query())


CSV_COLUMNS = ("call_id", "number", "caller", "started_at", "answered_at", "ended_at", "outcome",
               "billable_seconds", "charged_eur")


async def my_calls_csv(request: Request, visit: Visit) -> Response:
    """Every call of the filter (at most a year), streamed a thousand at a time by keyset."""
    f = await _own_filter(request, visit)
    if isinstance(f, Response):
        return f
    customer_id, pool = visit.customer_id, visit.pool

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        after = f.after
        async with pool.acquire() as conn:  # the request's own connection is back in the pool by now
            while True:
                chunk = await storage.calls(conn, customer_id, f, limit=CSV_CHUNK, after=after)
                for c in chunk:
                    writer.writerow((c.call_id, c.did, c.caller or "", c.started_at.isoformat(),
                                     c.answered_at.isoformat() if c.answered_at else "", c.ended_at.isoformat(),
                                     c.disposition, c.billable_seconds, c.charged_eur))
                yield out.getvalue()
                out.seek(0)
                out.truncate()
                if len(chunk) < CSV_CHUNK:
                    return
                after = chunk[-1].cursor

    name = f"calls-{f.first}-{f.last}.csv"
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def staff_customers(request: Request, visit: Visit) -> Response:
    current = await _cache(request).current(visit.conn)
    everyone = customers(current[1]) if current else []
    after = request.query_params.get("after", "")
    shown = [c for c in everyone if c.customer_id > after][:CUSTOMERS_PAGE + 1]
    more = len(shown) > CUSTOMERS_PAGE
    shown = shown[:CUSTOMERS_PAGE]
    return page(request, visit, "customers.html", customers=shown, version=current[0] if current else None,
                next_after=shown[-1].customer_id if more else None)


async def staff_customer(request: Request, visit: Visit) -> Response:
    current = await _cache(request).current(visit.conn)
    customer_id = request.path_params["customer_id"]
    if current is None or customer_id not in current[1].customers:
        return not_found()
    return page(request, visit, "customer.html", customer=current[1].customers[customer_id],
                numbers=numbers_of(current[1], customer_id), version=current[0])


async def staff_audit(request: Request, visit: Visit) -> Response:
    return page(request, visit, "audit.html", rows=await storage.audit_trail(visit.conn, limit=200))
