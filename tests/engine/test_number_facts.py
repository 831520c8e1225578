"""Reading a number's facts at actor start: an outage of the Graph API (network error, 5xx,
throttle) is retried and never recorded as an unreadable limit; a definitive error is. The
real ``MetaClient`` over a scripted transport; the real Postgres; waits recorded, not slept."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson
import pytest

from dispatcher.engine.number_facts import RETRY_DELAYS_S, keep_reading, read_number_facts
from dispatcher.meta.client import MetaClient
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.transport import TransportError
from dispatcher.store import Store
from dispatcher.store.models import Instance, LimitSource

NODE = {
    "id": "pn",
    "whatsapp_business_manager_messaging_limit": "TIER_2K",
    "throughput": {"level": "STANDARD"},
    "display_phone_number": "15550001111",
}
Answer = tuple[int, Mapping[str, object]] | TransportError


def graph_error(status: int, code: int) -> Answer:
    return status, {"error": {"code": code, "message": "scripted", "type": "OAuthException"}}


class ScriptedGraph:
    """Answers the node reads from a script (then the node), counting them."""

    def __init__(self, script: list[Answer]) -> None:
        self.script = script
        self.reads = 0

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        self.reads += 1
        answer = self.script.pop(0) if self.script else (200, NODE)
        if isinstance(answer, TransportError):
            raise answer
        return answer[0], orjson.dumps(answer[1])

    async def aclose(self) -> None:
        return None


class Waits:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


async def new_number(store: Store) -> Instance:
    tag = uuid.uuid4().hex[:10]
    return await store.instances.upsert(f"pn-{tag}", f"biz-{tag}", f"token-{tag}")


OUTAGES = [
    TransportError("connection refused", timeout=False),
    graph_error(503, 2),
    graph_error(500, 1),
    graph_error(400, 80008),  # too many calls to the WABA: a throttle
]


@pytest.mark.parametrize("outage", OUTAGES, ids=["network", "503", "500", "throttle"])
async def test_an_outage_at_start_is_retried_and_not_recorded_unreadable(
    store: Store, outage: Answer
) -> None:
    instance = await new_number(store)
    graph, waits = ScriptedGraph([outage, outage]), Waits()
    client = MetaClient("http://graph.invalid", "v23.0", transport=graph)
    facts = await read_number_facts(client, store, instance, "token", sleep=waits)
    assert graph.reads == 3
    assert waits.slept == list(RETRY_DELAYS_S[:2])
    assert facts.limit_source is LimitSource.GRAPH_API
    portfolio = await store.portfolios.get(instance.business_id)
    assert portfolio is not None
    assert portfolio.detected_tier is MessagingTier.TIER_2K
    assert portfolio.limit_source is LimitSource.GRAPH_API


async def test_a_long_outage_sends_on_and_keeps_reading_in_the_background(
    store: Store,
) -> None:
    instance = await new_number(store)
    outage = graph_error(503, 2)
    graph, waits = ScriptedGraph([outage] * (len(RETRY_DELAYS_S) + 3)), Waits()
    client = MetaClient("http://graph.invalid", "v23.0", transport=graph)
    facts = await read_number_facts(client, store, instance, "token", sleep=waits)
    assert facts.outage  # bounded: the actor starts sending on what is on record
    assert graph.reads == len(RETRY_DELAYS_S) + 1
    assert 25 <= sum(waits.slept) <= 40
    portfolio = await store.portfolios.get(instance.business_id)
    assert portfolio is not None
    assert portfolio.limit_source is not LimitSource.UNREADABLE

    later = await keep_reading(client, store, instance, "token", sleep=waits)
    assert later.limit_source is LimitSource.GRAPH_API
    assert graph.reads == len(RETRY_DELAYS_S) + 4


async def test_a_definitive_error_makes_the_limit_unreadable_at_once(store: Store) -> None:
    instance = await new_number(store)
    graph, waits = ScriptedGraph([graph_error(401, 190)]), Waits()
    client = MetaClient("http://graph.invalid", "v23.0", transport=graph)
    facts = await read_number_facts(client, store, instance, "token", sleep=waits)
    assert (graph.reads, waits.slept) == (1, [])
    assert facts.limit_source is LimitSource.UNREADABLE
    portfolio = await store.portfolios.get(instance.business_id)
    assert portfolio is not None
    assert portfolio.limit_source is LimitSource.UNREADABLE
    assert "190" in (portfolio.limit_error or "")
