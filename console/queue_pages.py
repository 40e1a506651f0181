"""A customer's queues changed in a form, and their history (issue 19, decision 0035).

Built as the number's form (console/flow_pages.py): a customer changes their own queues, staff any
customer's, as staff, with the agreed fee; a save is a new version of the configuration store made
from the newest and checked whole by the loader `fairline config apply` uses. The form carries the
version it was made from: when this queue changed since, the save is refused with what changed;
otherwise the change is made on the newest version. The version's change row is the queue's own
("queue:NAME", its customer as owner), so its history is shown to its customer only.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ari_app.config_versions import QUEUE, number_changes
from ari_app.errors import ConfigError
from console import flow_text, storage
from console.core import queue_form
from console.core.flow_form import TOP, FormInvalid, Problems
from console.core.queue_form import QueueForm
from console.flow_cache import Found, find_item, flow_cache
from console.flow_pages import ATTEMPTS, SOURCE, fee_field
from console.guard import Visit, client_address, not_found
from console.render import page
from rating.core.fair_use import Month
from rating.storage.billing import UnknownCustomer, add_service_charge
from rating.storage.config_store import (NumberChange, SameContent, StaleBase, VersionRefused,
                                         newest_version, store_version, version_id)

log = structlog.get_logger(__name__)
NOTHING = "Nothing changed: the queue is already as in the form. Nothing was saved."


@dataclass(frozen=True, slots=True)
class Whose:
    """The queue a page is about, whose it is, and who is at the keyboard."""

    customer_id: str
    name: str
    staff: bool

    @property
    def url(self) -> str:
        return (f"/staff/customers/{self.customer_id}/queues/{self.name}" if self.staff
                else f"/queues/{self.name}")

    @property
    def key(self) -> str:
        return f"{QUEUE}{self.name}"  # its change rows


def _whose(request: Request, visit: Visit) -> Whose:
    staff = visit.account.role == "staff"
    # A customer's pages take the customer from the session, never from the URL.
    customer = request.path_params["customer_id"] if staff else visit.customer_id
    return Whose(customer, request.path_params["name"], staff)


async def _find(request: Request, visit: Visit, whose: Whose) -> Found | None:
    """The queue in the newest version, if it is the customer's; None otherwise (a 404, whoever asks)."""
    return await find_item(request, visit.conn, "queues", lambda root: queue_form.queue_index(root, whose.name),
                           whose.customer_id)


def _form_page(request: Request, visit: Visit, whose: Whose, found: Found, *, form: QueueForm | None = None,
               problems: Problems | None = None, status: int = 200, reason: str = "", fee: str = "",
               changed: list[NumberChange] | None = None, notice: str | None = None) -> Response:
    return page(request, visit, "queue_edit.html", status=status, whose=whose,
                form=form or queue_form.shown(found.item), base=found.version.id, base_name=found.version.name,
                problems=(problems or Problems()).by_field, reason=reason, fee=fee, changed=changed or [],
                notice=notice)


async def queues(request: Request, visit: Visit) -> Response:
    """The customer's queues, each with its agents, to change."""
    staff = visit.account.role == "staff"
    customer_id = request.path_params["customer_id"] if staff else visit.customer_id
    newest = await newest_version(visit.conn)
    root = await flow_cache(request).root(newest) if newest is not None else None
    known = [c for c in (root or {}).get("customers") or () if isinstance(c, dict) and c.get("id") == customer_id]
    if staff and not known:
        return not_found()
    found = queue_form.queues_of(root, customer_id)
    return page(request, visit, "queue_list.html", queues=found, customer_id=customer_id,
                urls=[Whose(customer_id, str(q.get("name")), staff).url for q in found])


async def edit_form(request: Request, visit: Visit) -> Response:
    whose = _whose(request, visit)
    found = await _find(request, visit, whose)
    if found is None:
        return not_found()
    return _form_page(request, visit, whose, found)


