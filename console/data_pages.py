"""The pages over fairline's data. A customer's pages take the customer from the session, never from
the request: a number or filter of another customer's is answered as one that does not exist."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from console import storage
from console.config_cache import ConfigCache
from console.core import call_filter, fair_use_chart, local_time
from console.core.numbers_view import Snapshot
from console.guard import Visit, not_found
from console.render import page

CUSTOMERS_PAGE = 100
CSV_CHUNKS_AHEAD = 16


def _cache(request: Request) -> ConfigCache:
    cache: ConfigCache = request.app.state.config_cache
    return cache


def _version(request: Request, shown: Snapshot | None) -> dict[str, Any]:
    """What a page says of the version it shows: its name, and a newer one being loaded meanwhile."""
    return {"version": shown.version if shown else None, "loading": _cache(request).loading}


async def my_numbers(request: Request, visit: Visit) -> Response:
    shown = await _cache(request).shown(visit.conn)
    lines = shown.numbers_of(visit.customer_id) if shown else ()
    return page(request, visit, "numbers.html", numbers=lines, **_version(request, shown))


async def my_number(request: Request, visit: Visit) -> Response:
    shown = await _cache(request).shown(visit.conn)
    e164 = request.path_params["e164"]
    found = [n for n in shown.numbers_of(visit.customer_id) if n.e164 == e164] if shown else []
    if not found:
        return not_found()
    return page(request, visit, "number.html", number=found[0], **_version(request, shown))


async def _own_filter(request: Request, visit: Visit) -> tuple[call_filter.CallFilter, Snapshot | None] | Response:
    """The page's filter, its days on the customer's clock; a number not the customer's is a 404, a
    malformed filter a 400 that says why."""
    shown = await _cache(request).shown(visit.conn)
    zone = shown.zone_of(visit.customer_id) if shown else local_time.UTC_ZONE
    try:
        f = call_filter.parse(request.query_params, today=local_time.local_day(visit.now, zone), zone=zone)
    except call_filter.FilterError as bad:
        return page(request, visit, "calls.html", status=400, calls=[], error=bad, filter=None, next_query=None,
                    numbers=[], outcomes=call_filter.OUTCOMES, params=request.query_params,
                    zone=zone, zone_label=local_time.zone_label(zone, visit.now))
    if f.number is not None:
        if shown is None or f.number not in {n.e164 for n in shown.numbers_of(visit.customer_id)}:
            return not_found()
    return f, shown


async def my_calls(request: Request, visit: Visit) -> Response:
    own = await _own_filter(request, visit)
    if isinstance(own, Response):
        return own
    f, shown = own
    rows = await storage.calls(visit.conn, visit.customer_id, f, limit=call_filter.PAGE_SIZE + 1)
    more = len(rows) > call_filter.PAGE_SIZE
    rows = rows[:call_filter.PAGE_SIZE]
    numbers = [n.e164 for n in shown.numbers_of(visit.customer_id)] if shown else []
    return page(request, visit, "calls.html", calls=rows, error=None, filter=f, numbers=numbers,
                outcomes=call_filter.OUTCOMES, params=request.query_params,
                next_query=f.query(after=rows[-1].cursor) if more else None, csv_query=f.query(),
                zone=f.zone, zone_label=local_time.zone_label(f.zone, visit.now))


async def my_calls_csv(request: Request, visit: Visit) -> Response:
    """Every call of the filter (at most a year), as PostgreSQL formats them (COPY), sent as they come."""
    own = await _own_filter(request, visit)
    if isinstance(own, Response):
        return own
    f, _ = own
    customer_id, pool = visit.customer_id, visit.pool
    chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=CSV_CHUNKS_AHEAD)  # a slow reader slows the COPY

    async def put(chunk: bytes) -> None:
        await chunks.put(bytes(chunk))  # asyncpg hands out bytearrays

    async def copy() -> None:
        async with pool.acquire() as conn:  # the request's own connection is back in the pool by now
            await storage.calls_csv(conn, customer_id, f, output=put)

    async def body() -> AsyncIterator[bytes]:
        copying = asyncio.create_task(copy(), name="calls-csv")
        try:
            while True:
                getting = asyncio.ensure_future(chunks.get())
                done, _ = await asyncio.wait({getting, copying}, return_when=asyncio.FIRST_COMPLETED)
                if getting in done:
                    yield getting.result()
                    continue
                getting.cancel()
                while not chunks.empty():  # the COPY is over: what it put before it ended
                    yield chunks.get_nowait()
                await copying  # raises what ended it, if anything did
                return
        finally:
            copying.cancel()  # the client went away

    name = f"calls-{f.first}-{f.last}.csv"
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def staff_customers(request: Request, visit: Visit) -> Response:
    shown = await _cache(request).shown(visit.conn)
    everyone = shown.customers if shown else ()
    after = request.query_params.get("after", "")
    first = bisect.bisect_right([c.customer_id for c in everyone], after) if after else 0  # by id: keyset
    listed = everyone[first:first + CUSTOMERS_PAGE + 1]
    more = len(listed) > CUSTOMERS_PAGE
    listed = listed[:CUSTOMERS_PAGE]
    return page(request, visit, "customers.html", customers=listed, **_version(request, shown),
                next_after=listed[-1].customer_id if more else None)


async def staff_customer(request: Request, visit: Visit) -> Response:
    shown = await _cache(request).shown(visit.conn)
    customer_id = request.path_params["customer_id"]
    if shown is None or customer_id not in shown.config.customers:
        return not_found()
    zone = shown.zone_of(customer_id)
    return page(request, visit, "customer.html", customer=shown.config.customers[customer_id],
                numbers=shown.numbers_of(customer_id), zone_label=local_time.zone_label(zone, visit.now),
                **_version(request, shown))


async def staff_audit(request: Request, visit: Visit) -> Response:
    return page(request, visit, "audit.html", rows=await storage.audit_trail(visit.conn, limit=200))


async def my_fair_use(request: Request, visit: Visit) -> Response:
    """The last six months against the fair-use standard, as last computed (the page says when)."""
    months = await storage.fair_use(visit.conn, visit.customer_id, fair_use_chart.MONTHS)
    computed = max((m.computed_at for m in months), default=None)
    shown = await _cache(request).shown(visit.conn)
    zone = shown.zone_of(visit.customer_id) if shown else local_time.UTC_ZONE
    return page(request, visit, "fair_use.html", months=months, chart=fair_use_chart.svg(months),
                computed=computed.astimezone(zone) if computed else None,
                zone_label=local_time.zone_label(zone, visit.now), floor=fair_use_chart.FLOOR_CALLS_PER_WEEK)
