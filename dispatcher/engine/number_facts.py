"""A number's facts from the Graph API: its portfolio's messaging limit, throughput, display
number. Read at actor start and when a webhook announces a change, never in a loop: Meta
allows 200 management calls an hour per WABA (5,000 when active), DESIGN.md "API call rate".

Where each fact lives (Meta's Messaging Limits page, 2026): ``GET /{phone_number_id}?fields=
whatsapp_business_manager_messaging_limit,throughput,display_phone_number,...``. The business
node has no limit field. A limit that cannot be read is recorded as ``unreadable`` with the
Graph API's error and logged as an ERROR; the coordinator then assumes
``EngineConfig.unreadable_limit`` and shows it.

Only a definitive answer makes the limit unreadable (a bad token, a missing field...). An
outage (network error, 5xx, a throttle, no answer) says nothing about the limit: the read is
retried with backoff (``RETRY_DELAYS_S``, about 30 s), then the number sends on what is
already recorded while :func:`keep_reading` retries in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from dispatcher.meta.client import MetaClient, PhoneNumberInfo
from dispatcher.meta.error_codes import ErrorClass
from dispatcher.meta.messages import MetaError
from dispatcher.store import Store
from dispatcher.store.models import Instance, LimitSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What one read established; ``throughput_mps`` is the one to send at (the operator's
    figure wins over Meta's level), None when nobody knows it."""

    throughput_mps: int | None
    limit_source: LimitSource | None
    """None: the Graph API was out (see ``outage``); nothing was recorded."""
    limit_error: str | None = None
    outage: bool = False
    """The read met only outages: read again later (:func:`keep_reading`)."""


Sleep = Callable[[float], Awaitable[None]]

OUTAGE_CLASSES = frozenset(
    {ErrorClass.TRANSIENT, ErrorClass.THROTTLE, ErrorClass.IN_DOUBT, ErrorClass.MAINTENANCE}
)
"""Failures that say nothing about the number: network, 5xx, throttles, no answer."""
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits between the start-up reads during an outage (6 reads over about 30 s)."""
BACKGROUND_DELAY_S = (30.0, 300.0)
"""First and longest wait between the background reads after that (doubling): a few
management calls an hour at most, well inside Meta's 200 per WABA."""


def is_outage(error: MetaError) -> bool:
    return error.error_class in OUTAGE_CLASSES


async def read_number_facts(
    client: MetaClient,
    store: Store,
    instance: Instance,
    token: str,
    *,
    delays: Sequence[float] = RETRY_DELAYS_S,
    sleep: Sleep = asyncio.sleep,
) -> NumberFacts:
    """Read the number's node and record what it says (instance and portfolio rows); an
    outage is retried after each of ``delays``, then reported as ``outage`` (nothing
    recorded: the limit already on record stays in force)."""
    for delay in (*delays, None):
        try:
            info = await client.phone_number(instance.phone_number_id, token)
        except MetaError as exc:
            if not is_outage(exc):
                return await _unreadable(store, instance, exc)
            error = _error_text(exc)
            if delay is None:
                log.warning(
                    "instance %s: Graph API out (%s); sending on the limit on record, "
                    "reading again later",
                    instance.phone_number_id,
                    error,
                )
                return NumberFacts(instance.throughput_mps, None, error, outage=True)
            log.info(
                "instance %s: Graph API out (%s); reading again in %.0fs",
                instance.phone_number_id,
                error,
                delay,
            )
            await sleep(delay)
            continue
        return await _record(store, instance, info)
    raise AssertionError("unreachable")  # pragma: no cover


async def keep_reading(
    client: MetaClient,
    store: Store,
    instance: Instance,
    token: str,
    *,
    sleep: Sleep = asyncio.sleep,
) -> NumberFacts:
    """Read again, with a growing wait, until the Graph API answers (after an outage)."""
    wait, longest = BACKGROUND_DELAY_S
    while True:
        await sleep(wait)
        facts = await read_number_facts(client, store, instance, token, delays=(), sleep=sleep)
        if not facts.outage:
            return facts
        wait = min(wait * 2, longest)


class FactsReader:
    """Reads numbers' facts where no actor runs (the coordinator's process): at registration,
    and when a webhook asks for a number without an actor. Remembers when each number's facts
    were last read, so that an actor started soon after need not read them again."""

    def __init__(
        self, store: Store, client: MetaClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        self._read_at: dict[UUID, float] = {}
        self._later: dict[UUID, asyncio.Task[None]] = {}

    def fresh(self, instance_id: UUID, max_age_s: float) -> bool:
        """Read (by this reader, or by an actor it was told of) within ``max_age_s``."""
        return self._clock() - self._read_at.get(instance_id, float("-inf")) <= max_age_s

    def read_elsewhere(self, instance_id: UUID) -> None:
        """An actor reads (or just read) the number's facts itself."""
        self._read_at[instance_id] = self._clock()

    async def read(self, instance_id: UUID) -> NumberFacts | None:
        """Read once and record; during an outage the read goes on in the background (the
        caller may be an API request: it does not wait out the outage). None: no such
        number."""
        instance = await self._store.instances.get(instance_id)
        token = await self._store.instances.instance_token(instance_id)
        if instance is None or token is None:
            return None
        facts = await read_number_facts(self._client, self._store, instance, token, delays=())
        previous = self._later.pop(instance.id, None)
        if previous is not None:
            previous.cancel()
        if facts.outage:
            self._later[instance.id] = asyncio.create_task(self._read_later(instance, token))
        else:
            self._read_at[instance.id] = self._clock()
        return facts

    async def _read_later(self, instance: Instance, token: str) -> None:
        await keep_reading(self._client, self._store, instance, token)
        self._read_at[instance.id] = self._clock()
        self._later.pop(instance.id, None)

    async def aclose(self) -> None:
        for task in self._later.values():
            task.cancel()
        self._later.clear()
        await self._client.aclose()


async def _unreadable(store: Store, instance: Instance, exc: MetaError) -> NumberFacts:
    """A definitive Graph API error: the limit is recorded ``unreadable``."""
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


async def _record(store: Store, instance: Instance, info: PhoneNumberInfo) -> NumberFacts:
    """The node was read: record its facts (instance and portfolio rows)."""
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
