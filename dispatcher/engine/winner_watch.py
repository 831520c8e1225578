"""The automatic A/B winner, as the coordinator drives it: every ``winner_check_interval_s``,
each running campaign with ``auto_winner`` and no winner yet is checked for its next look
(``dispatcher/ab/winner.py``, pure), and a winner is recorded once in Postgres.

A look is judged once: the counters say cheaply whether the smallest variant's sends could
have reached the next look; then the sends at least ``read_after_s`` old are counted from
the campaign's rows (``Variants.matured``, at most every ``read_after_s / 10`` while they
fall short), and the look they reach, if not judged yet, is judged. Looks skipped (sends
arriving faster than the checks) only spend less of the error budget. Which looks were
judged is kept in memory: a restarted coordinator, or a standby taking over, may judge the
current look once more (one extra look per takeover, documented in the README).

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
from dispatcher.ab.settings import AbTest, AutoWinner
from dispatcher.ab.winner import Arm, decide, look_at, look_sends
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
        self._looked: dict[UUID, int] = {}
        """Per campaign, the last look judged (from 0)."""
        self._next_count: dict[UUID, float] = {}
        """Per campaign, when its matured sends may be counted again (clock time)."""
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
        rule = ab.auto_winner
        if rule is None:
            return None
        done = self._looked.get(campaign_id, -1)
        if done + 1 >= rule.max_looks:
            return None  # every look judged: the operator picks
        # Sends of any age bound the matured ones: below the next look, nothing to count.
        if _arms(ab, counts)[1] < look_sends(rule)[done + 1]:
            return None
        now = self._clock()
        if now < self._next_count.get(campaign_id, float("-inf")):
            return None
        arms, smallest = _arms(
            ab, await self._store.variants.matured(campaign_id, rule.read_after_s)
        )
        look = look_at(smallest, rule)
        if look is None or look <= done:
            self._next_count[campaign_id] = now + _recount_s(rule, self._interval_s)
            return None
        self._looked[campaign_id] = look
        decision = decide(arms, rule, ab.confidence, look)
        if decision is None:
            log.info(
                "campaign %s: look %d of %d at %d matured sends of its smallest variant: no "
                "winner yet",
                campaign_id,
                look + 1,
                rule.max_looks,
                smallest,
            )
            return None
        winner, added = await self._store.variants.record_winner(campaign_id, decision)
        self._decided.add(campaign_id)
        if not added:
            return None
        self.decisions += 1
        best = decision.figures["variants"][winner.variant]
        log.info(
            "campaign %s: variant %s wins at look %d (read rate %.3f of %d sent, z %.2f, p %.2g "
            "< %.2g); the rest of the campaign gets its template",
            campaign_id,
            best["label"],
            decision.figures["look"],
            best["read_rate"] or 0.0,
            best["sent"],
            winner.z,
            winner.p_value,
            decision.figures["alpha"],
        )
        return winner


def _arms(ab: AbTest, counts: Sequence[VariantCounts]) -> tuple[list[Arm], int]:
    """Every variant's arm (none sent yet: zero) and the smallest one's sends."""
    by_variant = {c.variant: c for c in counts}
    arms = []
    for index, variant in enumerate(ab.variants):
        c = by_variant.get(index, VariantCounts(index))
        arms.append(Arm(variant.label, c.sent, c.read))
    return arms, min(arm.sent for arm in arms)


def _recount_s(rule: AutoWinner, interval_s: float) -> float:
    """How long matured sends short of the next look wait to be counted again: a tenth of
    the maturation delay, so a look comes at most that late, and a campaign's rows are read
    at most ten times per look."""
    return max(interval_s, rule.read_after_s / 10)
