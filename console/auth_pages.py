"""Sign-in (password, then a TOTP code), TOTP enrolment, password change and sign-out."""

from __future__ import annotations

import anyio.to_thread
import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console import storage
from console.core import csrf, passwords, sessions, throttle, totp
from console.guard import Visit, client_address, with_session_cookie
from console.render import page

log = structlog.get_logger(__name__)

WRONG = "Wrong e-mail address or password."
WRONG_CODE = "Wrong or already used code. Enter the code your app shows now."


async def _audit(request: Request, visit: Visit, event: storage.Event, email: str, user_id: int | None = None,
                 detail: str = "") -> None:
    await storage.audit(visit.conn, event, at=visit.now, email=email, user_id=user_id, address=client_address(request),
                        detail=detail)


async def root(request: Request, visit: Visit) -> Response:
    if visit.session is None or visit.session.stage != "full":
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_of(visit.account), status_code=303)


async def login_form(request: Request, visit: Visit) -> Response:
    if visit.session is not None and visit.session.stage == "full":
        return RedirectResponse(home_of(visit.account), status_code=303)
    return page(request, visit, "login.html", email="", error=None, notice=request.query_params.get("notice"))


async def login(request: Request, visit: Visit) -> Response:
    email, password = visit.field("email").strip().lower(), visit.field("password")
    address, conn, policy = client_address(request), visit.conn, visit.settings.throttle
    by_account, by_address = await storage.failures(conn, email=email, address=address,
                                                    since=visit.now - policy.window)
    lock = throttle.lock(account_failures=by_account, address_failures=by_address, now=visit.now, policy=policy)
    if lock is not None:
        await _audit(request, visit, "login_refused", email, detail=f"locked by {lock.why}")
        return page(request, visit, "login.html", status=429, email=email,
                    error=f"Too many failed sign-ins. Try again after {lock.until:%H:%M} UTC.", notice=None)
    found = await storage.account(conn, email)
    usable = found is not None and not found.disabled
    # The same argon2 work for an unknown or disabled e-mail: the time taken tells nothing.
    stored = found.password_hash if usable and found is not None else passwords.DUMMY_HASH
    right = await anyio.to_thread.run_sync(passwords.verify, stored, password)
    if not (right and usable and found is not None):
        return await _failed(request, visit, email, found, "password", len(by_account) + 1)
    if passwords.needs_rehash(found.password_hash):
        await storage.rehash(conn, found.user_id, await anyio.to_thread.run_sync(passwords.hash_password, password))
    if found.totp_secret is not None:
        return await _start(request, visit, found, "totp", "/login/totp")
    if found.role == "staff":  # TOTP is mandatory for staff: enrol before anything else
        return await _start(request, visit, found, "enrol", "/account/totp", pending=totp.new_secret())
    await _audit(request, visit, "login", email, found.user_id, "password")
    return await _start(request, visit, found, "full", home_of(found))


def home_of(account: storage.Account) -> str:
    return "/staff/customers" if account.role == "staff" else "/numbers"


async def _failed(request: Request, visit: Visit, email: str, found: storage.Account | None, what: str,
                  failures: int) -> Response:
    user_id = found.user_id if found else None
    await _audit(request, visit, "login_failed", email, user_id, what)
    if throttle.locks_now(failures, visit.settings.throttle):
        await _audit(request, visit, "lockout", email, user_id, f"{failures} failed sign-ins")
        log.warning("console.lockout", email=email, address=client_address(request))
    if visit.session is not None:  # a wrong code: the half sign-in ends, the password is asked again
        await storage.end_session(visit.conn, visit.session.token_sha256)
    response = page(request, visit, "login.html", status=401, email=email,
                    error=WRONG if what == "password" else WRONG_CODE, notice=None)
    return with_session_cookie(response, visit.settings, None) if visit.session is not None else response


async def _start(request: Request, visit: Visit, account: storage.Account, stage: storage.Stage, to: str,
                 pending: str | None = None) -> Response:
    """A new session (a new token at each step: one seen before sign-in never becomes a signed-in one)."""
    if visit.session is not None:
        await storage.end_session(visit.conn, visit.session.token_sha256)
    # Sessions nobody comes back to are refused when presented; here they are forgotten.
    await storage.purge_sessions(visit.conn, visit.now - visit.settings.sessions.absolute)
    token = sessions.new_token()
    await storage.create_session(visit.conn, token_sha256=sessions.digest(token), user_id=account.user_id,
                                 stage=stage, csrf_token=csrf.new_token(), address=client_address(request), now=visit.now,
                                 pending_totp=pending)
    return with_session_cookie(RedirectResponse(to, status_code=303), visit.settings, token)


