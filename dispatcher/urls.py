"""URLs as they may be shown: never with a password, a token or a secret in them."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

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


def without_password(url: str) -> str:
    """The URL with no password at all (user info and ``password=`` query): still usable
    where the credentials come from elsewhere (``PGPASSWORD``, ``.pgpass``, trust auth)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return ""
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in pairs):
        parts = parts._replace(query=urlencode([(k, v) for k, v in pairs if k != "password"]))
    return urlunsplit(parts)


def database_label(url: str) -> str:
    """A name for the database ``url`` points at, fit for a metric label: ``host[:port]/name``
    (``local/name`` over a Unix socket), never its user, password or query string."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "unknown"
    database = parts.path.lstrip("/") or parts.username or "postgres"
    where = "local" if not host else host if port is None else f"{host}:{port}"
    return f"{where}/{database}"
