"""State snapshots in, alerts out: each condition alerts when it begins (edge-triggered).

Pure: the watch (``watch.py``) reads the state; the sender's dedup then keeps a condition
that flaps (a breaker opening, closing, opening again) to one alert per window. What this
process has not seen yet counts as new: after a restart a condition still in force (a held
campaign, a stopped number) alerts once more. An alert the sender hands back (it reached
nobody, or may not have: ``sender.py`` says when) is :meth:`AlertRules.rearm`-ed: its
condition counts as new again at the next snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.alerts.events import Alert, AlertKind
from dispatcher.policies.circuit_breaker import BreakerState
from dispatcher.store.attempts import REOPENED_FOR_RETRY
from dispatcher.store.models import Campaign, CampaignStatus, Instance, LimitSource

SPAM_RATE_LIMIT_CODE = 131048
"""Meta's spam rate limit (``meta/error_codes.py``): a throttle the number must not ignore."""
ERROR_STATE = "error"
"""An instance actor's state once its number cannot send (see ``InstanceWorker.stats``)."""


@dataclass(slots=True)
class Snapshot:
    """What the coordinator knows now, as the rules need it."""

    instance_stats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each instance actor's last stats, by instance id."""
    stopped_numbers: Sequence[Instance] = ()
    """Instances whose row is in status ``error`` (a 190, a block, an account_update)."""
    portfolios: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``CoordinatorCore.portfolio_stats()``."""
    held_campaigns: Sequence[Campaign] = ()
    finished_campaigns: Sequence[Campaign] = ()
    """Completed or failed recently (the watch's lookback)."""
    dead_letters: int = 0


class AlertRules:
    """Remembers what was in force at the last snapshot; :meth:`changes` says what began."""

    def __init__(self, dead_letters_threshold: int = 100) -> None:
        self.dead_letters_threshold = dead_letters_threshold
        self._stopped: set[str] = set()
        self._open: set[str] = set()
        self._spam: dict[str, int] = {}
        self._held_portfolios: set[str] = set()
        self._unreadable: set[str] = set()
        self._held_campaigns: set[str] = set()
        self._finished: set[tuple[str, datetime | None]] = set()
        self._dead_above = False

    def rearm(self, alert: Alert) -> None:
        """Forget that ``alert``'s condition was alerted: if it still holds at the next
        snapshot, it alerts again (the sender handed the alert back)."""
        subject = alert.subject
        match alert.kind:
            case AlertKind.NUMBER_STOPPED:
                self._stopped.discard(subject)
            case AlertKind.BREAKER_OPEN:
                self._open.discard(subject)
            case AlertKind.SPAM_THROTTLE:
                self._spam.pop(subject, None)
            case AlertKind.PORTFOLIO_HOLD:
                self._held_portfolios.discard(subject)
            case AlertKind.LIMIT_UNREADABLE:
                self._unreadable.discard(subject)
            case AlertKind.CAMPAIGN_HELD:
                self._held_campaigns.discard(subject)
            case AlertKind.CAMPAIGN_COMPLETED | AlertKind.CAMPAIGN_FAILED:
                self._finished = {seen for seen in self._finished if seen[0] != subject}
            case AlertKind.DEAD_LETTERS:
                self._dead_above = False

    def changes(self, snapshot: Snapshot) -> list[Alert]:
        return [
            *self._numbers(snapshot),
            *self._portfolios(snapshot.portfolios),
            *self._campaigns(snapshot),
            *self._dead_letters(snapshot.dead_letters),
        ]

    def _numbers(self, snapshot: Snapshot) -> Iterable[Alert]:
        stopped: dict[str, tuple[str, str]] = {}
        for row in snapshot.stopped_numbers:
            stopped[str(row.id)] = (row.phone_number_id, row.status_reason or "status error")
        opened: dict[str, Mapping[str, Any]] = {}
        for instance_id, stats in snapshot.instance_stats.items():
            phone = str(stats.get("phone_number_id", instance_id))
            if stats.get("state") == ERROR_STATE:
                reason = stats.get("error") or stats.get("error_class") or "stopped"
                stopped.setdefault(instance_id, (phone, str(reason)))
            breaker = stats.get("breaker")
            if isinstance(breaker, Mapping) and breaker.get("state") == BreakerState.OPEN.value:
                opened[instance_id] = stats
            codes = stats.get("errors_by_code")
            spam = int(codes.get(str(SPAM_RATE_LIMIT_CODE), 0)) if isinstance(codes, Mapping) else 0
            # A restarted actor counts from zero again: any rise over the last figure is new.
            if spam > self._spam.get(instance_id, 0):
                yield Alert.of(
                    AlertKind.SPAM_THROTTLE,
                    instance_id,
                    f"Spam rate limit on number {phone}",
                    "Meta answered 131048 (spam rate limit): the number slows down hard. "
                    "Check the template's quality and the audience.",
                    number=phone,
                    errors_131048=spam,
                )
            self._spam[instance_id] = spam
        for instance_id in stopped.keys() - self._stopped:
            phone, reason = stopped[instance_id]
            yield Alert.of(
                AlertKind.NUMBER_STOPPED,
                instance_id,
                f"Number {phone} stopped",
                f"It sends nothing until an operator acts: {reason}",
                number=phone,
                instance=instance_id,
            )
        for instance_id in opened.keys() - self._open:
            stats = opened[instance_id]
            phone = str(stats.get("phone_number_id", instance_id))
            breaker = stats["breaker"]
            yield Alert.of(
                AlertKind.BREAKER_OPEN,
                instance_id,
                f"Circuit breaker open on number {phone}",
                "Too many failed sends in a row: the number pauses its sends.",
                number=phone,
                failures_in_window=breaker.get("window_failures", "?"),
                retry_after_s=breaker.get("retry_after_s", "?"),
            )
        self._stopped, self._open = set(stopped), set(opened)

    def _portfolios(self, portfolios: Mapping[str, Mapping[str, Any]]) -> Iterable[Alert]:
        held = {b for b, p in portfolios.items() if p.get("held")}
        unreadable = {
            b for b, p in portfolios.items() if p.get("limit_source") == LimitSource.UNREADABLE
        }
        for business_id in sorted(held - self._held_portfolios):
            yield Alert.of(
                AlertKind.PORTFOLIO_HOLD,
                business_id,
                f"Portfolio {business_id} held by Meta",
                "131064: the portfolio's messaging is held; none of its numbers gets work "
                "until the hold ends and an operator releases it.",
                portfolio=business_id,
                reason=portfolios[business_id].get("hold_reason") or "131064",
            )
        for business_id in sorted(unreadable - self._unreadable):
            portfolio = portfolios[business_id]
            yield Alert.of(
                AlertKind.LIMIT_UNREADABLE,
                business_id,
                f"Messaging limit of portfolio {business_id} unreadable",
                "The Graph API would not give the portfolio's messaging limit: the dispatcher "
                "assumes a fallback limit. Set it by hand or fix the number's access.",
                portfolio=business_id,
                assumed_limit=portfolio.get("daily_limit") or portfolio.get("tier") or "?",
                error=portfolio.get("limit_error") or "-",
            )
        self._held_portfolios, self._unreadable = held, unreadable

    def _campaigns(self, snapshot: Snapshot) -> Iterable[Alert]:
        held = {str(c.id): c for c in snapshot.held_campaigns}
        for campaign_id in sorted(held.keys() - self._held_campaigns):
            campaign = held[campaign_id]
            yield Alert.of(
                AlertKind.CAMPAIGN_HELD,
                campaign_id,
                f"Campaign {campaign.name} held",
                campaign.status_reason or "held",
                campaign=campaign_id,
                hold=campaign.hold_kind or "-",
                pending=campaign.pending,
            )
        self._held_campaigns = set(held)
        recent: set[tuple[str, datetime | None]] = set()
        for campaign in snapshot.finished_campaigns:
            seen = (str(campaign.id), campaign.finished_at)
            recent.add(seen)
            if seen in self._finished:
                continue
            failed = campaign.status is CampaignStatus.FAILED
            again = not failed and campaign.status_reason == REOPENED_FOR_RETRY
            yield Alert.of(
                AlertKind.CAMPAIGN_FAILED if failed else AlertKind.CAMPAIGN_COMPLETED,
                str(campaign.id),
                # A late failure ran it again for a retry: its first completion was alerted
                # already; this one says it is the retries' end, not a repeat.
                f"Campaign {campaign.name} "
                f"{'failed' if failed else 'completed again' if again else 'completed'}",
                "its automatic retries after a late failure settled"
                if again
                else campaign.status_reason or ("failed" if failed else "every recipient settled"),
                campaign=str(campaign.id),
                recipients=campaign.total_recipients,
                sent=campaign.total_sent,
                failed=campaign.total_failed,
            )
        self._finished = recent  # only the lookback's: the set stays small

    def _dead_letters(self, dead: int) -> Iterable[Alert]:
        above = dead > self.dead_letters_threshold
        if above and not self._dead_above:
            yield Alert.of(
                AlertKind.DEAD_LETTERS,
                "campaigns",
                f"{dead} dead letters",
                f"The campaigns queue holds more than {self.dead_letters_threshold} dead "
                "letters: look at their errors, then retry_dlq or clear.",
                dead_letters=dead,
                threshold=self.dead_letters_threshold,
            )
        self._dead_above = above
