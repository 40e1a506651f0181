"""Call flows changed in forms, and their history (issue 19, decision 0035).

A customer changes their own numbers (author: their e-mail, role customer); staff change any
customer's, as staff, and may charge the agreed fee for that very version in the same form. A save is
a new version of the configuration store (decision 0021), made from the newest, checked whole by the
loader `fairline config apply` uses; every fairline applies it within a second (the store's NOTIFY).

The form carries the version it was made from. When this number, its customer's entry or the
customer's queues changed since, the save is refused with what changed; when only other numbers
changed, the change is made on the newest version (a customer is never refused for another's save).
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import anyio.to_thread
import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ari_app.config_versions import OUTSIDE_NUMBERS, number_changes
from ari_app.errors import ConfigError
from console import flow_text, storage
from console.config_cache import ConfigCache
from console.flow_cache import Found, find_item, flow_cache
from console.core.flow_form import TOP, FlowForm, FormInvalid, Problems, customer_settings, item_of, place, shown
from console.guard import Visit, client_address, not_found
from console.render import page
from rating.commands.billing_cli import amount_eur
from rating.core.fair_use import Month
from rating.storage.billing import UnknownCustomer, add_service_charge
from rating.storage.config_store import (NumberChange, SameContent, StaleBase, VersionRefused,
                                         newest_version, store_version, version, version_id)

log = structlog.get_logger(__name__)

# Saves racing each other: each retry is made from a newer version. Three losses in a row means the
# store is busier than a person filling in a form can follow; they are told to try again.
ATTEMPTS = 3
SOURCE = "change"  # the loader names the text it checks so in its problems (never shown as such)


@dataclass(frozen=True, slots=True)
class Whose:
    """The number a page is about, whose it is, and who is at the keyboard."""

    customer_id: str
    e164: str
    staff: bool

    @property
    def url(self) -> str:
        return (f"/staff/customers/{self.customer_id}/numbers/{self.e164}" if self.staff
                else f"/numbers/{self.e164}")


def _whose(request: Request, visit: Visit) -> Whose:
    staff = visit.account.role == "staff"
    # A customer's pages take the customer from the session, never from the URL.
    customer = request.path_params["customer_id"] if staff else visit.customer_id
    return Whose(customer, request.path_params["e164"], staff)


async def _find(request: Request, visit: Visit, whose: Whose) -> Found | None:
    """The number in the newest version, if it is the customer's; None otherwise (a 404, whoever asks)."""
    return await find_item(request, visit.conn, "numbers", lambda root: flow_text.number_index(root, whose.e164),
                           whose.customer_id)


def _form_page(request: Request, visit: Visit, whose: Whose, found: Found, *, form: FlowForm | None = None,
               problems: Problems | None = None, status: int = 200, reason: str = "", fee: str = "",
               changed: list[NumberChange] | None = None, notice: str | None = None) -> Response:
    view = shown(found.item, staff=whose.staff)
    if form is None:
        form = replace(view.form, advanced=flow_text.dump(view.advanced) if view.advanced else "")
    return page(request, visit, "flow_edit.html", status=status, whose=whose, form=form, fixed=view.fixed,
                base=found.version.id, base_name=found.version.name, problems=(problems or Problems()).by_field,
                reason=reason, fee=fee, changed=changed or [], notice=notice)


async def edit_form(request: Request, visit: Visit) -> Response:
    whose = _whose(request, visit)
    found = await _find(request, visit, whose)
    if found is None:
        return not_found()
    return _form_page(request, visit, whose, found)


async def _changed_since(visit: Visit, base: int | None, found: Found, whose: Whose) -> list[NumberChange]:
    """What changed for this number since version `base`: its own item and its customer's queues (the store's
    change rows), and its customer's entry (compared only when something outside `numbers:` changed)."""
    old = await version(visit.conn, base) if base is not None else None
    if old is None:
        return [NumberChange(whose.e164, "changed", "the form was not made from a stored version; start again")]
    rows = await storage.changes_since(visit.conn, old.id, [whose.e164, OUTSIDE_NUMBERS], whose.customer_id)
    mine = [NumberChange(f"{number} in {name}", change, diff)  # type: ignore[arg-type]
            for name, number, change, diff in rows if number != OUTSIDE_NUMBERS]  # the number, the queues
    if any(number == OUTSIDE_NUMBERS for _, number, _, _ in rows):
        old_root = await anyio.to_thread.run_sync(flow_text.load, old.content)
        before = customer_settings(old_root, whose.customer_id)
        after = customer_settings(found.root, whose.customer_id)
        if before != after:
            diff = difflib.unified_diff(flow_text.dump(before).splitlines(keepends=True),
                                        flow_text.dump(after).splitlines(keepends=True),
                                        fromfile=f"{whose.customer_id} before", tofile=f"{whose.customer_id} after")
            mine.append(NumberChange(f"customer {whose.customer_id}", "changed", "".join(diff)))
    return mine


def _item_changes(old: dict[str, Any], new: dict[str, Any]) -> list[NumberChange]:
    """What replacing the item `old` by `new` changes, as the store computes it for the whole text (only
    that item differs): the number's row alone, without reading the other thousands."""
    return number_changes(flow_text.dump({"numbers": [old]}), flow_text.dump({"numbers": [new]}))


