"""Reading requests: bounded bodies, JSON into pydantic models, query strings, media types."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from api.errors import ApiError, validation_error

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 64 * 1024
JSON_TYPES = ("application/json",)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (``charset=...``)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {max_bytes} bytes")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    return bytes(body)


async def parse_json(request: Request, model: type[M], max_bytes: int = MAX_JSON_BYTES) -> M:
    """The body as ``model``: 415 unless JSON, 413 past ``max_bytes``, 400 for malformed
    JSON, 422 naming the first invalid field (all of them in ``details``)."""
    kind = media_type(request)
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", "send Content-Type: application/json", {"got": kind}
        )
    body = await read_body(request, max_bytes)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    reject_nul(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def parse_query(request: Request, model: type[M]) -> M:
    """The query string as ``model`` (one value per name: the last wins); 422 when invalid."""
    params = dict(request.query_params)
    reject_nul(params, ["query"])
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise validation_error(exc, "query ") from None


def reject_nul(value: Any, loc: list[str] | None = None) -> None:
    """422 for a NUL character in any string or key: Postgres stores none (text or jsonb),
    and would fail the write instead."""
    loc = loc or []
    if isinstance(value, str):
        if "\x00" in value:
            raise nul_error(loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise nul_error(loc)
            reject_nul(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul(item, [*loc, str(index)])


def nul_error(loc: list[str]) -> ApiError:
    where = ".".join(loc) or "body"
    return ApiError(
        422,
        "validation_error",
        f"{where}: NUL characters are not allowed",
        [{"loc": loc, "msg": "NUL characters are not allowed", "type": "nul_character"}],
    )
