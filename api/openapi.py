"""The OpenAPI document, built from the same pydantic models the handlers validate with.

Each API module lists its :class:`Operation` s; the routes and ``/openapi.json`` both come
from those lists, so a path, a body or a query parameter cannot be in one and not the other.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import json_response
from api.schemas import ErrorOut

PREFIX = "/api/whatsapp"
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{(\w+)\}")

Endpoint = Callable[[Request], Awaitable[Response]]
Reply = tuple[str, type[BaseModel] | None]

ERRORS: dict[int, str] = {
    400: "Malformed request (bad JSON, unknown queue action)",
    401: "Missing or invalid bearer token (or webhook signature)",
    403: "Webhook verify token does not match",
    404: "No such resource",
    408: "The body did not arrive within DISPATCHER_MAX_UPLOAD_S (nothing was recorded)",
    409: "Not allowed in the resource's current status (or past a cap on its kind)",
    413: "Body too large, or past an upload limit (details name it; nothing was recorded)",
    415: "Unsupported Content-Type",
    422: "Invalid field (details name each one)",
    503: "A backing service (Postgres, Redis, the coordinator) is unavailable",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: its handler and everything the document says about it."""

    method: Literal["GET", "POST", "DELETE"]
    path: str
    """Under :data:`PREFIX` unless ``root``; ``{name}`` parameters are UUIDs."""
    endpoint: Endpoint
    summary: str
    ok: Reply
    status: int = 200
    body: type[BaseModel] | None = None
    raw_body: Mapping[str, Any] | None = None
    """Media type -> schema, for bodies that are not one JSON object (bulk uploads)."""
    query: type[BaseModel] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    errors: Sequence[int] = ()
    public: bool = False
    root: bool = False
    ok_media: str = "application/json"

    @property
    def full_path(self) -> str:
        return self.path if self.root else PREFIX + self.path


def operation_routes(operations: Sequence[Operation]) -> list[Route]:
    """One route per path, so that a wrong method is a 405 that lists every allowed one."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for op in operations:
        by_path.setdefault(op.full_path, {})[op.method] = op.endpoint
    # Only UUIDs match a {name}: anything else is a 404, never a handler's 500.
    return [
        Route(_PATH_PARAM.sub(r"{\1:uuid}", path), _by_method(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]


def _by_method(handlers: Mapping[str, Endpoint]) -> Endpoint:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


def document(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {}

    def ref(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.endpoint.__name__,
            "summary": op.summary,
            "parameters": _parameters(op, components),
            "responses": {},
        }
        if op.public:
            item["security"] = []
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        elif op.raw_body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {media: {"schema": schema} for media, schema in op.raw_body.items()},
            }
        description, model = op.ok
        ok: dict[str, Any] = {"description": description}
        if model is not None:
            ok["content"] = {op.ok_media: {"schema": ref(model, "serialization")}}
        elif op.ok_media != "application/json":
            ok["content"] = {op.ok_media: {"schema": {"type": "string"}}}
        item["responses"][str(op.status)] = ok
        errors = set(op.errors) | (set() if op.public else {401})
        if op.body is not None:
            errors |= {400, 413, 415, 422}
        error_ref = ref(ErrorOut, "serialization")
        for code in sorted(errors):
            item["responses"][str(code)] = {
                "description": ERRORS[code],
                "content": {"application/json": {"schema": error_ref}},
            }
        paths.setdefault(op.full_path, {})[op.method.lower()] = item

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _parameters(op: Operation, components: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF, mode="validation")
        components.update(schema.pop("$defs", {}))
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    for name, description in op.headers.items():
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": {"type": "string"},
            }
        )
    return parameters


def openapi_route(operations: Sequence[Operation], *, title: str, version: str) -> Route:
    """``GET /openapi.json`` (public): built once, on first request."""
    cache: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        if not cache:
            cache.update(document(operations, title=title, version=version))
        return json_response(cache)

    return Route("/openapi.json", openapi, methods=["GET"])