def fee_field(text: str, problems: Problems) -> Decimal | None:
    if not text:
        return None
    try:
        return amount_eur(text)  # the rules of `fairline service-charge add --amount`
    except argparse.ArgumentTypeError as bad:
        problems.add("fee_eur", str(bad))
        return None


async def save(request: Request, visit: Visit) -> Response:
    whose = _whose(request, visit)
    form = FlowForm.from_fields(visit.field)
    reason = visit.field("reason").strip()
    fee_text = visit.field("fee_eur").strip() if whose.staff else ""
    base = version_id(visit.field("base"))
    found: Found | None = None
    for _ in range(ATTEMPTS):
        found = await _find(request, visit, whose)
        if found is None:
            return not_found()
        if base != found.version.id:
            changed = await _changed_since(visit, base, found, whose)
            if changed:
                log.info("console.flow_stale", number=whose.e164, base=base, newest=found.version.name)
                return _form_page(request, visit, whose, found, status=409, changed=changed, reason=reason,
                                  fee=fee_text)
        problems = Problems()
        if not reason:
            problems.add("reason", "expected a few words on why: the history keeps them")
        fee = fee_field(fee_text, problems)
        advanced, bad = flow_text.parse_advanced(form.advanced)
        if bad is not None:
            problems.add("advanced", bad)
        text = None
        try:
            built = item_of(form, shown(found.item, staff=whose.staff).fixed, advanced, staff=whose.staff)
        except FormInvalid as invalid:
            problems.merge(invalid.problems)
        else:
            text = flow_text.with_item(found.version.content, found.index, built.item)
            if text is None:
                problems.add(TOP, "this configuration is written in a way the console cannot change (anchors or "
                                  "flow style around the numbers); our staff change it with fairline config apply")
            else:
                try:  # as `fairline config apply` checks it
                    checked = await flow_cache(request).check(text, SOURCE, found.version.id)
                except ConfigError as refused:
                    problems.merge(place(refused.problems, found.index, built, form.answer, staff=whose.staff))
        if problems or text is None:
            return _form_page(request, visit, whose, found, form=form, problems=problems, status=400, reason=reason,
                              fee=fee_text)
        changes = _item_changes(found.item, built.item)
        if not changes:
            return _form_page(request, visit, whose, found, form=form, reason=reason, fee=fee_text,
                              notice="Nothing changed: the call flow is already as in the form. Nothing was saved.")
        try:
            async with visit.conn.transaction():  # the version and its fee together, or neither
                stored = await store_version(visit.conn, content=text, author=visit.account.email,
                                             role="staff" if whose.staff else "customer", reason=reason,
                                             based_on=found.version.id, changes=changes)
                await storage.audit(visit.conn, "flow_changed", at=visit.now, email=visit.account.email,
                                    user_id=visit.account.user_id, address=client_address(request),
                                    detail=f"{whose.customer_id} {whose.e164} {stored.name}: {reason}")
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
            return _form_page(request, visit, whose, found, form=form, reason=reason, fee=fee_text,
                              notice="Nothing changed: the call flow is already as in the form. Nothing was saved.")
        except (VersionRefused, UnknownCustomer) as refused_fee:
            problems.add("fee_eur", f"{refused_fee}; nothing was saved")
            return _form_page(request, visit, whose, found, form=form, problems=problems, status=400, reason=reason,
                              fee=fee_text)
        numbers = list(found.root["numbers"])
        numbers[found.index] = built.item
        flow_cache(request).remember(stored, {**found.root, "numbers": numbers}, checked)
        log.info("console.flow_changed", number=whose.e164, version=stored.name, based_on=found.version.name,
                 form_base=base, role=stored.role, fee=str(fee) if fee is not None else None)
        rebased = f"&over=v{base}" if base != found.version.id else ""
        return RedirectResponse(f"{whose.url}/history?saved={stored.name}{rebased}", status_code=303)
    assert found is not None  # the loop ran
    return _form_page(request, visit, whose, found, form=form, status=409, reason=reason, fee=fee_text,
                      notice="Others saved changes at the same moment several times over. Nothing was saved: "
                             "please save again.")


async def number_history(request: Request, visit: Visit) -> Response:
    whose = _whose(request, visit)
    found = await _find(request, visit, whose)
    if found is None:
        return not_found()
    rows = await storage.flow_history(visit.conn, whose.customer_id, number=whose.e164, staff=whose.staff)
    hidden = 0 if whose.staff else await storage.ownerless_changes(visit.conn, whose.e164)
    return page(request, visit, "flow_history.html", whose=whose, title=whose.e164, rows=rows, hidden=hidden,
                customer_id=whose.customer_id, staff=whose.staff, saved=request.query_params.get("saved"),
                over=request.query_params.get("over"))


async def customer_history(request: Request, visit: Visit) -> Response:
    staff = visit.account.role == "staff"
    customer_id = request.path_params["customer_id"] if staff else visit.customer_id
    cache: ConfigCache = request.app.state.config_cache
    current = await cache.current(visit.conn)
    if staff and (current is None or customer_id not in current[1].customers):
        return not_found()
    # By owner, not by today's numbers: a number that moved away keeps its history while it was theirs.
    rows = await storage.flow_history(visit.conn, customer_id, staff=staff)
    return page(request, visit, "flow_history.html", whose=None, title=customer_id, rows=rows, staff=staff,
                customer_id=customer_id, saved=None, over=None, hidden=0)
