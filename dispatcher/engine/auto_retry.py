"""The retry sweep: decides on every new failure with its campaign's retry policy.

Run by the coordinator each round (only the lease holder: one decider per database). Reads
the failures the database noted (``store/attempts.py``), asks the pure policy
(``dispatcher/retry_policy.py``) and settles them in one transaction per read. A retried row
waits as ``pending`` with ``not_before`` in the future: it holds no slot, no batch and no
actor, and it is claimed, gated and sent like a first send when it is due.

A round reads at most ``max_passes`` batches: after a mass failure (Meta away for an hour)
the backlog is decided over several rounds, and routing goes on between them.

A failure whose in-send retries ran out was also dead-lettered (``engine/retry.py``): once
the sweep moves it back to pending, its dead letter is deleted (when none of the letter's
recipients is still failed), so the dead-letter count and alert show only what still needs
an operator, and a later ``retry_dlq`` does not revive it a second time.
"""

from __future__ import annotations

import logging
from uuid import UUID

from pydantic import ValidationError

from dispatcher.queue.streams import WorkQueue
from dispatcher.retry_policy import Failure, RetryPolicy, decide
from dispatcher.store import Store
from dispatcher.store.attempts import Decided, FailedRow
from dispatcher.store.models import CampaignStatus, RecipientStatus

log = logging.getLogger(__name__)

RETRIED_FROM = frozenset(
    {CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.HELD, CampaignStatus.COMPLETED}
)
"""A cancelled or failed campaign retries nothing: its failures are final at once."""
NO_RETRY = RetryPolicy(rules=[])


class RetrySweep:
    """Decides and settles the failures noted since the last sweep."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue | None = None,
        *,
        batch: int = 500,
        max_passes: int = 4,
    ) -> None:
        self._store = store
        self._queue = queue
        """The dead letters of the retried exhausted failures are dropped from it (None: a
        store-only sweep, in tests)."""
        self._batch = batch
        self._max_passes = max_passes
        self.decided = 0
        self.retried = 0
        """Failures moved back to pending, since start."""
        self.reopened = 0
        self.dead_letters_dropped = 0
        self.behind = False
        """The last sweep stopped at ``max_passes`` with failures maybe left for the next."""

    async def sweep(self) -> int:
        """Settle the failures noted so far, a read at a time, at most ``max_passes`` reads;
        how many were retried."""
        retried = 0
        exhausted: set[int] = set()
        self.behind = False
        for _ in range(self._max_passes):
            rows = await self._store.attempts.undecided(self._batch)
            if not rows:
                break
            policies: dict[UUID, RetryPolicy] = {}
            decided = [Decided(row, self._delay(row, policies)) for row in rows]
            settled = await self._store.attempts.settle(decided)
            retried += len(settled.retried)
            moved = set(settled.retried)
            exhausted.update(
                d.row.recipient_id
                for d in decided
                if d.row.recipient_id in moved
                and Failure.of(d.row.error_code, d.row.error_message).exhausted
            )
            self.decided += len(rows)
            self.retried += len(settled.retried)
            self.reopened += len(settled.reopened)
            if settled.retried:
                log.info(
                    "retry sweep: %d of %d failures retried (%d campaigns reopened)",
                    len(settled.retried),
                    len(rows),
                    len(settled.reopened),
                )
            if len(rows) < self._batch:
                break
        else:
            self.behind = True
            log.info("retry sweep: %d reads this round, the rest next round", self._max_passes)
        if exhausted and self._queue is not None:
            self.dead_letters_dropped += await self._drop_dead_letters(self._queue, exhausted)
        return retried

    async def _drop_dead_letters(self, queue: WorkQueue, retried: set[int]) -> int:
        """Delete the dead letters naming ``retried`` rows whose recipients are none of them
        failed any more; how many."""
        dropped = 0
        for instance in await queue.instances():
            letters: list[tuple[str, list[int]]] = []
            async for page in queue.dead_letter_pages(instance):
                for letter in page:
                    ids = [int(d["recipient_id"]) for d in letter.batch.get("dead", [])]
                    if retried.intersection(ids):
                        letters.append((letter.dlq_id, ids))
            if not letters:
                continue
            statuses = await self._store.recipients.statuses(
                sorted({i for _, ids in letters for i in ids})
            )
            done = [
                dlq_id
                for dlq_id, ids in letters
                if all(statuses.get(i) is not RecipientStatus.FAILED for i in ids)
            ]
            dropped += await queue.drop_dead(instance, done)
        if dropped:
            log.info("retry sweep: %d dead letters of retried messages deleted", dropped)
        return dropped

    def _delay(self, row: FailedRow, policies: dict[UUID, RetryPolicy]) -> float | None:
        if row.campaign_status not in RETRIED_FROM:
            return None
        policy = policies.get(row.campaign_id)
        if policy is None:
            policy = policies[row.campaign_id] = _policy(row)
        return decide(policy, Failure.of(row.error_code, row.error_message), row.retries)


def _policy(row: FailedRow) -> RetryPolicy:
    try:
        return RetryPolicy.stored(row.retry_policy)
    except ValidationError:  # validated at creation; a rule tightened since: retry nothing
        log.warning("campaign %s: stored retry policy no longer valid", row.campaign_id)
        return NO_RETRY
