"""The batch format on an instance's stream: what the coordinator routes, what an actor sends."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Batch:
    campaign_id: UUID
    claim_id: int
    template: Template
    items: list[BatchItem]

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": str(self.campaign_id),
            "claim_id": self.claim_id,
            "template": {
                "name": self.template.name,
                "language": self.template.language,
                "components": list(self.template.components),
            },
            "items": [[i.recipient_id, i.address, i.variables, i.attempts] for i in self.items],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        template = data["template"]
        return cls(
            campaign_id=UUID(data["campaign_id"]),
            claim_id=int(data["claim_id"]),
            template=Template(
                template["name"], template["language"], tuple(template.get("components") or ())
            ),
            items=[BatchItem(int(r), str(a), v, int(n)) for r, a, v, n in data["items"]],
        )

    @classmethod
    def from_claim(
        cls, claim: Claim, template: Template, recipients: list[ClaimedRecipient]
    ) -> Batch:
        return cls(
            campaign_id=claim.campaign_id,
            claim_id=claim.claim_id,
            template=template,
            items=[BatchItem(r.id, r.address, r.variables, r.attempts) for r in recipients],
        )

    def body(self, item: BatchItem, tag: CallbackTag) -> bytes:
        """The send body; the recipient's id rides in ``biz_opaque_callback_data``, tagged,
        so its status webhook can be matched even when the send's answer was lost, and no
        other sender's callback data can pass for it."""
        return template_body(
            item.address, self.template, item.variables, tag.make(item.recipient_id)
        )


def template_from_json(data: dict[str, Any]) -> Template:
    """A campaign's stored template (``{name, language, components}``)."""
    language = data.get("language")
    if isinstance(language, dict):
        language = language.get("code")
    return Template(
        str(data["name"]), str(language or "en_US"), tuple(data.get("components") or ())
    )
