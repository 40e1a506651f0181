"""A customer's recordings and voicemails (list, play, download) and their voicemail greeting (upload).

Files are found by the call id of a row of the customer's own, never by a path from the URL, and served
only while kept (not purged) and while their SHA-256 is still the one stored with them: anything else
gets a page that says why, never another file. Every file served or refused is in the audit.
"""

from __future__ import annotations

import asyncio
from typing import get_args

import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from ari_app.core import voicemail
from ari_app.errors import ConfigError
from console import greetings, storage
from console.config_cache import ConfigCache
from console.core import call_filter, greeting_check
from console.core.numbers_view import numbers_of
from console.guard import Visit, client_address, not_found
from console.render import page
from rating.storage.recordings import verify

log = structlog.get_logger(__name__)

PAGE_SIZE = 50
FIELD = "greeting"  # the upload form's file field


def _cache(request: Request) -> ConfigCache:
    cache: ConfigCache = request.app.state.config_cache
    return cache


async def _numbers(request: Request, visit: Visit) -> list[str]:
    current = await _cache(request).current(visit.conn)
    return [n.e164 for n in numbers_of(current[1], visit.customer_id)] if current else []


async def my_recordings(request: Request, visit: Visit) -> Response:
    """The customer's recordings and voicemails, newest call first, a page at a time."""
    numbers = await _numbers(request, visit)
    try:
        f = call_filter.parse(request.query_params, today=visit.now.date())
    except call_filter.FilterError as bad:
        return page(request, visit, "recordings.html", status=400, rows=[], error=bad, filter=None, numbers=numbers,
                    params=request.query_params, next_query=None)
    if f.number is not None and f.number not in numbers:
        return not_found()
    rows = await storage.media(visit.conn, visit.customer_id, f, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return page(request, visit, "recordings.html", rows=rows, error=None, filter=f, numbers=numbers,
                params=request.query_params, next_query=f.query(after=rows[-1].cursor) if more else None)


async def my_recording(request: Request, visit: Visit) -> Response:
    """The file of one of the customer's recordings or voicemails: inline for the player (HTTP ranges),
    or as an attachment with ?download=1."""
    kind = request.path_params["kind"]
    if kind not in get_args(storage.MediaKind):
        return not_found()
    row = await storage.medium(visit.conn, visit.customer_id, kind, request.path_params["call_id"])
    if row is None:
        return not_found()
    download = request.query_params.get("download") == "1"
    email, address = visit.account.email, client_address(request)
    if row.purged_at is not None:
        problem = None
    else:
        problem = await asyncio.to_thread(verify, row.file, row.sha256)
    if row.purged_at is not None or problem is not None:
        if problem is not None:
            # The file is gone or changed since it was stored (or is on another node's disk): the operator's to see.
            log.error("console.media_unavailable", call_id=row.call_id, kind=kind, node=row.node, problem=problem)
        await storage.audit(visit.conn, "media_refused", at=visit.now, email=email, user_id=visit.account.user_id,
                            address=address, detail=f"{row.key}: {'purged' if problem is None else problem}")
        return page(request, visit, "media_gone.html", status=410, row=row, damaged=problem is not None)
    # One line per play (the player's first request; the rest are ranges of it) and per download.
    if download or request.headers.get("range", "bytes=0-").replace(" ", "") in ("bytes=0-", "bytes=0-1"):
        await storage.audit(visit.conn, "media_downloaded" if download else "media_played", at=visit.now,
                            email=email, user_id=visit.account.user_id, address=address, detail=row.key)
    name = f"{row.kind}-{row.did.lstrip('+')}-{row.started_at:%Y%m%d-%H%M%S}.wav"
    return FileResponse(row.file, media_type="audio/wav", filename=name,
                        content_disposition_type="attachment" if download else "inline")


async def greeting_form(request: Request, visit: Visit) -> Response:
    return await _greeting_page(request, visit, error=None, saved=request.query_params.get("saved"))


async def _greeting_page(request: Request, visit: Visit, *, error: str | None, saved: str | None = None,
                         status: int = 200) -> Response:
    current = await _cache(request).current(visit.conn)
    customer = current[1].customers.get(visit.customer_id) if current else None
    box = customer.voicemail if customer is not None else None
    greeting = box.greeting if box is not None else None
    return page(request, visit, "greeting.html", status=status, box=box, error=error, saved=saved,
                own=greeting if isinstance(greeting, voicemail.GreetingFile) else None,
                sound=greeting if isinstance(greeting, str) else None, field=FIELD,
                max_mib=greeting_check.MAX_UPLOAD_BYTES >> 20, max_seconds=greeting_check.MAX_SECONDS,
                accepted=greeting_check.ACCEPTED)


async def upload_greeting(request: Request, visit: Visit) -> Response:
    """Check, convert and keep the uploaded greeting, then a new configuration version that plays it;
    a bad upload is refused next to the field and saves nothing."""
    upload = visit.form.get(FIELD) if visit.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _greeting_page(request, visit, error="choose a file to upload", status=400)
    content = await upload.read(greeting_check.MAX_UPLOAD_BYTES + 1)
    try:
        greeting_check.check_size(len(content))
        kind = greeting_check.sniff(content[:12])
        converted = await greetings.convert(content, kind)
        version = await greetings.publish(visit.conn, customer_id=visit.customer_id, greeting=converted,
                                          greetings_dir=visit.settings.greetings_dir, author=visit.account.email)
    except greeting_check.GreetingRefused as refused:
        return await _greeting_page(request, visit, error=str(refused), status=400)
    except greetings.NoVoicemailBox:
        return await _greeting_page(request, visit, error="your account has no voicemail box yet: a greeting "
                                                          "needs one (staff set it up for you)", status=400)
    except ConfigError as exc:
        log.error("console.greeting_version_refused", customer_id=visit.customer_id, problems=exc.problems)
        return await _greeting_page(request, visit, error="the configuration would not accept this greeting: "
                                                          + "; ".join(exc.problems), status=400)
    await storage.audit(visit.conn, "greeting_uploaded", at=visit.now, email=visit.account.email,
                        user_id=visit.account.user_id, address=client_address(request),
                        detail=f"{version.name}: {upload.filename[:100]} ({converted.seconds} s)")
    return RedirectResponse(f"/greeting?saved={version.name}", status_code=303)
