"""Meta's webhook: the verification handshake, and signed status callbacks.

A POST is verified against the raw body, appended to the durable webhooks stream and answered
at once; the coordinator applies the statuses in bulk. Every correctly signed payload gets
200, whatever its field or shape: Meta retries anything else for 7 days and then disables
the endpoint (Meta, "Webhooks": https://developers.facebook.com/docs/graph-api/webhooks/getting-started).
A signed body that is not Meta's shape is kept in the webhooks dead-letter stream instead.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.bodies import read_body
from api.errors import error_response, json_response
from api.openapi import Operation
from api.schemas import WebhookQuery
from api.state import app_state
from dispatcher.meta.signature import PREFIX, verify
from dispatcher.queue.intake import Overloaded

MAX_BODY_BYTES = 4 * 2**20
SIGNATURE_HEADER = "X-Hub-Signature-256"


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
    secret = state.settings.app_secret.get_secret_value()
    signature = request.headers.get(SIGNATURE_HEADER)
    # Refused before the body is read: an unsigned request (or any request, when no app
    # secret is configured) must not make us buffer up to MAX_BODY_BYTES first.
    if not secret:
        return error_response(
            401, "webhook_not_configured", "no app secret is configured (WHATSAPP_APP_SECRET)"
        )
    if not signature or not signature.startswith(PREFIX):
        return error_response(401, "bad_signature", f"missing or malformed {SIGNATURE_HEADER}")
    body = await read_body(request, MAX_BODY_BYTES)
    if not verify(secret, body, signature):
        return error_response(401, "bad_signature", f"invalid {SIGNATURE_HEADER}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        reason = "signed, but not a WhatsApp webhook payload (a JSON object with an entry list)"
        dlq_id = await state.queues.webhooks.keep_unreadable(body, reason)
        return json_response({"received": True, "kept": dlq_id})
    try:
        job_id = await state.intake.push(body)  # checked JSON: stored as it came
    except Overloaded as exc:
        return error_response(
            503, "overloaded", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        )
    return json_response({"received": True, "id": job_id})


OPERATIONS = [
    Operation(
        "GET",
        "/webhook",
        verify_subscription,
        "Meta's verification handshake: echoes hub.challenge when hub.verify_token matches",
        ("The challenge", None),
        query=WebhookQuery,
        errors=[400, 403],
        public=True,
        ok_media="text/plain",
    ),
    Operation(
        "POST",
        "/webhook",
        receive,
        "Meta's signed status callbacks, queued durably and applied in bulk",
        ("Queued", None),
        raw_body={"application/json": {"type": "object"}},
        headers={SIGNATURE_HEADER: "sha256=HMAC-SHA256(app secret, raw body)"},
        errors=[401, 413, 503],
        public=True,
    ),
]
