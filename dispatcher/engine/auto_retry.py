"""The retry sweep: decides on every new failure with its campaign's retry policy.

Run by the coordinator each round (only the lease holder: one decider per database). Reads
the failures the database noted (``store/attempts.py``), asks the pure policy
(``dispatcher/retry_policy.py``) and settles them in one transaction per read. A retried row
waits as ``pending`` with ``not_before`` in the future: it holds no slot, no batch and no
actor, and it is claimed, gated and sent like a first send when it is due.
"""

from __future__ import annotations

import logging
from uuid import UUID

from pydantic import ValidationError

from dispatcher.retry_policy import Failure, RetryPolicy, decide
from dispatcher.store import Store
from dispatcher.store.attempts import Decided, FailedRow
from dispatcher.store.models import CampaignStatus

log = logging.getLogger(__name__)

RETRIED_FROM = frozenset(
    {CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.HELD, CampaignStatus.COMPLETED}
)
"""A cancelled or failed campaign retries nothing: its failures are final at once."""
NO_RETRY = RetryPolicy(rules=[])


class RetrySweep:
    """Decides and settles the failures noted since the last sweep."""

    def __init__(self, store: Store, batch: int = 500) -> None:
        self._store = store
        self._batch = batch
        self.decided = 0
        self.retried = 0
        """Failures moved back to pending, since start."""
        self.reopened = 0

    async def sweep(self) -> int:
        """Settle every failure noted so far, a read at a time; how many were retried."""
        retried = 0
        while True:
            rows = await self._store.attempts.undecided(self._batch)
            if not rows:
                return retried
            policies: dict[UUID, RetryPolicy] = {}
            decided = [Decided(row, self._delay(row, policies)) for row in rows]
            settled = await self._store.attempts.settle(decided)
            retried += len(settled.retried)
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
                return retried

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
