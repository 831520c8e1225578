"""Meta's webhook: the verification handshake, and signed status callbacks.

A POST is verified against the raw body, appended to the durable webhooks stream and answered
at once; the coordinator applies the statuses in bulk. Meta retries what is not answered 200.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api.errors import error_response, json_response
from api.state import app_state
from dispatcher.meta.signature import verify

MAX_BODY_BYTES = 4 * 2**20


async def verify_subscription(request: Request) -> Response:
    """``GET``: echo ``hub.challenge`` when ``hub.verify_token`` is ours."""
    state = app_state(request)
    params = request.query_params
    expected = state.settings.verify_token.get_secret_value()
    given = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or "hub.challenge" not in params:
        return error_response(400, "bad_request", "expected hub.mode=subscribe and hub.challenge")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return error_response(403, "forbidden", "verify token does not match")
    return PlainTextResponse(params["hub.challenge"])


async def receive(request: Request) -> Response:
    """``POST``: check ``X-Hub-Signature-256`` against the raw body, then queue durably."""
    state = app_state(request)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return error_response(
            413, "too_large", f"webhook bodies are at most {MAX_BODY_BYTES} bytes"
        )
    secret = state.settings.app_secret.get_secret_value()
    if not verify(secret, body, request.headers.get("x-hub-signature-256")):
        return error_response(401, "bad_signature", "missing or invalid X-Hub-Signature-256")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_response(400, "bad_request", "the body is not JSON")
    if not isinstance(payload, dict):
        return error_response(400, "bad_request", "the body is not a JSON object")
    job_id = await state.queues.webhooks.push(payload)
    return json_response({"received": True, "id": job_id})


routes = [
    Route("/api/whatsapp/webhook", verify_subscription, methods=["GET"]),
    Route("/api/whatsapp/webhook", receive, methods=["POST"]),
]
