"""What the REST API and the driver SDK both do to the store: one implementation for both."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from dispatcher.ab.assign import VariantPicker
from dispatcher.ab.settings import AbTest
from dispatcher.errors import DispatcherError
from dispatcher.meta.tiers import MessagingTier
from dispatcher.store import Store
from dispatcher.store.campaigns import TRANSITIONS
from dispatcher.store.models import (
    Campaign,
    CampaignStatus,
    Instance,
    InstanceStatus,
    NewRecipient,
)
from dispatcher.store.staging import stage
from dispatcher.uploads import UploadLimits


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
    waba_id: str | None = None,
    max_instances: int | None = None,
) -> Instance:
    """Register (or update) a number; ``messaging_tier`` overrides its portfolio's limit;
    ``waba_id`` (its WhatsApp Business Account) maps Meta's webhooks to it. A new number
    past ``max_instances`` is refused (:class:`InstanceLimitError`).

    A re-registered number is active again (a new token after a 190, say).
    """
    instance = await store.instances.upsert(
        phone_number_id,
        business_id,
        access_token,
        name=name,
        messaging_tier=messaging_tier,
        throughput_mps=throughput_mps,
        waba_id=waba_id,
        max_instances=max_instances,
    )
    if messaging_tier is not None:
        await store.portfolios.set_override(business_id, messaging_tier)
    if instance.status is not InstanceStatus.ACTIVE:
        await store.instances.set_status(instance.id, InstanceStatus.ACTIVE)
        refreshed = await store.instances.get(instance.id)
        if refreshed is None:
            raise NotFoundError("instance", instance.id)
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
    limits: UploadLimits | None = None,
    send_window: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
    max_per_minute: int | None = None,
    retry_policy: Mapping[str, Any] | None = None,
    ab_test: AbTest | None = None,
) -> Campaign:
    """A draft (or scheduled) campaign with its recipients, streamed into Postgres: all or
    nothing (a refused recipient, passing ``limits`` or a failing input leave no campaign).
    ``send_window`` as ``api/windows.py`` ``SendWindowIn.stored`` shapes it;
    ``retry_policy``: a validated :class:`~dispatcher.retry_policy.RetryPolicy` as JSON
    (None: the default). With ``ab_test`` each recipient gets one of its variants
    (``template`` is then the first variant's)."""
    for instance_id in instance_ids:
        if await store.instances.get(instance_id) is None:
            raise NotFoundError("instance", instance_id)
    campaign_id = uuid.uuid4()
    picker = None if ab_test is None else VariantPicker(campaign_id, ab_test.weights)
    upload = await stage(recipients, campaign_id, limits, picker)
    try:
        return await store.campaigns.create(
            name,
            template,
            list(instance_ids),
            scheduled_at=scheduled_at,
            upload=upload,
            send_window=send_window,
            expires_at=expires_at,
            max_per_minute=max_per_minute,
            retry_policy=retry_policy,
            ab_test=None if ab_test is None else ab_test.to_json(),
        )
    finally:
        upload.close()


class Action(StrEnum):
    """What an operator asks of a campaign; each moves it to one status."""

    SEND = "send"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


_TARGETS = {
    Action.SEND: CampaignStatus.RUNNING,
    Action.PAUSE: CampaignStatus.PAUSED,
    Action.RESUME: CampaignStatus.RUNNING,
    Action.CANCEL: CampaignStatus.CANCELLED,
}
# Narrower than the store's table: "send" does not resume, "resume" does not start a draft.
_ONLY_FROM = {
    Action.SEND: frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}),
    Action.RESUME: frozenset({CampaignStatus.PAUSED, CampaignStatus.HELD}),
}


def allowed_from(action: Action) -> frozenset[CampaignStatus]:
    """The statuses ``action`` may be applied in (the store's transition table decides)."""
    allowed = TRANSITIONS[_TARGETS[action]]
    return allowed & _ONLY_FROM.get(action, allowed)


def queue_stats_view(raw: Mapping[str, Any], instance_id: str | None = None) -> dict[str, Any]:
    """The coordinator's stats as ``GET /queue/stats`` and ``dispatcher stats`` show them:
    both queues, live instance stats by id, portfolios, routing counters. JSON-safe: keys are
    strings, unlimited (infinite) values are None."""
    queues = raw.get("queues") or {}
    instances = raw.get("instances") or {}
    if instance_id is not None:  # the coordinator answers one instance's stats unkeyed
        instances = {instance_id: instances} if instances else {}
    empty = {"pending": 0, "processing": 0, "dlq": 0, "instances": {}}
    view = {
        "campaigns": queues.get("campaigns", empty),
        "webhooks": queues.get("webhooks", empty),
        "instances": instances,
        "portfolios": raw.get("portfolios") or {},
        "routing": {
            key: raw.get(key)
            for key in (
                "uptime_s",
                "routed_batches",
                "routed_recipients",
                "deferred_recipients",
                "webhook_statuses_applied",
            )
        },
    }
    result: dict[str, Any] = json_safe(view)
    return result


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
