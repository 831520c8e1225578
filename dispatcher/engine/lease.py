"""The coordinator's side of the coordinator lease: take it, renew it, know when to stop.

The lease itself lives in Postgres (``store/fencing.py``, database time). Locally, a holder
counts itself active only until ``ttl_s`` after its last successful renewal on its own
clock: a coordinator cut off from Postgres (or paused) stops acting before a standby may
take over, and its claims are fenced in SQL anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from dispatcher.store.fencing import CoordinatorLeases

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Holds (or waits for) the coordinator lease for one ``holder`` id."""

    def __init__(
        self,
        leases: CoordinatorLeases,
        holder: str,
        *,
        ttl_s: float,
        renew_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases = leases
        self.holder = holder
        self._ttl_s = ttl_s
        self._renew_s = renew_s
        self._clock = clock
        self.epoch: int | None = None
        self.active = False
        self.new_term = False
        """The last :meth:`keep` began a new term (this holder had not the lease before)."""
        self.acquisitions = 0
        self.taken_by_other = False
        """Postgres answered that another holder has the lease (not merely: unreachable)."""
        self._valid_until = float("-inf")
        self._tried_at = float("-inf")

    async def keep(self) -> bool:
        """Take or renew the lease when due; whether this holder may act now."""
        self.new_term = False
        now = self._clock()
        if now - self._tried_at >= self._renew_s:
            self._tried_at = now
            try:
                epoch = await self._leases.acquire(self.holder, self._ttl_s)
            except Exception:  # Postgres away: act on until the local bound runs out
                log.exception("coordinator %s: renewing its lease failed", self.holder)
            else:
                self.taken_by_other = epoch is None
                self._valid_until = float("-inf") if epoch is None else now + self._ttl_s
                if epoch is not None and epoch != self.epoch:
                    self.epoch = epoch
                    self.acquisitions += 1
                    self.new_term = True
                    log.info("coordinator %s holds the lease (epoch %d)", self.holder, epoch)
        active = self._clock() < self._valid_until
        if self.active and not active:
            log.error("coordinator %s lost the lease: standing by", self.holder)
        self.active = active
        return active

    def valid(self) -> bool:
        """Still within the local bound of the last renewal (no round trip): checked between
        the phases of a round, so a round that outlives the lease stops writing."""
        self.active = self.active and self._clock() < self._valid_until
        return self.active

    def fence(self) -> tuple[str, int] | None:
        """What fenced statements check: (holder, epoch)."""
        return None if self.epoch is None else (self.holder, self.epoch)

    async def release(self) -> None:
        """Let a standby take over at once (a clean shutdown)."""
        self.active = False
        self._valid_until = float("-inf")
        await self._leases.release(self.holder)

    def stats(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "active": self.active,
            "epoch": self.epoch,
            "valid_for_s": round(max(0.0, self._valid_until - self._clock()), 1),
            "acquisitions": self.acquisitions,
        }
