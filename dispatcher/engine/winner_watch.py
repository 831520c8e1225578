"""The automatic A/B winner, as the coordinator drives it: every ``winner_check_interval_s``,
each running campaign with ``auto_winner`` and no winner yet is judged on its counters
(``dispatcher/ab/winner.py``, pure), and a winner is recorded once in Postgres.

Run under the coordinator's routing lock, before routing: every claim that starts after the
decision committed gives the winner's template to what it claims (the claim reads the
recorded winner in its own statement), so nothing claimed later goes out with another.
A restarted coordinator, or a standby taking over, finds the recorded winner: deciding again
changes nothing (``Variants.record_winner``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from uuid import UUID

from dispatcher.ab.report import VariantCounts, Winner
from dispatcher.ab.settings import AbTest
from dispatcher.ab.winner import Arm, decide
from dispatcher.store import Store
from dispatcher.store.models import Campaign

log = logging.getLogger(__name__)


class WinnerWatch:
    def __init__(
        self, store: Store, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._clock = clock
        self._last = float("-inf")
        self._decided: set[UUID] = set()
        self.decisions = 0
        """Winners this coordinator recorded."""

    def due(self) -> bool:
        return self._clock() - self._last >= self._interval_s

    async def check(self, running: Sequence[Campaign]) -> dict[UUID, Winner]:
        """Judge the running campaigns that wait for a winner; the winners recorded now."""
        self._last = self._clock()
        waiting: dict[UUID, AbTest] = {}
        for campaign in running:
            if campaign.ab_test is None or campaign.id in self._decided:
                continue
            ab = AbTest.from_json(campaign.ab_test)
            if ab.auto_winner is not None:
                waiting[campaign.id] = ab
        if not waiting:
            return {}
        undecided = await self._store.variants.undecided(list(waiting))
        # Those without counters yet wait; those absent with counters were decided before.
        recorded: dict[UUID, Winner] = {}
        for campaign_id, ab in waiting.items():
            counts = undecided.get(campaign_id)
            if counts is None:
                continue
            winner = await self._judge(campaign_id, ab, counts)
            if winner is not None:
                recorded[campaign_id] = winner
        return recorded

    async def _judge(
        self, campaign_id: UUID, ab: AbTest, counts: list[VariantCounts]
    ) -> Winner | None:
        if ab.auto_winner is None:
            return None
        by_variant = {c.variant: c for c in counts}
        arms = []
        for index, variant in enumerate(ab.variants):
            c = by_variant.get(index, VariantCounts(index))
            arms.append(Arm(variant.label, c.sent, c.read))
        decision = decide(arms, ab.auto_winner, ab.confidence)
        if decision is None:
            return None
        winner, added = await self._store.variants.record_winner(campaign_id, decision)
        self._decided.add(campaign_id)
        if not added:
            return None
        self.decisions += 1
        best = decision.figures["variants"][winner.variant]
        log.info(
            "campaign %s: variant %s wins (read rate %.3f of %d sent, z %.2f, p %.2g); the "
            "rest of the campaign gets its template",
            campaign_id,
            best["label"],
            best["read_rate"] or 0.0,
            best["sent"],
            winner.z,
            winner.p_value,
        )
        return winner
