"""``/suppressions``: the per-business marketing suppression list, read and edited.

Filled by Meta (131050 answers, ``user_preferences`` stops) and by the operator (a JSON list
of addresses, or a CSV file imported whole: all of it or, on a bad line, none); campaigns
skip a suppressed recipient (it ends ``suppressed``, never sent).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from api.bodies import media_type, parse_json, parse_query, upload_body
from api.errors import ApiError, json_response
from api.openapi import Operation
from api.schemas import MAX_PAGE, Bsuid, Input, Phone, Query
from api.state import app_state
from dispatcher.recipient_files import RecipientLineError
from dispatcher.store.suppression_import import MAX_LISTED_INVALID
from dispatcher.suppression_files import MAX_REASON_CHARS, suppression_lines

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
    """``operator``, ``import`` (a CSV file), ``131050`` or ``user_preferences``."""
    created_at: datetime


class SuppressionPage(BaseModel):
    suppressions: list[SuppressionOut]


class SuppressionsChanged(BaseModel):
    business_id: str
    changed: int
    """How many addresses were added (POST) or removed (DELETE); repeats change nothing."""


class ImportQuery(Query):
    business_id: BusinessId


class InvalidLine(BaseModel):
    line: int
    address: str


class SuppressionsImported(BaseModel):
    business_id: str
    rows: int = Field(description="Addresses read (the header and blank lines left out).")
    added: int = Field(description="Addresses suppressed by this import.")
    already_suppressed: int = Field(description="Addresses the business had suppressed before.")
    repeated: int = Field(description="Rows naming an address an earlier row of the file named.")
    invalid: int = Field(
        description="Phones of the E.164 shape in no numbering plan: suppressed all the same "
        "(an opt-out is never dropped), counted and listed so the list can be cleaned."
    )
    invalid_lines: list[InvalidLine] = Field(
        description=f"The first {MAX_LISTED_INVALID} of them, by line."
    )


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


async def import_suppressions(request: Request) -> Response:
    state = app_state(request)
    query = parse_query(request, ImportQuery)
    kind = media_type(request)
    if kind != "text/csv":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the list as text/csv: an address (E.164 phone or BSUID) a line, then an "
            "optional reason",
            {"got": kind, "accepted": ["text/csv"]},
        )
    limits = state.upload_limits
    body = upload_body(request, limits)
    try:
        done = await state.store.suppressions.import_list(
            query.business_id, suppression_lines(body), limits
        )
    except RecipientLineError as exc:
        raise ApiError(
            422,
            "invalid_line",
            f"{exc}: nothing of the list was imported",
            {"line": exc.line, "problem": exc.problem},
        ) from None
    log.info(
        "business %s: %d addresses imported, %d new, %d invalid numbers",
        done.business_id,
        done.rows,
        done.added,
        done.invalid,
    )
    answer = SuppressionsImported(
        business_id=done.business_id,
        rows=done.rows,
        added=done.added,
        already_suppressed=done.already,
        repeated=done.repeated,
        invalid=done.invalid,
        invalid_lines=[InvalidLine(line=n, address=a) for n, a in done.invalid_lines],
    )
    return json_response(answer.model_dump())


_CSV = {
    "type": "string",
    "description": "An address a line (E.164 phone or BSUID), then optionally a reason (at most "
    f"{MAX_REASON_CHARS} characters); an optional header (address or phone or user_id, reason)",
}

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
    Operation(
        "POST",
        "/suppressions/import",
        import_suppressions,
        "Import a suppression list (CSV, streamed) for a business: all of it, or nothing (a "
        "bad line, or passing DISPATCHER_MAX_UPLOAD_ROWS, _BYTES or _S, rejects it)",
        ("What the import did", SuppressionsImported),
        query=ImportQuery,
        raw_body={"text/csv": _CSV},
        errors=[408, 413, 415, 422],
    ),
]