async def save(request: Request, visit: Visit) -> Response:
    whose = _whose(request, visit)
    form = QueueForm.from_fields(visit.field)
    reason = visit.field("reason").strip()
    fee_text = visit.field("fee_eur").strip() if whose.staff else ""
    base = version_id(visit.field("base"))
    found: Found | None = None
    for _ in range(ATTEMPTS):
        found = await _find(request, visit, whose)
        if found is None:
            return not_found()
        if base != found.version.id:
            rows = await storage.changes_since(visit.conn, base, [whose.key], whose.customer_id) if base is not None \
                else None
            if rows is None or rows:
                changed = [NumberChange(f"{number} in {name}", change, diff)  # type: ignore[arg-type]
                           for name, number, change, diff in rows or ()] or [
                    NumberChange(whose.key, "changed", "the form was not made from a stored version; start again")]
                log.info("console.queue_stale", queue=whose.name, base=base, newest=found.version.name)
                return _form_page(request, visit, whose, found, status=409, changed=changed, reason=reason,
                                  fee=fee_text)
        problems = Problems()
        if not reason:
            problems.add("reason", "expected a few words on why: the history keeps them")
        fee = fee_field(fee_text, problems)
        text = item = None
        try:
            item = queue_form.item_of(form, found.item)
        except FormInvalid as invalid:
            problems.merge(invalid.problems)
        else:
            text = flow_text.with_item(found.version.content, found.index, item, "queues")
            if text is None:
                problems.add(TOP, "this configuration is written in a way the console cannot change (anchors or "
                                  "flow style around the queues); our staff change it with fairline config apply")
            else:
                try:  # as `fairline config apply` checks it
                    checked = await flow_cache(request).check(text, SOURCE, found.version.id)
                except ConfigError as refused:
                    problems.merge(queue_form.place(refused.problems, found.index, staff=whose.staff))
        if problems or text is None or item is None:
            return _form_page(request, visit, whose, found, form=form, problems=problems, status=400, reason=reason,
                              fee=fee_text)
        changes = number_changes(flow_text.dump({"queues": [found.item]}), flow_text.dump({"queues": [item]}))
        if not changes:
            return _form_page(request, visit, whose, found, form=form, reason=reason, fee=fee_text, notice=NOTHING)
        try:
            async with visit.conn.transaction():  # the version and its fee together, or neither
                stored = await store_version(visit.conn, content=text, author=visit.account.email,
                                             role="staff" if whose.staff else "customer", reason=reason,
                                             based_on=found.version.id, changes=changes)
                await storage.audit(visit.conn, "flow_changed", at=visit.now, email=visit.account.email,
                                    user_id=visit.account.user_id, address=client_address(request),
                                    detail=f"{whose.customer_id} {whose.key} {stored.name}: {reason}")
                if fee is not None:
                    await add_service_charge(visit.conn, whose.customer_id, Month(visit.now.year, visit.now.month),
                                             fee, reason=reason, charged_by=visit.account.email,
                                             config_version=stored.name)
                    await storage.audit(visit.conn, "fee_charged", at=visit.now, email=visit.account.email,
                                        user_id=visit.account.user_id, address=client_address(request),
                                        detail=f"{whose.customer_id} EUR {fee} for {stored.name}")
        except StaleBase:
            continue  # someone stored a version meanwhile: look again from the newest
        except SameContent:
            return _form_page(request, visit, whose, found, form=form, reason=reason, fee=fee_text, notice=NOTHING)
        except (VersionRefused, UnknownCustomer) as refused_fee:
            problems.add("fee_eur", f"{refused_fee}; nothing was saved")
            return _form_page(request, visit, whose, found, form=form, problems=problems, status=400, reason=reason,
                              fee=fee_text)
        listed = list(found.root["queues"])
        listed[found.index] = item
        flow_cache(request).remember(stored, {**found.root, "queues": listed}, checked)
        log.info("console.queue_changed", queue=whose.name, version=stored.name, based_on=found.version.name,
                 form_base=base, role=stored.role, fee=str(fee) if fee is not None else None)
        rebased = f"&over=v{base}" if base != found.version.id else ""
        return RedirectResponse(f"{whose.url}/history?saved={stored.name}{rebased}", status_code=303)
    assert found is not None  # the loop ran
    return _form_page(request, visit, whose, found, form=form, status=409, reason=reason, fee=fee_text,
                      notice="Others saved changes at the same moment several times over. Nothing was saved: "
                             "please save again.")


async def history(request: Request, visit: Visit) -> Response:
    whose = _whose(request, visit)
    if await _find(request, visit, whose) is None:
        return not_found()
    rows = await storage.flow_history(visit.conn, whose.customer_id, number=whose.key, staff=whose.staff)
    return page(request, visit, "flow_history.html", whose=whose, title=f"queue {whose.name}", rows=rows, hidden=0,
                customer_id=whose.customer_id, staff=whose.staff, saved=request.query_params.get("saved"),
                over=request.query_params.get("over"), edit_label="Change the queue")
