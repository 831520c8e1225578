"""What the REST API and the driver SDK both do to the store: one implementation for both."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatcher.errors import DispatcherError
from dispatcher.meta.tiers import MessagingTier
from dispatcher.store import Store
from dispatcher.store.models import Campaign, Instance, InstanceStatus, NewRecipient


class NotFoundError(DispatcherError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} not found")
        self.kind = kind
        self.key = key


async def register_instance(
    store: Store,
    *,
    phone_number_id: str,
    access_token: str,
    business_id: str,
    name: str = "",
    messaging_tier: MessagingTier | None = None,
    throughput_mps: int | None = None,
) -> Instance:
    """Register (or update) a number; ``messaging_tier`` overrides its portfolio's limit.

    A re-registered number is active again (a new token after a 190, say).
    """
    instance = await store.instances.upsert(
        phone_number_id,
        business_id,
        access_token,
        name=name,
        messaging_tier=messaging_tier,
        throughput_mps=throughput_mps,
    )
    if messaging_tier is not None:
        await store.portfolios.set_override(business_id, messaging_tier)
    if instance.status is not InstanceStatus.ACTIVE:
        await store.instances.set_status(instance.id, InstanceStatus.ACTIVE)
        refreshed = await store.instances.get(instance.id)
        assert refreshed is not None
        instance = refreshed
    return instance


async def create_campaign(
    store: Store,
    *,
    name: str,
    template: Mapping[str, Any],
    instance_ids: Sequence[UUID],
    recipients: Iterable[NewRecipient] | AsyncIterable[NewRecipient] = (),
    scheduled_at: datetime | None = None,
) -> Campaign:
    """A draft (or scheduled) campaign with its recipients, streamed into Postgres."""
    for instance_id in instance_ids:
        if await store.instances.get(instance_id) is None:
            raise NotFoundError("instance", instance_id)
    campaign = await store.campaigns.create(
        name, template, list(instance_ids), scheduled_at=scheduled_at
    )
    await store.recipients.ingest(campaign.id, recipients)
    refreshed = await store.campaigns.get(campaign.id)
    assert refreshed is not None
    return refreshed
