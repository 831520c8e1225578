"""``/campaigns/{id}/recipients``: bulk append (JSON lines or CSV, streamed) and pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from uuid import UUID

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.bodies import media_type, parse_query, reject_nul, upload_body
from api.campaigns import campaign_or_404
from api.errors import ApiError, json_response, validation_details
from api.message_limits import message_problem
from api.openapi import Operation
from api.schemas import Appended, RecipientIn, RecipientOut, RecipientPage, RecipientsQuery
from api.state import app_state
from dispatcher.ab.settings import AbTest
from dispatcher.engine.batch import template_from_json
from dispatcher.errors import CampaignFinishedError
from dispatcher.meta.messages import Template
from dispatcher.recipient_files import (
    MEDIA_TYPES,
    RecipientFormat,
    RecipientLineError,
    records,
)
from dispatcher.store.campaigns import FINAL
from dispatcher.store.models import Campaign, NewRecipient

log = logging.getLogger(__name__)


def _templates(campaign: Campaign) -> list[tuple[str, Template]]:
    """Every template a recipient of the campaign may be sent, with where it is named in an
    error: each variant's (a row may be sent its own, or the winner's), or the campaign's."""
    if campaign.ab_test is None:
        return [("", template_from_json(campaign.template))]
    return [
        (f"variants.{index}.", template_from_json(variant.template))
        for index, variant in enumerate(AbTest.from_json(campaign.ab_test).variants)
    ]


async def _recipients(
    body: AsyncIterator[bytes], fmt: RecipientFormat, templates: list[tuple[str, Template]]
) -> AsyncIterator[NewRecipient]:
    """Validated recipients as the body streams in; a bad line stops the whole ingest, and
    so does one whose message would break Meta's limits with any of ``templates``."""
    async for line, record in records(body, fmt):
        try:
            reject_nul(record)
        except ApiError as exc:
            raise RecipientLineError(line, exc.message) from None
        try:
            recipient = RecipientIn.model_validate(record)
        except ValidationError as exc:
            details = validation_details(exc)
            where = ".".join(details[0]["loc"]) if details else ""
            raise RecipientLineError(
                line, f"{where}: {details[0]['msg']}" if where else details[0]["msg"]
            ) from None
        for where, template in templates:
            problem = message_problem(template, recipient.variables)
            if problem is not None:
                raise RecipientLineError(line, f"{where}variables: {problem}")
        yield recipient.new()


async def append_recipients(request: Request) -> Response:
    state = app_state(request)
    campaign_id: UUID = request.path_params["campaign_id"]
    kind = media_type(request)
    fmt = MEDIA_TYPES.get(kind)
    if fmt is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send recipients as application/x-ndjson (JSON lines) or text/csv",
            {"got": kind, "accepted": sorted(MEDIA_TYPES)},
        )
    campaign = await campaign_or_404(state, campaign_id)
    if campaign.status in FINAL:
        raise _finished(campaign.status.value)
    limits = state.upload_limits
    body = upload_body(request, limits)
    try:
        added = await state.store.recipients.ingest(
            campaign_id, _recipients(body, fmt, _templates(campaign)), limits
        )
    except RecipientLineError as exc:
        raise ApiError(
            422, "invalid_line", str(exc), {"line": exc.line, "problem": exc.problem}
        ) from None
    except CampaignFinishedError as exc:
        # It finished while the upload streamed in: nothing of it was recorded.
        raise _finished(exc.status) from None
    log.info(
        "campaign %s: %d recipients appended (%s), %d of them duplicates, %d invalid",
        campaign_id,
        added.rows,
        fmt.value,
        added.duplicates,
        added.invalid,
    )
    total = (await campaign_or_404(state, campaign_id)).total_recipients
    appended = Appended(
        added=added.rows,
        duplicates=added.duplicates,
        invalid=added.invalid,
        total_recipients=total,
    )
    return json_response(appended.model_dump())


def _finished(status: str) -> ApiError:
    return ApiError(
        409,
        "campaign_finished",
        f"the campaign is {status}: it takes no more recipients",
        {"status": status},
    )


async def list_recipients(request: Request) -> Response:
    state = app_state(request)
    campaign_id: UUID = request.path_params["campaign_id"]
    query = parse_query(request, RecipientsQuery)
    await campaign_or_404(state, campaign_id)
    found = await state.store.recipients.page(
        campaign_id, status=query.status, after_id=query.after, limit=query.limit
    )
    page = RecipientPage(
        items=[RecipientOut.model_validate(r, from_attributes=True) for r in found],
        next_after=found[-1].id if len(found) == query.limit else None,
    )
    return json_response(page.model_dump(mode="json"))


_LINES = {"type": "string", "description": "One JSON object per line: phone or user_id, variables"}
_CSV = {
    "type": "string",
    "description": "A header (phone and/or user_id, then variable names), one recipient a line",
}

OPERATIONS = [
    Operation(
        "POST",
        "/campaigns/{campaign_id}/recipients",
        append_recipients,
        "Append recipients in bulk, streamed; all or nothing (a bad line, or passing a limit "
        "of DISPATCHER_MAX_UPLOAD_ROWS, _BYTES or _S, rejects the upload); a phone in no "
        "numbering plan is kept with status invalid, never sent",
        ("How many were added, and how many of them were duplicates", Appended),
        raw_body={"application/x-ndjson": _LINES, "application/jsonl": _LINES, "text/csv": _CSV},
        errors=[404, 408, 409, 413, 415, 422],
    ),
    Operation(
        "GET",
        "/campaigns/{campaign_id}/recipients",
        list_recipients,
        "A page of recipients with their status (keyset: pass next_after as after)",
        ("A page", RecipientPage),
        query=RecipientsQuery,
        errors=[404, 422],
    ),
]
