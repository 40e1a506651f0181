"""Invoices for customers; staff's contact worklist, heavy-user marks and queue service levels (issue 19).

Invoices are rating/storage/billing.py's (what `fairline invoice` prints), heavy-user decisions its
decide_heavy_user (what `fairline heavy-user mark|unmark` runs), service levels queue_report.py's (what
`fairline queue report` prints). A customer's pages take the customer from the session; staff's take it from
the address and answer 404 for a customer not in the configuration's newest version.
"""

from __future__ import annotations

import io
from datetime import date

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import billing_storage, storage
from console.config_cache import ConfigCache
from console.core import billing_view
from console.core.billing_view import called_at_text
from console.core.fair_use_chart import Standing
from console.guard import Visit, client_address, not_found
from console.render import page
from rating.commands.billing_cli import write_invoices_csv
from rating.core.fair_use import Month
from rating.core.queue_policy import SERVICE_LEVEL_SECONDS
from rating.storage import billing, queue_report


async def _customer_name(request: Request, visit: Visit, customer_id: str) -> str | None:
    """The customer's name in the configuration's newest version; None: no such customer there."""
    cache: ConfigCache = request.app.state.config_cache
    current = await cache.current(visit.conn)
    if current is None or customer_id not in current[1].customers:
        return None
    return current[1].customers[customer_id].name


# ------------------------------------------------------------------ invoices


async def _invoice_list(request: Request, visit: Visit, customer_id: str, name: str, base: str) -> Response:
    months = billing_view.recent_months(visit.now.date(), billing_view.INVOICE_MONTHS)
    totals = [await billing.month_totals(visit.conn, customer_id, m) for m in months]
    return page(request, visit, "invoices.html", customer_id=customer_id, name=name, totals=totals, base=base,
                four=billing_view.four)


async def _invoice(request: Request, visit: Visit, customer_id: str, name: str, base: str) -> Response:
    month = billing_view.month_in_path(request.path_params["month"])
    if month is None:
        return not_found()
    invoice = await billing.invoice(visit.conn, customer_id, month)
    lines = invoice.lines if invoice else ()
    calls = [line for line in lines if line.kind == "call"]
    charges = [line for line in lines if line.kind != "call"]
    return page(request, visit, "invoice.html", customer_id=customer_id, name=name, month=month, calls=calls,
                charges=charges, fees=await billing_storage.fees(visit.conn, customer_id, month),
                calls_eur=invoice.calls_eur if invoice else None,
                charges_eur=invoice.service_charges_eur if invoice else None,
                total_eur=invoice.total_eur if invoice else None, base=base, four=billing_view.four,
                duration=billing_view.duration)


async def _invoice_csv(request: Request, visit: Visit, customer_id: str) -> Response:
    """The month's lines exactly as `fairline invoice --month M --csv` writes this customer's."""
    month = billing_view.month_in_path(request.path_params["month"])
    if month is None:
        return not_found()
    invoice = await billing.invoice(visit.conn, customer_id, month)
    out = io.StringIO()
    write_invoices_csv(out, month, [invoice] if invoice else [])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="invoice-{customer_id}-{month}.csv"'})


async def my_invoices(request: Request, visit: Visit) -> Response:
    cid = visit.customer_id
    return await _invoice_list(request, visit, cid, await _customer_name(request, visit, cid) or cid, "/invoices")


async def my_invoice(request: Request, visit: Visit) -> Response:
    cid = visit.customer_id
    return await _invoice(request, visit, cid, await _customer_name(request, visit, cid) or cid, "/invoices")


async def my_invoice_csv(request: Request, visit: Visit) -> Response:
    return await _invoice_csv(request, visit, visit.customer_id)


async def staff_invoices(request: Request, visit: Visit) -> Response:
    cid = request.path_params["customer_id"]
    name = await _customer_name(request, visit, cid)
    if name is None:
        return not_found()
    return await _invoice_list(request, visit, cid, name, f"/staff/customers/{cid}/invoices")


async def staff_invoice(request: Request, visit: Visit) -> Response:
    cid = request.path_params["customer_id"]
    name = await _customer_name(request, visit, cid)
    if name is None:
        return not_found()
    return await _invoice(request, visit, cid, name, f"/staff/customers/{cid}/invoices")


async def staff_invoice_csv(request: Request, visit: Visit) -> Response:
    cid = request.path_params["customer_id"]
    if await _customer_name(request, visit, cid) is None:
        return not_found()
    return await _invoice_csv(request, visit, cid)


# ------------------------------------------------------------------ contact worklist


async def staff_contacts(request: Request, visit: Visit) -> Response:
    """Customers whose fair-use status is `contact` in the newest month reported (or ?month=YYYY-MM)."""
    asked = request.query_params.get("month")
    if asked is not None:
        parsed = billing_view.month_in_path(asked)
        if parsed is None:
            return not_found()
        month: date | None = billing.first_day(parsed)
    else:
        month = await billing_storage.latest_fair_use_month(visit.conn)
    rows = await billing_storage.worklist(visit.conn, month) if month else []
    return page(request, visit, "contacts.html", month=month, rows=rows)


