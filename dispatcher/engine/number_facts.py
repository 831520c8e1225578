"""A number's facts from the Graph API: its portfolio's messaging limit, throughput, display
number. Read at actor start and when a webhook announces a change, never in a loop: Meta
allows 200 management calls an hour per WABA (5,000 when active), DESIGN.md "API call rate".

Where each fact lives (Meta's Messaging Limits page, 2026): ``GET /{phone_number_id}?fields=
whatsapp_business_manager_messaging_limit,throughput,display_phone_number,...``. The business
node has no limit field. A limit that cannot be read is recorded as ``unreadable`` with the
Graph API's error and logged as an ERROR; the coordinator then assumes
``EngineConfig.unreadable_limit`` and shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dispatcher.meta.client import MetaClient
from dispatcher.meta.messages import MetaError
from dispatcher.store import Store
from dispatcher.store.models import Instance, LimitSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What one read established; ``throughput_mps`` is the one to send at (the operator's
    figure wins over Meta's level), None when nobody knows it."""

    throughput_mps: int | None
    limit_source: LimitSource
    limit_error: str | None = None


async def read_number_facts(
    client: MetaClient, store: Store, instance: Instance, token: str
) -> NumberFacts:
    """Read the number's node once and record what it says (instance and portfolio rows)."""
    try:
        info = await client.phone_number(instance.phone_number_id, token)
    except MetaError as exc:
        error = _error_text(exc)
        await store.portfolios.record_unreadable(instance.business_id, error)
        log.error(
            "instance %s: messaging limit of portfolio %s unreadable (%s); assuming the "
            "configured DISPATCHER_UNREADABLE_LIMIT",
            instance.phone_number_id,
            instance.business_id,
            error,
        )
        return NumberFacts(instance.throughput_mps, LimitSource.UNREADABLE, error)
    # The operator's throughput wins: only a number without one takes Meta's.
    operator = instance.throughput_mps if instance.throughput_source == "operator" else None
    await store.instances.record_detection(
        instance.id,
        throughput_mps=info.throughput_mps if operator is None else None,
        display_phone_number=info.display_phone_number,
    )
    throughput = operator or info.throughput_mps or instance.throughput_mps
    if info.messaging_tier is None:
        error = info.limit_error or "no messaging limit in the answer"
        await store.portfolios.record_unreadable(instance.business_id, error)
        log.error(
            "instance %s: the Graph API gave no messaging limit for portfolio %s (%s)",
            instance.phone_number_id,
            instance.business_id,
            error,
        )
        return NumberFacts(throughput, LimitSource.UNREADABLE, error)
    await store.portfolios.record_detected(
        instance.business_id, info.messaging_tier, LimitSource.GRAPH_API
    )
    log.info(
        "instance %s: portfolio %s limit %s, throughput %s (Graph API)",
        instance.phone_number_id,
        instance.business_id,
        info.messaging_tier.value,
        throughput,
    )
    return NumberFacts(throughput, LimitSource.GRAPH_API)


def _error_text(error: MetaError) -> str:
    """The Graph API's error for display: code and message (it never carries our token)."""
    return f"Graph API: {error}"[:500]
