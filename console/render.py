"""Server-rendered pages: Jinja2 with autoescaping, the templates shipped in console/templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from console.core import passwords

if TYPE_CHECKING:
    from console.guard import Visit

TEMPLATES = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined))


def page(request: Request, visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
    """`template` with what every page shows: who is signed in, the CSRF token, the password reminder."""
    session = visit.session
    account = session.account if session is not None and session.stage == "full" else None
    return TEMPLATES.TemplateResponse(request, template, {
        "account": account, "csrf_token": visit.csrf_token, "password_due": visit.password_due,
        "password_rules": passwords.explained(), **context}, status_code=status)
