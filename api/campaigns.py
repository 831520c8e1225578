"""``/campaigns``: create (recipients inline), show, and drive the lifecycle."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from api.bodies import parse_json, parse_query
from api.errors import ApiError, json_response
from api.message_limits import check_campaign
from api.openapi import Endpoint, Operation
from api.remote import call
from api.schemas import CampaignIn, CampaignOut, CampaignPage, CampaignsQuery
from api.state import AppState, app_state
from api.variant_schemas import ab_test
from dispatcher import operations
from dispatcher.engine.windows import Waiting, waiting
from dispatcher.operations import Action
from dispatcher.store import Store
from dispatcher.store.models import Campaign

log = logging.getLogger(__name__)

MAX_CAMPAIGN_BYTES = 8 * 2**20
"""10,000 inline recipients with their variables fit well within this."""


def campaign_out(campaign: Campaign, wait: Waiting | None = None) -> CampaignOut:
    out = CampaignOut.model_validate(campaign, from_attributes=True)
    if wait is None or not wait.count:
        return out
    return out.model_copy(update={"waiting": wait.count, "next_window_at": wait.until})


async def campaigns_out(store: Store, campaigns: list[Campaign]) -> list[CampaignOut]:
    """With what of each waits for its send window (one query for them all)."""
    held = await store.windows.waiting([c.id for c in campaigns if c.pending])
    now = datetime.now(UTC)
    return [campaign_out(c, waiting(c, held.get(c.id), now)) for c in campaigns]


async def campaign_json(store: Store, campaign: Campaign) -> Response:
    (out,) = await campaigns_out(store, [campaign])
    return json_response(out.model_dump(mode="json"))


async def campaign_or_404(state: AppState, campaign_id: UUID) -> Campaign:
    campaign = await state.store.campaigns.get(campaign_id)
    if campaign is None:
        raise ApiError(404, "not_found", f"campaign {campaign_id} not found")
    return campaign


async def create_campaign(request: Request) -> Response:
    state = app_state(request)
    limits = state.upload_limits
    given = await parse_json(
        request,
        CampaignIn,
        max_bytes=min(MAX_CAMPAIGN_BYTES, state.settings.max_upload_bytes),
        max_s=limits.max_s,
    )
    missing = [
        str(instance_id)
        for instance_id in given.instance_ids
        if await state.store.instances.get(instance_id) is None
    ]
    if missing:
        raise ApiError(
            422,
            "unknown_instance",
            f"instance_ids: no instance {missing[0]}",
            {"instance_ids": missing},
        )
    ab = None
    if given.variants is not None:
        ab = ab_test(given.variants, given.confidence, given.auto_winner)
        for index, variant in enumerate(ab.variants):
            check_campaign(variant.template, given.recipients, at=("variants", str(index)))
        template = ab.variants[0].template
    elif given.template is not None:  # the schema requires one of them
        template = given.template.stored()
        check_campaign(template, given.recipients)
    else:
        raise ApiError(422, "validation_error", "template: give template or variants")
    campaign = await operations.create_campaign(
        state.store,
        name=given.name,
        template=template,
        instance_ids=given.instance_ids,
        recipients=(recipient.new() for recipient in given.recipients),
        scheduled_at=given.scheduled_at,
        limits=limits,
        send_window=None if given.send_window is None else given.send_window.stored(),
        expires_at=given.expires_at,
        max_per_minute=given.max_per_minute,
        retry_policy=None
        if given.retry_policy is None
        else given.retry_policy.model_dump(mode="json"),
        ab_test=ab,
    )
    log.info(
        "campaign %s (%s) created with %d recipients, %d of them duplicates, %d invalid",
        campaign.id,
        campaign.name,
        campaign.total_recipients,
        campaign.total_duplicates,
        campaign.total_invalid,
    )
    response = await campaign_json(state.store, campaign)
    response.status_code = 201
    return response


async def list_campaigns(request: Request) -> Response:
    query = parse_query(request, CampaignsQuery)
    store = app_state(request).store
    found = await store.campaigns.newest(
        statuses=query.statuses, after=query.after, limit=query.limit
    )
    page = CampaignPage(
        items=await campaigns_out(store, found),
        next_after=found[-1].id if len(found) == query.limit else None,
    )
    return json_response(page.model_dump(mode="json"))


async def get_campaign(request: Request) -> Response:
    state = app_state(request)
    return await campaign_json(
        state.store, await campaign_or_404(state, request.path_params["campaign_id"])
    )


_METHODS = {
    Action.SEND: "start_campaign",
    Action.PAUSE: "pause_campaign",
    Action.RESUME: "resume_campaign",
    Action.CANCEL: "cancel_campaign",
}


async def _act(request: Request, action: Action) -> Response:
    """Apply ``action`` through the coordinator; 409 (with the status) when not allowed now."""
    state = app_state(request)
    campaign_id: UUID = request.path_params["campaign_id"]
    campaign = await campaign_or_404(state, campaign_id)
    allowed = operations.allowed_from(action)
    moved = campaign.status in allowed and await call(
        getattr(state.coordinator, _METHODS[action]), str(campaign_id)
    )
    if not moved:
        # The coordinator's transition is atomic: re-read what it refused from.
        current = await campaign_or_404(state, campaign_id)
        raise ApiError(
            409,
            "invalid_transition",
            f"cannot {action.value} a {current.status.value} campaign",
            {"status": current.status.value, "allowed_from": sorted(s.value for s in allowed)},
        )
    log.info("campaign %s: %s", campaign_id, action.value)
    return await campaign_json(state.store, await campaign_or_404(state, campaign_id))


async def send_campaign(request: Request) -> Response:
    return await _act(request, Action.SEND)


async def pause_campaign(request: Request) -> Response:
    return await _act(request, Action.PAUSE)


async def resume_campaign(request: Request) -> Response:
    return await _act(request, Action.RESUME)


async def cancel_campaign(request: Request) -> Response:
    return await _act(request, Action.CANCEL)


def _lifecycle(action: Action, endpoint: Endpoint, summary: str) -> Operation:
    return Operation(
        "POST",
        f"/campaigns/{{campaign_id}}/{action.value}",
        endpoint,
        summary,
        ("The campaign after the transition", CampaignOut),
        errors=[404, 409, 503],
    )


OPERATIONS = [
    Operation(
        "POST",
        "/campaigns",
        create_campaign,
        "Create a draft campaign (scheduled when scheduled_at is given) with inline recipients",
        ("The campaign", CampaignOut),
        status=201,
        body=CampaignIn,
        errors=[408],
    ),
    Operation(
        "GET",
        "/campaigns",
        list_campaigns,
        "Campaigns with their counters, newest first, optionally of one status (keyset: pass "
        "next_after as after)",
        ("A page", CampaignPage),
        query=CampaignsQuery,
        errors=[422],
    ),
    Operation(
        "GET",
        "/campaigns/{campaign_id}",
        get_campaign,
        "A campaign's status and counters",
        ("The campaign", CampaignOut),
        errors=[404],
    ),
    _lifecycle(Action.SEND, send_campaign, "Start a draft or scheduled campaign now"),
    _lifecycle(Action.PAUSE, pause_campaign, "Pause a running or scheduled campaign"),
    _lifecycle(Action.RESUME, resume_campaign, "Resume a paused campaign"),
    _lifecycle(Action.CANCEL, cancel_campaign, "Cancel a campaign that has not finished"),
]