async def totp_form(request: Request, visit: Visit) -> Response:
    return page(request, visit, "totp.html", error=None)


async def totp_check(request: Request, visit: Visit) -> Response:
    account = visit.account
    assert account.totp_secret is not None
    step = totp.accepted_step(account.totp_secret, visit.field("code"), now=visit.now,
                              last_step=account.totp_last_step)
    if step is None or not await storage.use_totp_step(visit.conn, account.user_id, step):
        by_account, _ = await storage.failures(visit.conn, email=account.email, address="",
                                               since=visit.now - visit.settings.throttle.window)
        return await _failed(request, visit, account.email, account, "totp", len(by_account) + 1)
    await _audit(request, visit, "login", account.email, account.user_id, "password+totp")
    return await _start(request, visit, account, "full", home_of(account))


async def enrol_form(request: Request, visit: Visit) -> Response:
    s = visit.session
    assert s is not None
    secret = s.pending_totp
    if secret is None:
        secret = totp.new_secret()
        await storage.set_pending_totp(visit.conn, s.token_sha256, secret)
    return _enrol_page(request, visit, secret, None)


def _enrol_page(request: Request, visit: Visit, secret: str, error: str | None) -> Response:
    return page(request, visit, "enrol.html", status=400 if error else 200, secret=totp.grouped(secret),
                uri=totp.provisioning_uri(secret, visit.account.email), error=error,
                enrolled=visit.account.totp_secret is not None, mandatory=visit.session is not None
                and visit.session.stage == "enrol")


async def enrol(request: Request, visit: Visit) -> Response:
    s = visit.session
    assert s is not None
    if s.pending_totp is None:
        return RedirectResponse("/account/totp", status_code=303)
    account = visit.account
    # Moving TOTP to another app takes the password too: a session left open must not be enough to
    # take the second factor over.
    if account.totp_secret is not None and not await anyio.to_thread.run_sync(
            passwords.verify, account.password_hash, visit.field("password")):
        return _enrol_page(request, visit, s.pending_totp, "The password is wrong.")
    step = totp.accepted_step(s.pending_totp, visit.field("code"), now=visit.now, last_step=None)
    if step is None:
        return _enrol_page(request, visit, s.pending_totp, WRONG_CODE)
    await storage.enrol_totp(visit.conn, account.user_id, s.pending_totp, step)
    await _audit(request, visit, "totp_enrolled", account.email, account.user_id)
    if s.stage == "enrol":
        await _audit(request, visit, "login", account.email, account.user_id, "password+totp enrolment")
    return await _start(request, visit, account, "full", home_of(account))


async def password_form(request: Request, visit: Visit) -> Response:
    return page(request, visit, "password.html", errors=[])


async def change_password(request: Request, visit: Visit) -> Response:
    account = visit.account
    current, new, again = visit.field("current"), visit.field("new"), visit.field("again")
    errors: list[str] = []
    if not await anyio.to_thread.run_sync(passwords.verify, account.password_hash, current):
        errors.append("The current password is wrong.")
    elif new != again:
        errors.append("The new password and its repetition differ.")
    elif new == current:
        errors.append("The new password is the current one.")
    else:
        errors = [f"The new password is {p}." for p in
                  passwords.problems(new, passwords.Holder(account.name, account.email))]
    if errors:
        return page(request, visit, "password.html", status=400, errors=errors)
    hashed = await anyio.to_thread.run_sync(passwords.hash_password, new)
    await storage.set_password(visit.conn, account.user_id, hashed, visit.now)  # ends every session of the account
    await _audit(request, visit, "password_changed", account.email, account.user_id, "console")
    response = RedirectResponse("/login?notice=password-changed", status_code=303)
    return with_session_cookie(response, visit.settings, None)


async def logout(request: Request, visit: Visit) -> Response:
    s = visit.session
    assert s is not None
    await storage.end_session(visit.conn, s.token_sha256)
    await _audit(request, visit, "logout", s.account.email, s.account.user_id)
    return with_session_cookie(RedirectResponse("/login?notice=signed-out", status_code=303), visit.settings, None)
