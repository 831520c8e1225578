"""``/instances``: register WhatsApp numbers, list them, show one with its actor's live stats."""

from __future__ import annotations

import logging
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from api.bodies import parse_json, parse_query
from api.errors import ApiError, json_response
from api.openapi import Operation
from api.remote import STATS_TIMEOUT_S, call
from api.schemas import (
    InstanceDetail,
    InstanceIn,
    InstanceList,
    InstanceOut,
    InstancesQuery,
    PortfolioLimitOut,
)
from api.state import app_state
from dispatcher import operations
from dispatcher.errors import ServiceError
from dispatcher.store.models import Instance, Portfolio

log = logging.getLogger(__name__)


def portfolio_limit_json(portfolio: Portfolio) -> PortfolioLimitOut:
    return PortfolioLimitOut(
        business_id=portfolio.business_id,
        tier=portfolio.override_tier or portfolio.detected_tier,
        limit_source=portfolio.source,
        limit_error=portfolio.limit_error,
    )


def instance_json(instance: Instance) -> InstanceOut:
    return InstanceOut.model_validate(instance, from_attributes=True)


async def register_instance(request: Request) -> Response:
    state = app_state(request)
    given = await parse_json(request, InstanceIn)
    instance = await operations.register_instance(
        state.store,
        phone_number_id=given.phone_number_id,
        access_token=given.access_token,
        business_id=given.business_id,
        name=given.name,
        messaging_tier=given.tier(),
        throughput_mps=given.throughput_mps,
        waba_id=given.waba_id,
        max_instances=state.settings.max_instances,
    )
    # The actor picks up the new token and limits (and detects what was not given).
    await call(state.coordinator.refresh_instance, str(instance.id))
    log.info("instance %s (%s) registered", instance.id, instance.phone_number_id)
    return json_response(instance_json(instance).model_dump(mode="json"), status=201)


async def list_instances(request: Request) -> Response:
    query = parse_query(request, InstancesQuery)
    found = await app_state(request).store.instances.all(
        business_id=query.business_id, status=query.status
    )
    page = InstanceList(items=[instance_json(instance) for instance in found])
    return json_response(page.model_dump(mode="json"))


async def get_instance(request: Request) -> Response:
    state = app_state(request)
    instance_id: UUID = request.path_params["instance_id"]
    instance = await state.store.instances.get(instance_id)
    if instance is None:
        raise ApiError(404, "not_found", f"instance {instance_id} not found")
    try:
        stats = await call(
            state.coordinator.instance_stats, str(instance_id), timeout_s=STATS_TIMEOUT_S
        )
    except ServiceError as exc:
        log.warning("no live stats for instance %s: %s", instance_id, exc)
        stats = None
    portfolio = await state.store.portfolios.get(instance.business_id)
    detail = InstanceDetail(
        **instance_json(instance).model_dump(),
        stats=operations.json_safe(stats) if stats else None,
        portfolio=None if portfolio is None else portfolio_limit_json(portfolio),
    )
    return json_response(detail.model_dump(mode="json"))


OPERATIONS = [
    Operation(
        "POST",
        "/instances",
        register_instance,
        "Register (or re-register) a number; its actor restarts with the new token. A new "
        "number past DISPATCHER_MAX_INSTANCES is refused (409)",
        ("The instance", InstanceOut),
        status=201,
        body=InstanceIn,
        errors=[409, 503],
    ),
    Operation(
        "GET",
        "/instances",
        list_instances,
        "Every instance, optionally of one portfolio or status",
        ("The instances", InstanceList),
        query=InstancesQuery,
        errors=[422],
    ),
    Operation(
        "GET",
        "/instances/{instance_id}",
        get_instance,
        "One instance with its actor's live stats",
        ("The instance", InstanceDetail),
        errors=[404],
    ),
]
