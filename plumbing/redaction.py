"""Passwords out of what is printed or logged: one rule for every URL fairline shows."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit


def redact(url: str) -> str:
    """The URL safe to print or log: its password, in the user part or as ?password=, replaced by ***."""
    parts = urlsplit(url)
    if not parts.netloc and "@" in url:
        # Not scheme://user:password@host/...: no telling which part is the password, so show none of it.
        return "(a URL not of the form postgresql://user:password@host/database)"
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = parts.query
    if "password" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*/")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide; rebuilding could change the spelling (postgresql:///db)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")


def scrub(text: str, url: str) -> str:
    """`text` with any password of `url` replaced by ***, in case an error message quotes it."""
    parts = urlsplit(url)
    secrets = [parts.password, unquote(parts.password or "")]
    secrets += [v for k, v in parse_qsl(parts.query) if k == "password"]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
