"""``/campaigns/{id}/attempts``: one recipient's attempts, each with its wamid and code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from api.bodies import parse_query
from api.campaigns import campaign_or_404
from api.errors import ApiError, json_response
from api.openapi import Operation
from api.schemas import Query, RecipientOut
from api.state import app_state
from dispatcher.store.models import RecipientStatus


class AttemptsQuery(Query):
    recipient_id: Annotated[int, Field(ge=1, le=2**63 - 1)] = Field(
        description="The recipient's id (as listed by GET /campaigns/{id}/recipients)."
    )


class AttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first send; each automatic retry adds one.")
    status: RecipientStatus = Field(
        description="failed for an earlier attempt; the recipient's status for the current one."
    )
    instance_id: UUID | None
    wamid: str | None
    sends: int = Field(description="Send tries within the attempt (in-send retries).")
    error_code: int | None
    error_message: str | None
    error_details: str | None
    sent_at: datetime | None
    failed_at: datetime | None
    retry_at: datetime | None = Field(
        description="When the next attempt became due (null: the last or current attempt)."
    )


class RecipientAttempts(BaseModel):
    recipient: RecipientOut
    attempts: list[AttemptOut] = Field(description="First to current.")


async def list_attempts(request: Request) -> Response:
    state = app_state(request)
    campaign_id: UUID = request.path_params["campaign_id"]
    query = parse_query(request, AttemptsQuery)
    await campaign_or_404(state, campaign_id)
    recipient = await state.store.recipients.get(query.recipient_id)
    if recipient is None or recipient.campaign_id != campaign_id:
        raise ApiError(
            404, "not_found", f"campaign {campaign_id} has no recipient {query.recipient_id}"
        )
    attempts = await state.store.attempts.of_recipient(recipient.id)
    out = RecipientAttempts(
        recipient=RecipientOut.model_validate(recipient, from_attributes=True),
        attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
    )
    return json_response(out.model_dump(mode="json"))


OPERATIONS = [
    Operation(
        "GET",
        "/campaigns/{campaign_id}/attempts",
        list_attempts,
        "One recipient's attempts, first to current, each with its wamid and error code "
        '(automatic retries: README, "Automatic retry")',
        ("The recipient and its attempts", RecipientAttempts),
        query=AttemptsQuery,
        errors=[404, 422],
    ),
]
