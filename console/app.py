"""The console's ASGI app: its pages as a list of routes, each declaring who may see it (console.guard)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import auth_pages, billing_pages, data_pages, flow_pages, media_pages
from console import queue_pages
from console.config_cache import ConfigCache
from console.core import greeting_check
from console.flow_cache import FlowCache
from console.guard import NOT_FOUND, Page
from console.settings import ConsoleSettings

POST = ("POST",)

ROUTES = [
    Page("/", auth_pages.root, who="anyone"),
    Page("/login", auth_pages.login_form, who="anyone"),
    Page("/login", auth_pages.login, who="anyone", methods=POST),
    Page("/login/totp", auth_pages.totp_form, who="second_factor"),
    Page("/login/totp", auth_pages.totp_check, who="second_factor", methods=POST),
    Page("/account/totp", auth_pages.enrol_form, who="enrolling"),
    Page("/account/totp", auth_pages.enrol, who="enrolling", methods=POST),
    Page("/account/password", auth_pages.password_form, who="signed_in"),
    Page("/account/password", auth_pages.change_password, who="signed_in", methods=POST),
    Page("/logout", auth_pages.logout, who="signed_in", methods=POST),
    Page("/numbers", data_pages.my_numbers, who="customer"),
    Page("/numbers/{e164}", data_pages.my_number, who="customer"),
    Page("/calls", data_pages.my_calls, who="customer"),
    Page("/calls.csv", data_pages.my_calls_csv, who="customer"),
    Page("/fair-use", data_pages.my_fair_use, who="customer"),
    Page("/recordings", media_pages.my_recordings, who="customer"),
    Page("/recordings/{kind}/{call_id}", media_pages.my_recording, who="customer"),
    Page("/greeting", media_pages.greeting_form, who="customer"),
    Page("/greeting", media_pages.upload_greeting, who="customer", methods=POST,
         upload_bytes=greeting_check.MAX_UPLOAD_BYTES),
    Page("/staff/customers", data_pages.staff_customers, who="staff"),
    Page("/staff/customers/{customer_id}", data_pages.staff_customer, who="staff"),
    Page("/staff/audit", data_pages.staff_audit, who="staff"),
    Page("/invoices", billing_pages.my_invoices, who="customer"),
    Page("/invoices/{month}.csv", billing_pages.my_invoice_csv, who="customer"),
    Page("/invoices/{month}", billing_pages.my_invoice, who="customer"),
    Page("/staff/contacts", billing_pages.staff_contacts, who="staff"),
    Page("/staff/contacts/{customer_id}", billing_pages.staff_contact, who="staff"),
    Page("/staff/contacts/{customer_id}", billing_pages.staff_contact_note, who="staff", methods=POST),
    Page("/staff/customers/{customer_id}/heavy-user", billing_pages.staff_heavy_user, who="staff"),
    Page("/staff/customers/{customer_id}/heavy-user", billing_pages.staff_heavy_user_decide, who="staff",
         methods=POST),
    Page("/staff/customers/{customer_id}/queues", billing_pages.staff_queues, who="staff"),
    Page("/staff/customers/{customer_id}/invoices", billing_pages.staff_invoices, who="staff"),
    Page("/staff/customers/{customer_id}/invoices/{month}.csv", billing_pages.staff_invoice_csv, who="staff"),
    Page("/staff/customers/{customer_id}/invoices/{month}", billing_pages.staff_invoice, who="staff"),
    Page("/numbers/{e164}/edit", flow_pages.edit_form, who="customer"),
    Page("/numbers/{e164}/edit", flow_pages.save, who="customer", methods=POST),
    Page("/numbers/{e164}/history", flow_pages.number_history, who="customer"),
    Page("/history", flow_pages.customer_history, who="customer"),
    Page("/staff/customers/{customer_id}/numbers/{e164}/edit", flow_pages.edit_form, who="staff"),
    Page("/staff/customers/{customer_id}/numbers/{e164}/edit", flow_pages.save, who="staff", methods=POST),
    Page("/staff/customers/{customer_id}/numbers/{e164}/history", flow_pages.number_history, who="staff"),
    Page("/staff/customers/{customer_id}/history", flow_pages.customer_history, who="staff"),
    Page("/queues", queue_pages.queues, who="customer"),
    Page("/queues/{name}/edit", queue_pages.edit_form, who="customer"),
    Page("/queues/{name}/edit", queue_pages.save, who="customer", methods=POST),
    Page("/queues/{name}/history", queue_pages.history, who="customer"),
    Page("/staff/customers/{customer_id}/queue-settings", queue_pages.queues, who="staff"),
    Page("/staff/customers/{customer_id}/queues/{name}/edit", queue_pages.edit_form, who="staff"),
    Page("/staff/customers/{customer_id}/queues/{name}/edit", queue_pages.save, who="staff", methods=POST),
    Page("/staff/customers/{customer_id}/queues/{name}/history", queue_pages.history, who="staff"),
    Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
]

# No script at all, nothing from elsewhere, never in a frame; pages with personal data are not cached.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """A page that does not exist and a method not allowed answer as plainly as a refused page."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return PlainTextResponse(NOT_FOUND if status == 404 else "Error", status_code=status)


def create_app(settings: ConsoleSettings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # No connection at start: pages answer 503 while the database is away and recover without a restart.
        # Plans for the values at hand: a generic plan of "my calls" guesses one row a customer, and sorts
        # all of a big customer's calls instead of reading 51 from the index (seconds; decision 0038).
        pool = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=10,
                                         server_settings={"plan_cache_mode": "force_custom_plan"})
        app.state.pool = pool
        warming = app.state.config_cache.warm(pool)  # parse the newest version before the first page asks
        try:
            yield
        finally:
            warming.cancel()
            await pool.close()

    app = Starlette(routes=ROUTES, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error})
    app.state.settings = settings
    app.state.config_cache = ConfigCache()
    app.state.flow_cache = FlowCache()
    return app
