"""``/campaigns/{id}/variants``: an A/B campaign's variants with their counters, read rates
and intervals, and its winner once decided."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.campaigns import campaign_or_404
from api.errors import ApiError, json_response
from api.openapi import Operation
from api.state import app_state
from api.variant_schemas import VariantsOut


async def get_variants(request: Request) -> Response:
    state = app_state(request)
    campaign = await campaign_or_404(state, request.path_params["campaign_id"])
    report = await state.store.variants.report(campaign.id)
    if report is None:
        raise ApiError(404, "not_found", f"campaign {campaign.id} has no variants")
    shown = VariantsOut.model_validate(report, from_attributes=True)
    return json_response(shown.model_dump(mode="json"))


OPERATIONS = [
    Operation(
        "GET",
        "/campaigns/{campaign_id}/variants",
        get_variants,
        "An A/B campaign's variants: counters, read rate (read / sent) with its Wilson "
        "interval, and the automatic winner with the figures it was decided on",
        ("The variants", VariantsOut),
        errors=[404],
    ),
]
