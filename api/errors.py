"""Errors as JSON: ``{"error": {"code", "message", "details"}}`` with a 4xx status."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, default=str), status_code=status, media_type="application/json"
    )
