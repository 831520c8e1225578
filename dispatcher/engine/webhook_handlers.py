"""What the dispatcher does on each of Meta's operational webhooks (every field but statuses).

One registry, built once per coordinator: ``field`` -> handler. Each handler takes one
:class:`~dispatcher.meta.webhooks.Change` (``value`` and the entry's WABA id) and acts through
the store, the coordinator's core (portfolio gates, holds) and the fleet of instance actors.
A handler must be idempotent: Meta retries, and an outage makes the applier run it again.
Sources for each field: DESIGN.md, "Webhook", and the payloads in shared/meta-fixtures/.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispatcher.engine.webhooks import Handler
from dispatcher.store import Store

if TYPE_CHECKING:
    from dispatcher.engine.coordinator import CoordinatorCore, InstanceFleet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookContext:
    """What a handler may act through."""

    store: Store
    core: CoordinatorCore
    fleet: InstanceFleet


def webhook_handlers(context: WebhookContext) -> dict[str, Handler]:
    """The handler of each operational field. Inbound messages and unknown fields have
    none: their payloads are acknowledged (200) and dropped."""
    from dispatcher.engine.account_webhooks import account_handlers

    handlers: dict[str, Handler] = {}
    handlers.update(account_handlers(context))
    return handlers
