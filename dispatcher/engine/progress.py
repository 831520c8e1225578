"""Campaign progress as metrics see it: recipients by status and the send rate per campaign.

Pure (no I/O, injected clock): the coordinator hands it the running campaigns each stats
round, and the campaigns that left ``running`` since the last round, read once more; it
answers the samples to publish. A campaign that stopped running is published one last time
with its final figures (rate 0) and then forgotten, so the set of campaigns tracked is the
running ones: what the metrics' cardinality follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from dispatcher.store.models import Campaign

COUNTED = (
    "pending",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "duplicates",
    "suppressed",
    "invalid",
    "expired",
)
"""The ``status`` tag's values. ``sent`` / ``delivered`` / ``read`` / ``failed`` /
``duplicates`` / ``suppressed`` / ``invalid`` / ``expired`` are the campaign's counters
(``sent`` and ``failed`` count each recipient's current attempt: ``sent`` stays when a message
later fails for good, and both drop when a failed one is moved back to pending for an
automatic retry); ``pending`` / ``queued`` / ``sending`` are the recipients in that status
now."""


@dataclass(slots=True, frozen=True)
class CampaignSample:
    """One campaign's figures for one publication."""

    campaign_id: str
    total: int
    by_status: dict[str, int]
    send_rate_mps: float
    final: bool
    """Its last publication: it left ``running``."""


def counts(campaign: Campaign) -> dict[str, int]:
    return {
        "pending": campaign.pending,
        "queued": campaign.queued,
        "sending": campaign.sending,
        "sent": campaign.total_sent,
        "delivered": campaign.total_delivered,
        "read": campaign.total_read,
        "failed": campaign.total_failed,
        "duplicates": campaign.total_duplicates,
        "suppressed": campaign.total_suppressed,
        "invalid": campaign.total_invalid,
        "expired": campaign.total_expired,
    }


class CampaignProgress:
    """Send rate from the ``total_sent`` seen at successive rounds; which campaigns to show."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[UUID, tuple[float, int]] = {}
        """Tracked campaign -> (when, total_sent) at its last publication."""

    @property
    def tracked(self) -> set[UUID]:
        return set(self._last)

    def left(self, running: Iterable[Campaign]) -> set[UUID]:
        """Campaigns tracked that are no longer running: read them once more for their
        final publication."""
        return self.tracked - {c.id for c in running}

    def update(
        self, running: Iterable[Campaign], ended: Iterable[Campaign]
    ) -> list[CampaignSample]:
        """Samples of the running campaigns, then the final one of each ended campaign;
        ended campaigns are forgotten."""
        now = self._clock()
        samples = [self._sample(c, now, final=False) for c in running]
        for campaign in ended:
            samples.append(self._sample(campaign, now, final=True))
            self._last.pop(campaign.id, None)
        return samples

    def forget(self, campaign_ids: Iterable[UUID]) -> None:
        """Campaigns that vanished (deleted) before their final publication."""
        for campaign_id in campaign_ids:
            self._last.pop(campaign_id, None)

    def _sample(self, campaign: Campaign, now: float, *, final: bool) -> CampaignSample:
        previous = self._last.get(campaign.id)
        rate = 0.0
        if previous is not None and not final and now > previous[0]:
            rate = max(0, campaign.total_sent - previous[1]) / (now - previous[0])
        if not final:
            self._last[campaign.id] = (now, campaign.total_sent)
        return CampaignSample(
            campaign_id=str(campaign.id),
            total=campaign.total_recipients,
            by_status=counts(campaign),
            send_rate_mps=round(rate, 3),
            final=final,
        )
