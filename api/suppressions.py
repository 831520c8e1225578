"""``/suppressions``: the per-business marketing suppression list, read and edited.

Filled by Meta (131050 answers, ``user_preferences`` stops) and by the operator; campaigns
skip a suppressed recipient (it ends ``suppressed``, never sent).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from api.bodies import parse_json, parse_query
from api.errors import json_response
from api.openapi import Operation
from api.schemas import MAX_PAGE, Bsuid, Input, Phone, Query
from api.state import app_state

log = logging.getLogger(__name__)

BusinessId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_ADDRESSES = 10_000


class SuppressionsQuery(Query):
    business_id: BusinessId | None = None
    address: Phone | Bsuid | None = None
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)


class SuppressionsIn(Input):
    business_id: BusinessId
    addresses: list[Phone | Bsuid] = Field(min_length=1, max_length=MAX_ADDRESSES)
    """E.164 phones or BSUIDs, as recipients are given."""
    reason: Annotated[str, StringConstraints(max_length=300)] = "operator"


class SuppressionOut(BaseModel):
    business_id: str
    address: str
    reason: str
    source: str
    """``operator``, ``131050`` or ``user_preferences``."""
    created_at: datetime


class SuppressionPage(BaseModel):
    suppressions: list[SuppressionOut]


class SuppressionsChanged(BaseModel):
    business_id: str
    changed: int
    """How many addresses were added (POST) or removed (DELETE); repeats change nothing."""


async def list_suppressions(request: Request) -> Response:
    state = app_state(request)
    query = parse_query(request, SuppressionsQuery)
    rows = await state.store.suppressions.page(
        query.business_id, address=query.address, limit=query.limit, offset=query.offset
    )
    page = SuppressionPage(
        suppressions=[SuppressionOut.model_validate(r, from_attributes=True) for r in rows]
    )
    return json_response(page.model_dump(mode="json"))


async def add_suppressions(request: Request) -> Response:
    state = app_state(request)
    given = await parse_json(request, SuppressionsIn)
    added = await state.store.suppressions.add(
        given.business_id, given.addresses, given.reason, "operator"
    )
    log.info("business %s: %d addresses suppressed by the operator", given.business_id, added)
    body = SuppressionsChanged(business_id=given.business_id, changed=added)
    return json_response(body.model_dump())


async def remove_suppressions(request: Request) -> Response:
    state = app_state(request)
    given = await parse_json(request, SuppressionsIn)
    removed = await state.store.suppressions.remove(given.business_id, given.addresses)
    log.info("business %s: %d suppressions lifted by the operator", given.business_id, removed)
    return json_response(
        SuppressionsChanged(business_id=given.business_id, changed=removed).model_dump()
    )


OPERATIONS = [
    Operation(
        "GET",
        "/suppressions",
        list_suppressions,
        "The marketing suppression list (per business), optionally of one business or address",
        ("A page of suppressions", SuppressionPage),
        query=SuppressionsQuery,
        errors=[422],
    ),
    Operation(
        "POST",
        "/suppressions",
        add_suppressions,
        "Suppress addresses for a business's campaigns (idempotent)",
        ("How many were added", SuppressionsChanged),
        body=SuppressionsIn,
    ),
    Operation(
        "DELETE",
        "/suppressions",
        remove_suppressions,
        "Lift the suppression of addresses (idempotent)",
        ("How many were removed", SuppressionsChanged),
        body=SuppressionsIn,
    ),
]
