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

from dispatcher.engine.error_webhooks import ErrorWebhooks
from dispatcher.engine.messages_webhook import on_messages
from dispatcher.engine.webhooks import Handler
from dispatcher.meta.webhooks import MESSAGES_FIELD, Change
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

    errors = ErrorWebhooks(context.store)

    async def value_errors(change: Change) -> None:
        await on_messages(context.store, context.fleet, change)

    return merge(
        account_handlers(context),
        # value.errors[] (an asynchronous 130429...): throttle the number it names.
        {MESSAGES_FIELD: value_errors},
        {
            "message_template_status_update": errors.template_status,
            "user_preferences": errors.user_preferences,
            # Statuses are written by the applier; this only suppresses users failed with 131050.
            MESSAGES_FIELD: errors.failed_statuses,
        },
    )


def merge(*tables: dict[str, Handler]) -> dict[str, Handler]:
    """One registry from several: a field named by more than one table runs each of its
    handlers in turn (each is idempotent, so a retry after an outage may rerun them all)."""
    found: dict[str, list[Handler]] = {}
    for table in tables:
        for field, handler in table.items():
            found.setdefault(field, []).append(handler)
    return {field: _chain(handlers) for field, handlers in found.items()}


def _chain(handlers: list[Handler]) -> Handler:
    if len(handlers) == 1:
        return handlers[0]

    async def run_all(change: Change) -> None:
        for handler in handlers:
            await handler(change)

    return run_all
