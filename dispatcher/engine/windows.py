"""Send windows and expiry as the coordinator applies them when it routes.

- A campaign-zone window that is closed: the campaign is not claimed at all (its rows stay
  pending, untouched) until it opens: :meth:`WindowKeeper.closed_until`.
- A recipient-zone window: claimed rows whose own window is closed go back to pending with
  ``not_before`` at its next opening (:meth:`WindowKeeper.admit`); the claim's due index
  never walks them again before then, so a million rows waiting for their morning cost one
  pass, not one per round. A row that comes due for another reason (a retry's delay, set by
  the retry policy) meets the same check: it waits again, for its window.
- Past ``expires_at``, unsent rows end ``expired`` (:meth:`WindowKeeper.expire`), those of a
  paused or held campaign too (:meth:`WindowKeeper.expire_stopped`).

The window's clock is the coordinator's wall clock (``time.time``); ``not_before`` is
compared with the database's ``now()``. Both follow NTP: a skew between them only makes a
row come due a little early and be deferred again to the same opening, never sent outside
its window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from dispatcher.store import Store
from dispatcher.store.models import Campaign, CampaignStatus, Claim, ClaimedRecipient
from dispatcher.store.windows import Held
from dispatcher.windows import HORIZON, SendWindow
from dispatcher.zones import recipient_zones

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Waiting:
    """What of a campaign waits, as progress shows it."""

    count: int
    """Pending recipients that may not be sent now (outside their window, or a delay)."""
    until: datetime | None
    """When the first of them may be sent (the window's next opening); None: none waits."""


def window_of(campaign: Campaign) -> SendWindow | None:
    return None if campaign.send_window is None else SendWindow.from_json(campaign.send_window)


def waiting(campaign: Campaign, held: Held | None, now: datetime) -> Waiting:
    """A campaign's waiting recipients: every pending one while its campaign-zone window is
    closed (they are not claimed at all), else those whose ``not_before`` is ahead."""
    window = window_of(campaign)
    if (
        window is not None
        and not window.per_recipient
        and campaign.status is CampaignStatus.RUNNING
        and campaign.pending
    ):
        opening = window.next_opening(now)
        if opening != now:
            return Waiting(campaign.pending, opening)
    if held is None or not held.count:
        return Waiting(0, None)
    return Waiting(held.count, held.until)


class WindowKeeper:
    """The coordinator's window and expiry decisions for the campaigns it routes."""

    def __init__(self, store: Store, wall_clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._wall_clock = wall_clock
        self._windows: dict[UUID, SendWindow | None] = {}
        """Parsed once per campaign: a window never changes once the campaign exists."""
        self.deferred = 0
        """Recipients given back to wait for their own window (recipient zones)."""
        self.expired = 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), UTC)

    def window(self, campaign: Campaign) -> SendWindow | None:
        if campaign.id not in self._windows:
            self._windows[campaign.id] = window_of(campaign)
        return self._windows[campaign.id]

    def closed_until(self, campaign: Campaign) -> datetime | None:
        """When a campaign-zone window that is closed now opens; None: it may be routed
        (no window, open now, or one per recipient, checked row by row)."""
        window = self.window(campaign)
        if window is None or window.per_recipient:
            return None
        now = self.now()
        opening = window.next_opening(now)
        if opening == now:
            return None
        return opening or now + HORIZON

    async def admit(self, campaign: Campaign, claim: Claim) -> list[ClaimedRecipient]:
        """Of a claim, the recipients whose window is open now; the others go back to
        pending until their window's next opening (recipient-zone windows only)."""
        window = self.window(campaign)
        if window is None or not window.per_recipient:
            return claim.recipients
        now = self.now()
        openings: dict[tuple[tuple[ZoneInfo, ...], ZoneInfo | None], datetime | None] = {}
        admitted, deferred = [], []
        for recipient in claim.recipients:
            key = recipient_zones(recipient.address)
            if key not in openings:
                openings[key] = window.opening_for(now, *key)
            opening = openings[key]
            if opening == now:
                admitted.append(recipient)
            else:
                deferred.append((recipient.id, opening or now + HORIZON))
        if deferred:
            moved = await self._store.windows.defer(claim.claim_id, deferred)
            self.deferred += moved
            log.info(
                "campaign %s: %d recipients outside their window wait (first at %s)",
                campaign.id,
                moved,
                min(at for _, at in deferred).isoformat(),
            )
        return admitted

    async def expire(self, running: Iterable[Campaign]) -> set[UUID]:
        """End the unsent recipients of the running campaigns past their expiry; the ids
        of those campaigns (they complete once their last sends settle)."""
        now = self.now()
        past = set()
        for campaign in running:
            if campaign.expires_at is None or campaign.expires_at > now:
                continue
            past.add(campaign.id)
            expired = await self._store.windows.expire(campaign.id)
            if expired:
                self.expired += expired
                log.warning("campaign %s expired: %d recipients not sent", campaign.id, expired)
        return past

    async def expire_stopped(self) -> int:
        """End the unsent recipients of paused or held campaigns past their expiry (the
        database's clock): they could never be sent, and progress shows it now, not when the
        campaign is resumed (it then completes). How many."""
        expired = 0
        for campaign_id in await self._store.windows.stopped_past_expiry():
            count = await self._store.windows.expire(campaign_id)
            if count:
                expired += count
                log.warning(
                    "campaign %s (paused or held) expired: %d recipients not sent",
                    campaign_id,
                    count,
                )
        self.expired += expired
        return expired

    def keep(self, running: Iterable[UUID]) -> None:
        """Forget campaigns that no longer run."""
        keep = set(running)
        for campaign_id in list(self._windows):
            if campaign_id not in keep:
                del self._windows[campaign_id]
