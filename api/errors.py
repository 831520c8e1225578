"""Errors as JSON: ``{"error": {"code", "message", "details"}}``, whatever raised them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from ray.exceptions import RayError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dispatcher.errors import (
    ConfigError,
    DispatcherError,
    InstanceLimitError,
    InvalidRecipientError,
    QueueError,
    ServiceError,
    StoreError,
    UploadLimitError,
)
from dispatcher.operations import NotFoundError
from dispatcher.outages import OUTAGE_TYPES, is_outage
from dispatcher.uploads import UploadLimit

log = logging.getLogger(__name__)

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


class ApiError(Exception):
    """An answer other than success, raised anywhere in a handler."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Response(
        orjson.dumps(body, default=str, option=_JSON_OPTIONS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def json_response(payload: Any, status: int = 200) -> Response:
    """JSON with non-string keys allowed (stats have int keys) and NaN / Infinity as null."""
    return Response(
        orjson.dumps(payload, default=str, option=_JSON_OPTIONS),
        status_code=status,
        media_type="application/json",
    )


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Where and what, never the input itself (it may hold an access token)."""
    return [
        {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    details = validation_details(exc)
    first = details[0] if details else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"])
    message = f"{prefix}{where}: {first['msg']}" if where else f"{prefix}{first['msg']}"
    return ApiError(422, "validation_error", message, details)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


OUTAGE_RETRY_AFTER_S = 5


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):
        raise exc
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise exc
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _dispatcher_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFoundError):
        return error_response(404, "not_found", str(exc), {"kind": exc.kind, "id": str(exc.key)})
    if isinstance(exc, UploadLimitError):
        return upload_refused(exc)
    if isinstance(exc, InstanceLimitError):
        return error_response(
            409,
            "instance_limit",
            f"{exc.maximum} numbers are registered, the most allowed: remove one or raise "
            "DISPATCHER_MAX_INSTANCES",
            {"setting": "DISPATCHER_MAX_INSTANCES", "maximum": exc.maximum},
        )
    if isinstance(exc, InvalidRecipientError):
        return error_response(422, "invalid_recipient", str(exc), {"index": exc.index})
    if isinstance(exc, StoreError):
        return error_response(409, "conflict", str(exc))
    if isinstance(exc, QueueError):
        return error_response(400, "bad_request", str(exc))
    if isinstance(exc, ServiceError):
        return error_response(503, "unavailable", str(exc), {"service": exc.service})
    if isinstance(exc, ConfigError):
        log.error("configuration error in a request: %s", exc)
        return error_response(500, "internal_error", "the server is misconfigured")
    return error_response(400, "bad_request", str(exc))


def upload_refused(exc: UploadLimitError) -> Response:
    """413 past a size limit: the server reads and drops the rest of the body, so the client
    (still sending) gets this answer. 408 past the time limit, and the connection is closed:
    a client that stalled is not waited for any longer."""
    timed_out = exc.limit == UploadLimit.SECONDS
    setting = f"DISPATCHER_{exc.limit.upper()}"
    return error_response(
        408 if timed_out else 413,
        "upload_timeout" if timed_out else "upload_too_large",
        f"{exc.problem} ({setting}): nothing of it was recorded",
        {"limit": exc.limit, "setting": setting, "maximum": exc.maximum},
        headers={"Connection": "close"} if timed_out else None,
    )


async def _outage(request: Request, exc: Exception) -> Response:
    """Postgres or Redis is away (restarting, unreachable): a 503 the client may retry (Meta
    retries a webhook), never a 500 with a traceback per request."""
    path, name = request.url.path, type(exc).__name__
    log.warning("%s %s: a backing service is away (%s)", request.method, path, name)
    return error_response(
        503,
        "unavailable",
        "a backing service is unavailable; retry shortly",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    if is_outage(exc):  # one by SQLSTATE only: not caught by type below
        return await _outage(request, exc)
    # Starlette's ServerErrorMiddleware re-raises after this answer: the server logs the
    # traceback; the client learns nothing of the internals.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error")


async def _ray_error(request: Request, exc: Exception) -> Response:
    log.warning("coordinator call failed: %s", type(exc).__name__)
    return error_response(503, "unavailable", "the coordinator is not reachable")


def exception_handlers() -> dict[Any, Any]:
    return {
        ApiError: _api_error,
        HTTPException: _http_error,
        DispatcherError: _dispatcher_error,
        RayError: _ray_error,
        **dict.fromkeys(OUTAGE_TYPES, _outage),
        Exception: _unexpected,
    }
