"""Reading requests: bounded bodies, JSON into pydantic models, query strings, media types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from api.errors import ApiError, validation_error
from dispatcher import uploads
from dispatcher.uploads import UploadLimits, limited

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 64 * 1024
JSON_TYPES = ("application/json",)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (``charset=...``)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {max_bytes} bytes")


def _declared_over(request: Request, max_bytes: int | None) -> bool:
    declared = request.headers.get("content-length", "")
    return max_bytes is not None and declared.isdigit() and int(declared) > max_bytes


async def read_body(request: Request, max_bytes: int, max_s: float | None = None) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``max_bytes``, and with 408
    when it has not come whole ``max_s`` after now."""
    if _declared_over(request, max_bytes):
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in limited(request.stream(), UploadLimits(max_s=max_s)):
        body += chunk
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    return bytes(body)


def upload_body(request: Request, limits: UploadLimits) -> AsyncIterator[bytes]:
    """The body of a bulk upload as it streams in, within ``limits`` (bytes and time; rows
    are counted where they are staged): past one, :class:`UploadLimitError` (413 or 408)."""
    if limits.max_bytes is not None and _declared_over(request, limits.max_bytes):
        raise uploads.too_large(limits.max_bytes)
    return limited(request.stream(), limits)


async def parse_json(
    request: Request, model: type[M], max_bytes: int = MAX_JSON_BYTES, max_s: float | None = None
) -> M:
    """The body as ``model``: 415 unless JSON, 413 past ``max_bytes``, 408 when not received
    within ``max_s``, 400 for malformed JSON, 422 naming the first invalid field (all of them
    in ``details``)."""
    kind = media_type(request)
    if kind not in JSON_TYPES and not kind.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", "send Content-Type: application/json", {"got": kind}
        )
    body = await read_body(request, max_bytes, max_s)
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        # orjson refuses nesting past 1,024 levels itself; a recursive parser would raise
        # RecursionError instead: either way the client's body, not the server, is at fault.
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


MAX_JSON_DEPTH = 32
"""Nesting of any body or JSON line: the deepest the API takes (a carousel card's parameter's
object) is about ten. A deeper one is refused before pydantic, Postgres or a recursive walk
sees it: a thousand levels would overflow Python's stack."""


def reject_nul(value: Any, loc: list[str] | None = None) -> None:
    """422 for a NUL character in any string or key (Postgres stores none, text or jsonb, and
    would fail the write instead), or for nesting deeper than ``MAX_JSON_DEPTH``. Iterative:
    no input can exhaust the stack."""
    pending: list[tuple[Any, list[str]]] = [(value, loc or [])]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise nul_error(where)
            continue
        if not isinstance(item, dict | list):
            continue
        if len(where) >= MAX_JSON_DEPTH:
            raise too_deep(where)
        children: list[tuple[Any, list[str]]] = []
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise nul_error(where)
                children.append((child, [*where, key]))
        else:
            children.extend((child, [*where, str(index)]) for index, child in enumerate(item))
        pending.extend(reversed(children))  # in document order: the first fault is reported


def nul_error(loc: list[str]) -> ApiError:
    where = ".".join(loc) or "body"
    return ApiError(
        422,
        "validation_error",
        f"{where}: NUL characters are not allowed",
        [{"loc": loc, "msg": "NUL characters are not allowed", "type": "nul_character"}],
    )


def too_deep(loc: list[str], shown: int = 6) -> ApiError:
    """Where the nesting starts (its first ``shown`` levels: not a thousand of them)."""
    where = ".".join(loc[:shown]) + (".…" if len(loc) > shown else "")
    msg = f"nested more than {MAX_JSON_DEPTH} levels deep"
    return ApiError(
        422,
        "validation_error",
        f"{where or 'body'}: {msg}",
        [{"loc": loc[:shown], "msg": msg, "type": "too_deep"}],
    )
