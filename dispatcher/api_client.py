"""The CLI's client of the REST API: one GET with the bearer token, over HTTP or HTTPS."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from dispatcher.config import load_settings, require
from dispatcher.errors import ServiceError
from dispatcher.tls import client_verify
from dispatcher.urls import redact


def api_get(
    url: str,
    path: str,
    params: Mapping[str, str] | None = None,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """GET ``/api/whatsapp{path}`` with the bearer token; a failure is one ServiceError.
    An https URL's certificate is checked against ``ca_file`` (else DISPATCHER_CA_FILE, else
    the system's CAs)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings()
    token = os.environ.get("DISPATCHER_API_TOKEN") or require(settings, "api_token")
    verify = client_verify(ca_file or settings.ca_file)
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/api/whatsapp{path}",
            params=dict(params or {}),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            verify=verify,
        )
    except httpx.HTTPError as exc:
        raise ServiceError("api", f"{redact(url)}: {_failure(exc)}") from None
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.reason_phrase
        raise ServiceError("api", f"HTTP {response.status_code}: {message}")
    result: dict[str, Any] = response.json()
    return result


def _failure(exc: Exception) -> str:
    """The exception's type, and why a TLS handshake failed (an untrusted certificate)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{type(exc).__name__}: TLS: {cause.verify_message or cause.reason}"
        if isinstance(cause, ssl.SSLError):
            return f"{type(exc).__name__}: TLS: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__
