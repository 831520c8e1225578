"""Meta's webhooks about limits and accounts: ``business_capability_update``,
``phone_number_quality_update`` and ``account_update``.

Sources (Meta's developer documentation, 2026): the business_capability_update, the
phone_number_quality_update and the account_update webhook references; the Messaging Limits
page (a portfolio's limit changes are announced by these webhooks); the Throughput page,
"Higher throughput" (the THROUGHPUT_UPGRADE event follows the upgrade). Payloads as in
tests/meta/fixtures/. Every handler is idempotent: it sets a state, it never counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from dispatcher.engine.webhook_handlers import WebhookContext
from dispatcher.engine.webhooks import Handler
from dispatcher.meta.client import parse_limit
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.webhooks import Change
from dispatcher.store.models import Instance, InstanceStatus, LimitSource

log = logging.getLogger(__name__)

CAPABILITY_FIELD = "business_capability_update"
QUALITY_FIELD = "phone_number_quality_update"
ACCOUNT_FIELD = "account_update"

THROUGHPUT_UPGRADE = "THROUGHPUT_UPGRADE"
ACCOUNT_REASON = "account_update"
"""Prefix of the status reason of a number stopped by this webhook: a REINSTATE ends only these."""
MESSAGING_RESTRICTIONS = frozenset(
    {"RESTRICTED_BIZ_INITIATED_MESSAGING", "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"}
)
"""Restrictions that stop a campaign's sends (adding a number, say, does not)."""
STOPPING_BAN_STATES = frozenset({"DISABLE"})
STOPPING_EVENTS = frozenset({"ACCOUNT_DELETED", "PARTNER_REMOVED"})


def limit_from(value: dict[str, Any]) -> MessagingTier | None:
    """The portfolio's limit in a webhook: ``max_daily_conversations_per_business`` (an
    integer such as 2000 or a ``TIER_*`` string), else the legacy per-phone field (-1 means
    unlimited)."""
    for key in ("max_daily_conversations_per_business", "max_daily_conversation_per_phone"):
        tier = parse_limit(value.get(key))
        if tier is not None:
            return tier
    return None


def account_handlers(context: WebhookContext) -> dict[str, Handler]:
    """This module's handlers, by field (see ``webhook_handlers``)."""

    async def capability(change: Change) -> None:
        tier = limit_from(change.value)
        if tier is None:
            log.warning("%s without a limit: %s", CAPABILITY_FIELD, change.value)
            return
        await _apply_limit(context, await _businesses(context, change.entry_id), tier)

    async def quality(change: Change) -> None:
        instances = await _numbers(context, change)
        if change.value.get("event") == THROUGHPUT_UPGRADE:
            for instance in instances:
                rate = await context.fleet.redetect(instance.id)
                log.info(
                    "instance %s: throughput upgrade announced; now %s msg/s",
                    instance.phone_number_id,
                    rate,
                )
        tier = parse_limit(change.value.get("max_daily_conversations_per_business"))
        if tier is not None:
            businesses = {i.business_id for i in instances}
            if not businesses:
                businesses = await _businesses(context, change.entry_id)
            await _apply_limit(context, businesses, tier)

    async def account(change: Change) -> None:
        instances = await context.store.instances.by_waba_id(change.entry_id or "")
        if not instances:
            log.warning("%s for WABA %s: no number of ours", ACCOUNT_FIELD, change.entry_id)
            return
        verdict = account_verdict(change.value)
        if verdict is None:
            log.info("%s %s: nothing to do", ACCOUNT_FIELD, change.value.get("event"))
        elif verdict == "reinstate":
            await _reinstate(context, instances)
        else:
            await _stop(context, instances, verdict)

    return {CAPABILITY_FIELD: capability, QUALITY_FIELD: quality, ACCOUNT_FIELD: account}