async def _contact_page(request: Request, visit: Visit, customer_id: str, name: str, month: date,
                        fields: dict[str, str], errors: billing_view.Errors, status: int = 200) -> Response:
    history: tuple[Standing, ...] = await billing_storage.history(visit.conn, customer_id, month)
    return page(request, visit, "contact.html", status=status, customer_id=customer_id, name=name, month=month,
                history=history, notes=await billing_storage.notes(visit.conn, customer_id), fields=fields,
                errors=errors, saved=request.query_params.get("saved") == "1")


async def _contact_customer(request: Request, visit: Visit) -> tuple[str, str, date] | None:
    """The customer of the address, its name, and the month of its latest `contact` status; None: a 404."""
    cid = request.path_params["customer_id"]
    name = await _customer_name(request, visit, cid)
    month = await billing_storage.contact_month(visit.conn, cid) if name is not None else None
    return (cid, name, month) if name is not None and month is not None else None


async def staff_contact(request: Request, visit: Visit) -> Response:
    found = await _contact_customer(request, visit)
    if found is None:
        return not_found()
    cid, name, month = found
    fields = {"spoke_with": "", "called_at": called_at_text(visit.now), "note": ""}
    return await _contact_page(request, visit, cid, name, month, fields, {})


async def staff_contact_note(request: Request, visit: Visit) -> Response:
    found = await _contact_customer(request, visit)
    if found is None:
        return not_found()
    cid, name, month = found
    fields = {key: visit.field(key) for key in ("spoke_with", "called_at", "note")}
    note, errors = billing_view.contact_note_form(fields, now=visit.now)
    if note is None:
        return await _contact_page(request, visit, cid, name, month, fields, errors, status=400)
    account = visit.account
    async with visit.conn.transaction():  # the note and its audit line together, or neither
        note_id = await billing_storage.add_note(visit.conn, cid, month, note, user_id=account.user_id, now=visit.now)
        await storage.audit(visit.conn, "contact_noted", at=visit.now, email=account.email, user_id=account.user_id,
                            address=client_address(request),
                            detail=f"{cid} {month:%Y-%m}: note {note_id}, called {called_at_text(note.called_at)} "
                                   f"UTC, spoke with {note.spoke_with}")
    return RedirectResponse(f"/staff/contacts/{cid}?saved=1", status_code=303)


# ------------------------------------------------------------------ heavy users


async def _heavy_page(request: Request, visit: Visit, customer_id: str, name: str, fields: dict[str, str],
                      errors: billing_view.Errors, status: int = 200) -> Response:
    marks = await billing_storage.heavy_user_marks(visit.conn, customer_id)
    return page(request, visit, "heavy_user.html", status=status, customer_id=customer_id, name=name, marks=marks,
                fields=fields, errors=errors, saved=request.query_params.get("saved"))


async def staff_heavy_user(request: Request, visit: Visit) -> Response:
    cid = request.path_params["customer_id"]
    name = await _customer_name(request, visit, cid)
    if name is None:
        return not_found()
    this_month = Month(visit.now.year, visit.now.month)
    fields = {"month": str(this_month.previous()), "decision": "", "reason": ""}
    return await _heavy_page(request, visit, cid, name, fields, {})


async def staff_heavy_user_decide(request: Request, visit: Visit) -> Response:
    """`fairline heavy-user mark|unmark CUSTOMER --month M --by STAFF --reason R`, from the form; audited."""
    cid = request.path_params["customer_id"]
    name = await _customer_name(request, visit, cid)
    if name is None:
        return not_found()
    fields = {key: visit.field(key) for key in ("month", "decision", "reason")}
    decision, errors = billing_view.heavy_user_form(fields)
    if decision is not None and not await billing_storage.in_billing(visit.conn, cid):
        decision, errors = None, {"month": f"{cid} has no calls on record yet (not in the customers table): "
                                           "there is nothing to re-price."}
    if decision is None:
        return await _heavy_page(request, visit, cid, name, fields, errors, status=400)
    account = visit.account
    async with visit.conn.transaction():  # the decision, its re-pricing and the audit line together, or none
        done = await billing.decide_heavy_user(visit.conn, cid, decision.month, heavy=decision.heavy,
                                               decided_by=account.email, reason=decision.reason)
        t = done.totals
        await storage.audit(
            visit.conn, "heavy_user_marked" if decision.heavy else "heavy_user_unmarked", at=visit.now,
            email=account.email, user_id=account.user_id, address=client_address(request),
            detail=f"{cid} {decision.month}: {decision.reason} (decision {done.decision_id}; {done.repriced_calls} "
                   f"calls re-priced; total {billing_view.four(t.total_eur)} EUR)")
    return RedirectResponse(f"/staff/customers/{cid}/heavy-user?saved={done.decision_id}", status_code=303)


# ------------------------------------------------------------------ queue service levels


async def staff_queues(request: Request, visit: Visit) -> Response:
    cid = request.path_params["customer_id"]
    name = await _customer_name(request, visit, cid)
    if name is None:
        return not_found()
    months = billing_view.recent_months(visit.now.date(), billing_view.QUEUE_MONTHS)
    reports = [await queue_report.customer_queue_report(visit.conn, cid, m) for m in months]
    hints = {
        r.month: billing_view.cap_hint(flagged=c.flagged, cap_hits=c.cap_hits, visits=c.visits,
                                       cap_percent=c.cap_percent)
        for r in reports for c in r.customers
    }
    return page(request, visit, "queues.html", customer_id=cid, name=name, reports=reports, hints=hints,
                tenth=billing_view.tenth, limit=SERVICE_LEVEL_SECONDS)
