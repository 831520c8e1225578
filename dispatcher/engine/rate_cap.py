"""A campaign's rate cap (``max_per_minute``): how many recipients the coordinator may route
for it now.

Pure (injected clock). One token bucket per capped campaign at ``max_per_minute / 60`` per
second holding at most ``batch_seconds`` of it (at least one message): routing takes one
token per recipient it appends to a stream, so batches of a capped campaign are small and
come as the tokens do. The numbers send a routed batch at once (the cap is below their
throughput), so sends follow routing within a batch.

Bound: in any window of t seconds at most ``max_per_minute * t / 60 + burst`` recipients
are routed, ``burst`` being ``max(1, max_per_minute * batch_seconds / 60)`` (in any minute,
the cap plus about 3 % at the default 2 s). A bucket starts EMPTY, so the bound holds across
a coordinator failover or restart too: the old coordinator's routes are within its bucket,
the new one's bucket earns its first token only after it took over (no second burst).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from uuid import UUID

from dispatcher.policies import Clock
from dispatcher.policies.token_bucket import TokenBucket


class CampaignRateCaps:
    """The buckets of the capped campaigns the coordinator routes."""

    def __init__(self, batch_seconds: float, clock: Clock = time.monotonic) -> None:
        self._batch_seconds = batch_seconds
        self._clock = clock
        self._buckets: dict[UUID, tuple[int, TokenBucket]] = {}

    def allowance(self, campaign_id: UUID, max_per_minute: int | None) -> int | None:
        """Recipients the campaign may route now (None: uncapped)."""
        if max_per_minute is None:
            return None
        return math.floor(self._bucket(campaign_id, max_per_minute).tokens() + 1e-9)

    def take(self, campaign_id: UUID, routed: int) -> None:
        """``routed`` recipients were appended (at most the allowance just read)."""
        entry = self._buckets.get(campaign_id)
        if entry is None or routed <= 0:
            return
        _, bucket = entry
        bucket.try_acquire(min(float(routed), bucket.tokens()))

    def wait_s(self, campaign_id: UUID) -> float:
        """Seconds until the campaign may route one more (0: now or uncapped)."""
        entry = self._buckets.get(campaign_id)
        if entry is None:
            return 0.0
        bucket = entry[1]
        return max(0.0, (1.0 - bucket.tokens()) / bucket.rate)

    def keep(self, running: Iterable[UUID]) -> None:
        """Forget the campaigns that no longer run."""
        keep = set(running)
        for campaign_id in list(self._buckets):
            if campaign_id not in keep:
                del self._buckets[campaign_id]

    def clear(self) -> None:
        """A new lease term: another coordinator may have routed meanwhile; start empty."""
        self._buckets.clear()

    def _bucket(self, campaign_id: UUID, max_per_minute: int) -> TokenBucket:
        entry = self._buckets.get(campaign_id)
        if entry is not None and entry[0] == max_per_minute:
            return entry[1]
        rate = max_per_minute / 60.0
        bucket = TokenBucket(rate, max(1.0, rate * self._batch_seconds), self._clock)
        bucket.try_acquire(bucket.burst)  # empty: see the module's bound
        self._buckets[campaign_id] = (max_per_minute, bucket)
        return bucket