def account_verdict(value: dict[str, Any]) -> str | None:
    """What an ``account_update`` means for the account's numbers: a reason to stop them,
    ``"reinstate"``, or None (nothing that touches sending)."""
    event = str(value.get("event") or "")
    if event == "ACCOUNT_RESTRICTION":
        infos = value.get("restriction_info")
        found = [i for i in infos if isinstance(i, dict)] if isinstance(infos, list) else []
        stopping = [i for i in found if i.get("restriction_type") in MESSAGING_RESTRICTIONS]
        if not stopping:
            return None
        parts = [f"{i['restriction_type']} until {_when(i.get('expiration'))}" for i in stopping]
        return f"{ACCOUNT_REASON}: {event} " + ", ".join(parts)
    if event == "DISABLED_UPDATE":
        ban = value.get("ban_info")
        state = ban.get("waba_ban_state") if isinstance(ban, dict) else None
        if state == "REINSTATE":
            return "reinstate"
        if state in STOPPING_BAN_STATES:
            return f"{ACCOUNT_REASON}: {event} waba_ban_state {state}"
        return None
    if event in STOPPING_EVENTS:
        return f"{ACCOUNT_REASON}: {event}"
    return None


async def _stop(context: WebhookContext, instances: Iterable[Instance], reason: str) -> None:
    """Stop the numbers as a 190 would: status error with the reason, their actors stopped
    (in-flight sends finish), their queued batches rerouted to the campaigns' other numbers.
    A 131064 hold of their portfolio stays: only the operator ends it."""
    for instance in instances:
        await context.store.instances.set_status(instance.id, InstanceStatus.ERROR, reason[:300])
        stopped = await context.core.reload_instance(instance.id)
        await context.fleet.halt(stopped or instance)
        rerouted = await context.core.drain(instance.id)
        log.error(
            "instance %s stopped by Meta (%s); %d recipients rerouted",
            instance.phone_number_id,
            reason,
            rerouted,
        )


async def _reinstate(context: WebhookContext, instances: Iterable[Instance]) -> None:
    """Meta lifted the ban: the numbers this webhook stopped send again (a new actor)."""
    for instance in instances:
        if instance.status is InstanceStatus.ERROR and (instance.status_reason or "").startswith(
            ACCOUNT_REASON
        ):
            await context.store.instances.set_status(instance.id, InstanceStatus.ACTIVE)
            back = await context.core.reload_instance(instance.id)
            if back is not None:
                await context.fleet.restart(back)
            log.warning("instance %s reinstated by Meta", instance.phone_number_id)


async def _apply_limit(
    context: WebhookContext, businesses: Iterable[str], tier: MessagingTier
) -> None:
    """The portfolio's limit changes now, for every number it has (source: webhook)."""
    found = False
    for business_id in businesses:
        found = True
        portfolio = await context.store.portfolios.record_detected(
            business_id, tier, LimitSource.WEBHOOK
        )
        await context.core.apply_limit(portfolio)
        log.warning("portfolio %s: messaging limit now %s (webhook)", business_id, tier.value)
    if not found:
        log.warning("a messaging limit %s for no portfolio of ours", tier.value)


async def _businesses(context: WebhookContext, entry_id: str | None) -> set[str]:
    """The portfolios an entry id names: those of the numbers of that WABA, or the portfolio
    itself (some payloads carry the business id)."""
    if entry_id is None:
        return set()
    found = {i.business_id for i in await context.store.instances.by_waba_id(entry_id)}
    if not found and await context.store.portfolios.get(entry_id) is not None:
        found.add(entry_id)
    return found


async def _numbers(context: WebhookContext, change: Change) -> list[Instance]:
    """The numbers a quality webhook names: by display phone number (within the entry's WABA
    when that narrows it), else every number of the WABA."""
    display = change.value.get("display_phone_number")
    store = context.store.instances
    if isinstance(display, str | int) and str(display).strip():
        found = await store.by_display_phone_number(str(display))
        narrowed = [i for i in found if i.waba_id == change.entry_id]
        return narrowed or found
    return await store.by_waba_id(change.entry_id) if change.entry_id else []


def _when(expiration: Any) -> str:
    try:
        return datetime.fromtimestamp(int(expiration), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return "further notice"
