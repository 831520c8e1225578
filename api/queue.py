"""``/queue/stats``: queue depths with live instance and portfolio stats; operator actions."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from api.bodies import parse_json, parse_query
from api.errors import ApiError, json_response
from api.openapi import Operation
from api.remote import STATS_TIMEOUT_S, call
from api.schemas import QueueActionIn, QueueActionOut, QueueStatsOut, QueueStatsQuery
from api.state import app_state
from dispatcher import operations

log = logging.getLogger(__name__)


async def queue_stats(request: Request) -> Response:
    state = app_state(request)
    query = parse_query(request, QueueStatsQuery)
    instance_id = None if query.instanceId is None else str(query.instanceId)
    if query.instanceId is not None and await state.store.instances.get(query.instanceId) is None:
        raise ApiError(404, "not_found", f"instance {instance_id} not found")
    raw = await call(state.coordinator.stats, instance_id, timeout_s=STATS_TIMEOUT_S)
    return json_response(operations.queue_stats_view(raw, instance_id))


async def queue_action(request: Request) -> Response:
    state = app_state(request)
    try:
        given = await parse_json(request, QueueActionIn)
    except ApiError as exc:
        raise _unknown_choice(exc) from None
    if given.action == "clear" and given.jobId is not None:
        # clear empties the whole queue; a jobId suggests the caller meant something smaller.
        raise ApiError(400, "bad_request", "clear takes no jobId: it empties the whole queue")
    result = await call(state.coordinator.queue_action, given.action, given.queue, given.jobId)
    log.info("queue %s: %s done (%s)", given.queue, given.action, result)
    body = QueueActionOut(action=given.action, queue=given.queue, result=result)
    return json_response(body.model_dump(mode="json"))


def _unknown_choice(exc: ApiError) -> ApiError:
    """An action or queue that does not exist is a 400 (the contract's), not a 422."""
    for detail in exc.details if isinstance(exc.details, list) else []:
        field = detail["loc"][0] if detail["loc"] else None
        if field in ("action", "queue") and detail["type"] == "literal_error":
            return ApiError(400, f"unknown_{field}", exc.message, exc.details)
    return exc


OPERATIONS = [
    Operation(
        "GET",
        "/queue/stats",
        queue_stats,
        "Queue depths (pending, processing, DLQ), per-instance limiter, breaker and rates, "
        "portfolios' messaging limits",
        ("The stats", QueueStatsOut),
        query=QueueStatsQuery,
        errors=[404, 422, 503],
    ),
    Operation(
        "POST",
        "/queue/stats",
        queue_action,
        "retry_dlq (all, or one jobId), clear, or recover_stuck on the campaigns or webhooks queue",
        ("What the action did", QueueActionOut),
        body=QueueActionIn,
        errors=[400, 503],
    ),
]
