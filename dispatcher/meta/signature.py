"""``X-Hub-Signature-256``: HMAC-SHA256 of the raw webhook body with the app secret."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta sends with ``body``."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify(app_secret: str, body: bytes, header: str | None) -> bool:
    """True only for a well-formed header whose HMAC matches ``body`` (constant time)."""
    if not app_secret or not header or not header.startswith(PREFIX):
        return False
    # Bytes, not str: compare_digest refuses non-ASCII text, and a header is anyone's input.
    return hmac.compare_digest(sign(app_secret, body).encode(), header.encode("utf-8", "replace"))
