"""URLs as they may be shown: never with a password, a token or a secret in them."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
SECRET_PARAM = re.compile(r"password|passwd|pwd|token|secret|api_?key", re.IGNORECASE)
"""Query parameters whose value is a credential: ``password=`` (asyncpg DSNs),
``access_token=`` (Graph API), ``hub.verify_token=`` (Meta's webhook handshake), ``*secret*``."""


def redact(url: str) -> str:
    """The URL without its password nor any credential in its query string, fit for a log
    line, an error message or a terminal."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{netloc}")
    return urlunsplit(parts._replace(query=redact_query(parts.query)))


def redact_query(query: str) -> str:
    """A query string with the value of every credential parameter masked; the rest kept
    as it was (order, encoding, repeated names)."""
    if not query:
        return query
    fields = []
    for field in query.split("&"):
        name, sep, value = field.partition("=")
        if sep and value and SECRET_PARAM.search(unquote_plus(name)):
            value = MASK
        fields.append(f"{name}{sep}{value}")
    return "&".join(fields)
