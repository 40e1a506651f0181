"""Every request passes here before its endpoint: the session from its cookie (expired, disabled or
unknown: none), CSRF on every POST, and who may see the page. A page is declared with who may see it
(`Page(path, endpoint, who=...)`); there is no other kind of route but the static files.

Refusals say nothing: no session -> the login page (a GET) or 403 (a POST); a session of the wrong
kind (a customer on a staff page) -> the same 404 as a page that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import structlog
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from console import storage
from console.core import csrf, passwords, sessions
from console.settings import ConsoleSettings

log = structlog.get_logger(__name__)

Who = Literal["anyone", "second_factor", "enrolling", "signed_in", "customer", "staff"]
Endpoint = Callable[[Request, "Visit"], Awaitable[Response]]

NOT_FOUND = "Not found"
UNAVAILABLE = "The console cannot reach its database just now. Try again in a minute."
DATABASE_TIMEOUT_S = 5.0
TOO_LARGE = "Too large: this upload is far over its limit."
FORBIDDEN = "Forbidden: this form is out of date or was not sent by this console. Reload the page and try again."


def client_address(request: Request) -> str:
    """The address the request came from, for throttling and the audit (behind a proxy: the one it trusts)."""
    return request.client.host if request.client else ""


@dataclass(frozen=True, slots=True)
class Visit:
    """What an endpoint gets besides the request: the database, the session (if any), the time."""

    settings: ConsoleSettings
    conn: asyncpg.Connection
    pool: asyncpg.Pool
    now: datetime
    session: storage.Session | None
    csrf_token: str  # to put in this page's forms
    form: FormData | None = None  # a POST's fields, read once here
    new_csrf_cookie: bool = False

    @property
    def account(self) -> storage.Account:
        assert self.session is not None, "a page for signed-in users only"
        return self.session.account

    @property
    def customer_id(self) -> str:
        cid = self.account.customer_id
        assert cid is not None, "a customer page"
        return cid

    @property
    def password_due(self) -> int | None:
        if self.session is None or self.session.stage != "full":
            return None
        return passwords.change_due(self.account.password_changed_at, self.now, self.settings.password_max_age_days)

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else ""


def _within(request: Request, upload_bytes: int) -> bool:
    """Whether an upload's request says it is small enough to read: twice the limit, so a file a little
    too large still reaches its form's message; a request that does not say its length is refused."""
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) <= 2 * upload_bytes


def not_found() -> Response:
    return PlainTextResponse(NOT_FOUND, status_code=404)


def _allowed(who: Who, s: storage.Session | None) -> bool:
    if who == "anyone":
        return True
    if s is None:
        return False
    match who:
        case "second_factor":
            return s.stage == "totp"
        case "enrolling":
            return s.stage in ("enrol", "full")
        case "signed_in":
            return s.stage == "full"
        case "customer":
            return s.stage == "full" and s.account.role == "customer"
        case "staff":
            return s.stage == "full" and s.account.role == "staff"


class Page(Route):
    """A route whose endpoint runs only for whom `who` says."""

    def __init__(self, path: str, endpoint: Endpoint, *, who: Who, methods: tuple[str, ...] = ("GET",),
                 upload_bytes: int = 0) -> None:
        self.who: Who = who
        self.upload_bytes = upload_bytes  # a POST may carry one file; its endpoint checks its size

        async def guarded(request: Request) -> Response:
            settings: ConsoleSettings = request.app.state.settings
            pool: asyncpg.Pool = request.app.state.pool
            try:
                async with pool.acquire(timeout=DATABASE_TIMEOUT_S) as conn:
                    return await _guard(request, endpoint, who, settings, conn, pool, upload_bytes)
            except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.CannotConnectNowError) as down:
                log.error("console.database_unavailable", path=request.url.path, error=str(down) or type(down).__name__)
                return PlainTextResponse(UNAVAILABLE, status_code=503)

        guarded.__name__ = getattr(endpoint, "__name__", path)
        super().__init__(path, guarded, methods=list(methods))


async def _guard(request: Request, endpoint: Endpoint, who: Who, settings: ConsoleSettings,
                 conn: asyncpg.Connection, pool: asyncpg.Pool, upload_bytes: int = 0) -> Response:
    now = settings.clock()
    s = await current_session(request, conn, settings, now)
    prelogin = request.cookies.get(settings.csrf_cookie)
    form: FormData | None = None
    if request.method == "POST":
        if upload_bytes and not _allowed(who, s):  # a file for nobody the page is for is not even read
            return not_found() if s is not None and s.stage == "full" else PlainTextResponse(FORBIDDEN, status_code=403)
        if upload_bytes and not _within(request, upload_bytes):
            return PlainTextResponse(TOO_LARGE, status_code=413)
        form = await request.form(max_files=1 if upload_bytes else 0, max_fields=20, max_part_size=64 * 1024)
        given = form.get(csrf.FIELD)
        expected = s.csrf_token if s is not None else prelogin
        if not csrf.valid(expected, given if isinstance(given, str) else None):
            return PlainTextResponse(FORBIDDEN, status_code=403)
    if not _allowed(who, s):
        if s is not None and s.stage == "full":
            return not_found()  # signed in, but not this kind of page: as if it did not exist
        if request.method == "GET":  # to the sign-in step still due
            step = {"totp": "/login/totp", "enrol": "/account/totp"}.get(s.stage, "/login") if s else "/login"
            return RedirectResponse(step, status_code=303)
        return PlainTextResponse(FORBIDDEN, status_code=403)
    if s is not None:
        await storage.touch(conn, s.token_sha256, now)
    token = s.csrf_token if s is not None else (prelogin or csrf.new_token())
    visit = Visit(settings, conn, pool, now, s, token, form, new_csrf_cookie=s is None and not prelogin)
    response = await endpoint(request, visit)
    if visit.new_csrf_cookie:
        response.set_cookie(settings.csrf_cookie, token, httponly=True, secure=settings.secure_cookies,
                            samesite="strict", path="/")
    return response


async def current_session(request: Request, conn: asyncpg.Connection, settings: ConsoleSettings,
                          now: datetime) -> storage.Session | None:
    """The request's session while it lasts; an expired one, or one of a disabled account, is deleted."""
    token = request.cookies.get(settings.session_cookie)
    if not token:
        return None
    digest = sessions.digest(token)
    s = await storage.session(conn, digest)
    if s is None:
        return None
    if s.account.disabled or sessions.ended(created_at=s.created_at, last_seen_at=s.last_seen_at,
                                            signed_in=s.stage == "full", now=now, policy=settings.sessions):
        await storage.end_session(conn, digest)
        return None
    return s


def with_session_cookie(response: Response, settings: ConsoleSettings, token: str | None) -> Response:
    """Set (or, with None, clear) the session cookie: HttpOnly, SameSite=Strict, Secure unless relaxed."""
    if token is None:
        response.delete_cookie(settings.session_cookie, path="/", secure=settings.secure_cookies, httponly=True,
                               samesite="strict")
    else:
        response.set_cookie(settings.session_cookie, token, httponly=True, secure=settings.secure_cookies,
                            samesite="strict", path="/")
    return response
