"""The batch format on an instance's stream: what the coordinator routes, what an actor sends.

A batch carries recipients only (ids, addresses, variables, attempts, and for a campaign of
A/B variants the index of the recipient's variant), never the template: a
campaign's template (its components may be megabytes) lives once, in Postgres, and each
instance actor reads it once per campaign (:mod:`dispatcher.engine.templates`). So a batch
stays small whatever the template, and a batch rebuilt or reclaimed after Redis lost its
data finds its template where it always was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.messages import Template, Variables, template_body
from dispatcher.store.models import Claim, ClaimedRecipient


@dataclass(frozen=True, slots=True)
class BatchItem:
    recipient_id: int
    address: str
    variables: Variables
    attempts: int
    # Keyword-only: two optional ints side by side are too easy to swap by position.
    variant: int | None = field(default=None, kw_only=True)
    """Which of the campaign's A/B variants to send (``dispatcher/ab``); None: its template."""
    retries: int | None = field(default=None, kw_only=True)
    """The row's automatic retries when claimed (its tag's attempt); None in a batch routed
    before it was carried."""


@dataclass(frozen=True, slots=True)
class Batch:
    campaign_id: UUID
    claim_id: int
    items: list[BatchItem]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": str(self.campaign_id),
            "claim_id": self.claim_id,
            "items": [_item_json(i) for i in self.items],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        # A batch routed before the template left it still has a "template": ignored, the
        # campaign's own (the same, templates never change) is read from Postgres. An item
        # routed before the retries were carried has four fields.
        return cls(
            campaign_id=UUID(data["campaign_id"]),
            claim_id=int(data["claim_id"]),
            items=[_item(item) for item in data["items"]],
        )

    @classmethod
    def from_claim(cls, claim: Claim, recipients: list[ClaimedRecipient]) -> Batch:
        return cls(
            campaign_id=claim.campaign_id,
            claim_id=claim.claim_id,
            items=[
                BatchItem(
                    r.id, r.address, r.variables, r.attempts, variant=r.variant, retries=r.retries
                )
                for r in recipients
            ],
        )


def _item_json(item: BatchItem) -> list[Any]:
    # [id, address, variables, attempts, retries] and the variant only when there is one.
    row = [item.recipient_id, item.address, item.variables, item.attempts, item.retries]
    return row if item.variant is None else [*row, item.variant]


def _item(row: list[Any]) -> BatchItem:
    # A batch routed before the attempt was carried has four fields (no retries, no variant).
    retries = row[4] if len(row) > 4 else None
    variant = row[5] if len(row) > 5 else None
    return BatchItem(
        int(row[0]),
        str(row[1]),
        row[2],
        int(row[3]),
        variant=None if variant is None else int(variant),
        retries=None if retries is None else int(retries),
    )


def send_body(template: Template, item: BatchItem, tag: CallbackTag) -> bytes:
    """The send body of one item; the recipient's id rides in ``biz_opaque_callback_data``,
    tagged with its attempt, so its status webhook can be matched even when the send's answer
    was lost, no other sender's callback data can pass for it, and a late status of an
    attempt retried since moves nothing. Raises
    :class:`~dispatcher.meta.render.RenderLimitError` for a message Meta's limits refuse."""
    return template_body(
        item.address, template, item.variables, tag.make(item.recipient_id, item.retries)
    )


def template_from_json(data: dict[str, Any]) -> Template:
    """A campaign's stored template (``{name, language, components}``)."""
    language = data.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    return Template(
        str(data["name"]), str(language or "en_US"), tuple(data.get("components") or ())
    )
