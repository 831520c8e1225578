"""The CLI's client of the REST API: bearer token, HTTP or HTTPS, one-line failures.

Every failure (the API unreachable, an untrusted certificate, a 4xx or 5xx answer) is one
:class:`ServiceError` whose message is the API's own error message: the CLI prints it as is.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from dispatcher.config import load_settings, require
from dispatcher.errors import ConfigError, ServiceError
from dispatcher.tls import client_verify
from dispatcher.urls import redact

PREFIX = "/api/whatsapp"
DEFAULT_API_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 10.0
UPLOAD_READ_TIMEOUT_S = 600.0
"""An upload's answer comes once the server has ingested every row: a large file takes a while."""


def default_api_url() -> str:
    return os.environ.get("DISPATCHER_API_URL") or DEFAULT_API_URL


class ApiClient:
    """One connection pool to ``/api/whatsapp`` with the token of DISPATCHER_API_TOKEN.
    An https URL's certificate is checked against ``ca_file`` (else DISPATCHER_CA_FILE,
    else the system's CAs)."""

    def __init__(self, url: str, ca_file: Path | None = None) -> None:
        # httpx logs every request at info level: the CLI's output is its own.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        settings = load_settings()
        token = os.environ.get("DISPATCHER_API_TOKEN") or require(settings, "api_token")
        self.url = url.rstrip("/")
        try:
            self._client = httpx.Client(
                base_url=self.url + PREFIX,
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT_S,
                verify=client_verify(ca_file or settings.ca_file),
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ConfigError("--api-url", f"invalid URL {redact(self.url)}: {exc}") from None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._request("GET", path, params=dict(params or {}))

    def post(self, path: str, body: Any | None = None) -> dict[str, Any]:
        return self._request("POST", path, json=body)

    def delete(self, path: str, body: Any | None = None) -> dict[str, Any]:
        return self._request("DELETE", path, json=body)

    def upload(self, path: str, chunks: Iterable[bytes], content_type: str) -> dict[str, Any]:
        """POST a body streamed from ``chunks`` (nothing held whole)."""
        return self._request(
            "POST",
            path,
            content=chunks,
            headers={"Content-Type": content_type},
            timeout=httpx.Timeout(TIMEOUT_S, read=UPLOAD_READ_TIMEOUT_S),
        )

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a keyset-paginated listing (``items``, ``next_after``)."""
        after = 0
        while True:
            page = self.get(path, {**params, "after": after})
            yield from page["items"]
            if page.get("next_after") is None:
                return
            after = page["next_after"]

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError("api", f"{redact(self.url)}: {_failure(exc)}") from None
        if not 200 <= response.status_code < 300:
            raise ServiceError("api", f"HTTP {response.status_code}: {_message(response)}")
        try:
            result = response.json()
        except ValueError:  # a proxy's page, not the API
            raise ServiceError(
                "api", f"{redact(self.url)} answered something else than JSON"
            ) from None
        if not isinstance(result, dict):
            raise ServiceError("api", f"{redact(self.url)} answered an unexpected body")
        return result


def api_get(
    url: str,
    path: str,
    params: Mapping[str, str] | None = None,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """One GET of ``/api/whatsapp{path}``."""
    with ApiClient(url, ca_file) as client:
        return client.get(path, params)


def _message(response: httpx.Response) -> str:
    """The API's error message (with the line of a refused upload), else the reason."""
    try:
        error = response.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
    return message


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
