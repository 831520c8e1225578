"""The coordinator's work, without Ray: drive campaigns, route batches, guard portfolios.

Claims pending recipients in batches, reserves new recipients against the business
portfolio's 24 h messaging limit (the limit is the portfolio's, shared by its numbers), and
appends each batch to the stream of a number that can take it. Marks campaigns completed when
nothing is left pending or in flight; recovers stuck work periodically; settles in-doubt sends
that no webhook settled (``engine/in_doubt.py``).

One coordinator per database is active: with a ``holder`` id, the core acts only while it
holds the coordinator lease (``store/fencing.py``), and its claims check the lease in the
same statement. Without one (tests, a single process) it is always active.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from dispatcher.engine.auto_retry import RetrySweep
from dispatcher.engine.batch import Batch
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.contacts import prune_contacts
from dispatcher.engine.dead_letters import give_back_reclaimed, retry_dead_letters
from dispatcher.engine.idle import IdleSweep
from dispatcher.engine.lease import LeaseKeeper
from dispatcher.engine.rate_cap import CampaignRateCaps
from dispatcher.engine.recovery import QueueRecovery, orphans_in_doubt
from dispatcher.engine.sizing import DEFAULT_RATE_MPS, batch_size
from dispatcher.engine.windows import WindowKeeper
from dispatcher.engine.winner_watch import WinnerWatch
from dispatcher.meta.error_codes import ErrorClass, Throttle
from dispatcher.meta.tiers import MessagingTier
from dispatcher.outages import is_outage
from dispatcher.policies.messaging_limit import DAY_S, MessagingLimitGate
from dispatcher.queue.streams import WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import (
    Campaign,
    CampaignStatus,
    ClaimedRecipient,
    Instance,
    InstanceStatus,
    LimitSource,
    Portfolio,
)

if TYPE_CHECKING:
    from dispatcher.alerts.watch import AlertWatch

log = logging.getLogger(__name__)


class InstanceFleet(Protocol):
    """The instance actors, as the coordinator needs them (Ray lives behind this)."""

    async def ensure(self, instance: Instance) -> None:
        """Get or create the actor serving ``instance`` (idempotent)."""
        ...

    def running(self) -> set[UUID]:
        """The instances with an actor now (a number without work has none)."""
        ...

    async def stop_idle(self, instance_id: UUID, idle_s: float) -> bool:
        """Stop the instance's actor if it has had no work for ``idle_s`` (the actor checks,
        in its own process); True once it stopped. Its stats stay, as ``stopped``."""
        ...

    def usable(self, instance_id: UUID) -> bool:
        """False when the actor reported its number cannot send (token, block...)."""
        ...

    def rate(self, instance_id: UUID) -> float | None:
        """The send rate the actor runs at now (after throttle cuts), if it reported one."""
        ...

    def error_class(self, instance_id: UUID) -> str | None:
        """The class of the error that stopped the actor's number, if one did."""
        ...

    async def redetect(self, instance_id: UUID) -> float | None:
        """Have the number's actor read its facts again (limit, throughput); its new rate."""
        ...

    async def throttle(self, instance_id: UUID, throttle: Throttle) -> bool:
        """Cut the actor's send rate as a throttle error on a send would (a webhook's
        ``value.errors[]``); False when no actor serves the instance here."""
        ...

    async def halt(self, instance: Instance) -> None:
        """Stop the number's actor (its in-flight sends finish and are written) and keep it
        unusable until :meth:`restart`: Meta stopped the number (an ``account_update``)."""
        ...

    async def restart(self, instance: Instance) -> None:
        """Replace the number's actor (new token, or back from an error or a halt)."""
        ...


@dataclass(slots=True)
class PortfolioState:
    gate: MessagingLimitGate
    blocked_until: float = 0.0
    """No new recipient fits before this (clock time): skip claiming for its numbers."""
    held: bool = False
    """Meta holds the portfolio (131064): none of its numbers gets work until one of them is
    registered again or an operator releases it. Kept in Postgres: it survives restarts."""
    hold_reason: str | None = None
    last_resync: float = -float("inf")
    tier: MessagingTier | None = None
    source: LimitSource | None = None
    """Where the limit in force came from (operator, graph_api, webhook, unreadable)."""
    limit_error: str | None = None


DRAIN_CONSUMER = "coordinator-drain"
HOLD_STATUS = "portfolio held"
"""How an instance actor's status reason begins when 131064 stopped its number."""


class CoordinatorCore:
    """Drives every running campaign; one per deployment (the named coordinator actor)."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        fleet: InstanceFleet,
        config: EngineConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        holder: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._fleet = fleet
        self.config = config or EngineConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self.lease = (
            None
            if holder is None
            else LeaseKeeper(
                store.leases,
                holder,
                ttl_s=self.config.coordinator_lease_s,
                renew_s=self.config.coordinator_lease_renew_s,
                clock=clock,
            )
        )
        """The coordinator lease, when ``holder`` names this coordinator; None: always active."""
        self.webhook_watermark: Callable[[], float | None] = lambda: None
        """The latest status event time applied (the webhook applier's), for in-doubt sends."""
        self._last_in_doubt = float("-inf")
        self.in_doubt_resolved = 0
        self._instances: dict[UUID, Instance] = {}
        self._portfolios: dict[str, PortfolioState] = {}
        self._stale_holds: set[UUID] = set()
        self._last_recover = clock()
        self._last_limits = clock()
        self._last_prune = -float("inf")
        self.recovery = QueueRecovery(store, queue, self.config, clock)
        self.idle = IdleSweep(store, queue, fleet, self.config, clock)
        self.windows = WindowKeeper(store, wall_clock)
        """Send windows and expiry (``engine/windows.py``)."""
        self.rate_caps = CampaignRateCaps(self.config.batch_seconds, clock)
        """Campaigns' ``max_per_minute`` (``engine/rate_cap.py``)."""
        self.retries = RetrySweep(
            store,
            queue,
            batch=self.config.batch_size,
            max_passes=self.config.retry_sweep_passes,
        )
        self.winners = WinnerWatch(store, self.config.winner_check_interval_s, clock)
        """Automatic A/B winners (``engine/winner_watch.py``)."""
        self.routed_batches = 0
        self.routed_recipients = 0
        self.deferred_recipients = 0
        self.ticks = 0
        """Rounds completed: lets an observer wait for the coordinator to have looked again."""
        self.suppressed_recipients = 0
        self._routing = asyncio.Lock()
        """One routing pass at a time: a send's immediate pass and the tick's would each
        top the same streams up from their own snapshot of the depths."""
        self._all_routed: set[UUID] = set()
        """Running campaigns with nothing left to claim: checked often for completion."""
        self.alerts: AlertWatch | None = None
        """Derives alerts from this state in a task of its own (``dispatcher/alerts/``)."""

    # -- lifecycle ----------------------------------------------------------------------

    async def start_campaign(self, campaign_id: UUID) -> bool:
        """draft / scheduled / paused -> running, and its first batches routed at once, not at
        the next tick; its numbers' actors start as work is routed to them (by the active
        coordinator only: a standby's would compete)."""
        campaign = await self._store.campaigns.get(campaign_id)
        if campaign is None:
            return False
        if not await self._store.campaigns.transition(campaign_id, CampaignStatus.RUNNING):
            return False
        await self.route_now(campaign_id)
        return True

    async def route_now(self, campaign_id: UUID) -> None:
        """Route one running campaign's work now (it was just sent or resumed)."""
        if not self.active or not self._still_active():
            return
        async with self._routing:
            try:
                campaign = await self._store.campaigns.get(campaign_id)
                if campaign is None or campaign.status is not CampaignStatus.RUNNING:
                    return
                await self._route(campaign, await self._stream_depths([campaign]))
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # The send took effect (the campaign runs); the next tick routes it.
                log.warning("campaign %s: routing at once failed (%s); next tick", campaign_id, exc)

    async def resume_campaign(self, campaign_id: UUID) -> bool:
        """paused / held -> running; a paused campaign that never started goes back to
        scheduled while its time is still to come: a resume must not start it early."""
        campaign = await self._store.campaigns.get(campaign_id)
        if campaign is None or campaign.status not in (CampaignStatus.PAUSED, CampaignStatus.HELD):
            return False
        if await self._store.campaigns.resume_scheduled(campaign_id):
            return True
        return await self.start_campaign(campaign_id)

    async def pause_campaign(self, campaign_id: UUID) -> bool:
        """running -> paused: nothing new is routed; batches already routed still go out."""
        return await self._store.campaigns.transition(campaign_id, CampaignStatus.PAUSED)

    async def cancel_campaign(self, campaign_id: UUID) -> bool:
        """Nothing more is sent: its routed batches lose their rows (back to ``pending``,
        out of their claim), and instance actors drop what they hold of it."""
        if not await self._store.campaigns.transition(campaign_id, CampaignStatus.CANCELLED):
            return False
        await self._store.recovery.requeue_queued([campaign_id])
        return True

    # -- the periodic work --------------------------------------------------------------

    async def tick(self) -> None:
        """One round: start due campaigns, route work, complete settled ones, recover. A
        standby (the lease is another's) does nothing but try to take the lease."""
        if not await self.keep_lease():
            return
        # Each phase writes; a round that outlives the lease (a slow recover, a pause) stops
        # at the next phase instead of writing on after a standby took over.
        await self.recovery.check()  # Redis lost its data: rebuild before routing into it
        if not self._still_active():
            return
        for campaign in await self._store.campaigns.due():
            await self.start_campaign(campaign.id)
        # Every round (a read of a table of new failures, empty most of the time), before
        # routing: a campaign whose last row failed completes once it is decided, and one
        # reopened for a retry is routed in this round.
        await self.retries.sweep()
        running = await self._store.campaigns.running()
        await self._resync_gates(only_blocked=True)
        async with self._routing:
            # Before routing, under its lock: what is claimed after a decision gets the winner.
            if self.winners.due():
                await self.winners.check(running)
            if not await self._route_all(running):
                return
        if self._clock() - self._last_limits >= self.config.limits_refresh_s:
            await self._refresh_limits()
        if self._clock() - self._last_recover >= self.config.recover_interval_s:
            if not self._still_active():
                return
            await self.recover(running)
        if not self._still_active():
            return
        if self.idle.due():
            await self.idle.sweep(await self._store.instances.all())
        if not self._still_active():
            return
        await self.recovery.sweep()  # before the policy: orphans of lost batches join it
        if self._clock() - self._last_in_doubt >= self.config.in_doubt_check_interval_s:
            await self.resolve_in_doubt()
        if self._clock() - self._last_prune >= self.config.contacts_prune_interval_s:
            self._last_prune = self._clock()
            await prune_contacts(self._store, self.config)
        if self.alerts is not None:
            self.alerts.poke()
        self.ticks += 1

    async def _route_all(self, running: list[Campaign]) -> bool:
        """Drain the streams of numbers that cannot send, route every running campaign,
        complete the settled ones. False when the lease ran out on the way."""
        depth = await self._stream_depths(running)
        for instance_id, waiting in depth.items():
            if not self._still_active():
                return False
            if waiting and not self._fleet.usable(instance_id):
                await self.drain(instance_id)
                depth[instance_id] = 0
        self._all_routed = {c.id for c in running if c.pending == 0}
        self._all_routed |= await self.windows.expire(running)
        await self.windows.expire_stopped()
        self.windows.keep(c.id for c in running)
        self.rate_caps.keep(c.id for c in running)
        for campaign in running:
            if not self._still_active():
                return False
            await self._route(campaign, depth)
            # The snapshot may be a tick old; the SQL checks the counters as they are now.
            if campaign.pending == 0:
                await self._complete(campaign.id)
        return True

    async def complete_settled(self) -> int:
        """Complete the campaigns with nothing left to route whose last results are written:
        run every ``completion_check_s``, so ``completed`` does not wait for a tick."""
        if not self._all_routed or not self._still_active():
            return 0
        return sum([await self._complete(campaign_id) for campaign_id in list(self._all_routed)])

    async def _complete(self, campaign_id: UUID) -> bool:
        if not await self._store.campaigns.complete_if_settled(campaign_id):
            return False
        self._all_routed.discard(campaign_id)
        log.info("campaign %s completed", campaign_id)
        return True

    # -- the lease ------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.lease is None or self.lease.active

    async def keep_lease(self) -> bool:
        """Whether this core may act now (see :class:`LeaseKeeper`); a new term starts from
        Postgres: whatever was cached came from before it, when another coordinator acted."""
        if self.lease is None:
            return True
        active = await self.lease.keep()
        if self.lease.new_term:
            self._instances.clear()
            self._portfolios.clear()
            self.rate_caps.clear()
        return active

    def lease_taken_by_other(self) -> bool:
        return self.lease is not None and self.lease.taken_by_other

    def _still_active(self) -> bool:
        return self.lease is None or self.lease.valid()

    def _lease(self) -> tuple[str, int] | None:
        return None if self.lease is None else self.lease.fence()

    def lease_stats(self) -> dict[str, Any]:
        if self.lease is None:
            return {"holder": None, "active": True}
        return self.lease.stats()

    # -- in-doubt sends -------------------------------------------------------------------

    async def resolve_in_doubt(self, campaign_ids: list[UUID] | None = None) -> int:
        """Apply the in-doubt policy to sends no webhook settled within the bound (of
        ``campaign_ids`` only, if given)."""
        self._last_in_doubt = self._clock()
        due = self.config.in_doubt_bound().due_before(self._wall_clock(), self.webhook_watermark())
        resolved = await self._store.in_doubt.resolve(
            datetime.fromtimestamp(due, UTC),
            self.config.in_doubt_policy,
            self._lease(),
            campaign_ids,
        )
        if resolved:
            self.in_doubt_resolved += resolved
            log.warning(
                "%d in-doubt sends got no status webhook: %s",
                resolved,
                self.config.in_doubt_policy.value,
            )
        return resolved

    async def recover(self, running: list[Campaign] | None = None) -> dict[str, int]:
        """Reclaim batches of dead consumers; give back recipients whose batch vanished.

        Batches the reclaim dead-letters are given back at once (unstarted rows to pending,
        ``sending`` rows nobody holds in doubt). Stale ``queued`` rows go back to pending;
        stale ``sending`` ones may have reached Meta: they are marked in doubt, never resent
        blindly."""
        self._last_recover = self._clock()
        reclaimed = await self._queue.recover_stuck(
            min_idle_ms=int(self.config.visibility_timeout_s * 1000)
        )
        dead = await give_back_reclaimed(self._store, self._queue, self.config, reclaimed.dead)
        stale = 0
        older = timedelta(seconds=self.config.stale_after_s)
        campaigns = running or await self._store.campaigns.running()
        for campaign in campaigns:
            stale += await self._store.recipients.requeue_stale(campaign.id, older)
        stale_in_doubt = await orphans_in_doubt(
            self._store, self.config, None, idle=older, campaign_ids=[c.id for c in campaigns]
        )
        await self._refresh_limits()
        await self._resync_gates()
        return {
            "requeued_batches": len(reclaimed.requeued),
            "dead": len(reclaimed.dead),
            "dead_requeued": dead["requeued"],
            "dead_in_doubt": dead["in_doubt"],
            "stale": stale,
            "stale_in_doubt": stale_in_doubt,
        }

    async def drain(self, instance_id: UUID) -> int:
        """Give back the batches waiting on the stream of a number that cannot send: their
        recipients go back to pending, to be routed to the campaign's other numbers."""
        requeued = 0
        while jobs := await self._queue.read(instance_id, DRAIN_CONSUMER, count=50):
            for job in jobs:  # before the ack: no loss
                batch = Batch.from_json(job.batch)
                ids = [i.recipient_id for i in batch.items]
                # Only rows still queued in its claim: a sender may have taken this batch
                # (a copy reclaimed after a restart) and be sending them.
                requeued += await self._store.recipients.requeue(batch.claim_id, ids)
            for job in jobs:
                await self._queue.ack(instance_id, job.job_id)
        if requeued:
            log.warning("instance %s cannot send: %d recipients rerouted", instance_id, requeued)
        return requeued

    async def retry_dead_letters(self, job_id: str | None = None) -> dict[str, Any]:
        """Dead-lettered work back to Postgres, routed again under new claims (see
        :func:`~dispatcher.engine.dead_letters.retry_dead_letters`)."""
        return await retry_dead_letters(self._store, self._queue, self.config, job_id)

    async def clear_queue(self) -> dict[str, int]:
        """Delete every batch and dead letter, and give their work back to Postgres at once:
        ``queued`` rows to pending now, ``sending`` ones once nobody holds them."""
        cleared = await self._queue.clear()
        rebuilt = await self.recovery.rebuild()
        return {"cleared": cleared, **rebuilt}

    # -- routing ------------------------------------------------------------------------

    async def _stream_depths(self, running: list[Campaign]) -> dict[UUID, int]:
        ids = {i for c in running for i in c.instance_ids}
        depths: dict[UUID, int] = {}
        for instance_id in ids:
            stats = await self._queue.stream(instance_id).stats()
            depths[instance_id] = stats.pending
        return depths

    async def _route(self, campaign: Campaign, depth: dict[UUID, int]) -> None:
        if self.windows.closed_until(campaign) is not None:
            return  # outside its window: its rows wait pending, unclaimed
        allowance = self.rate_caps.allowance(campaign.id, campaign.max_per_minute)
        if allowance == 0:
            return
        candidates = []
        for instance_id in campaign.instance_ids:
            instance = await self._instance(instance_id)
            if instance is None:
                continue
            # Before the usable check: the actor that met 131064 is unusable since.
            await self._note_hold(instance)
            if instance.status is not InstanceStatus.ACTIVE:
                continue
            if not self._fleet.usable(instance_id):
                continue
            candidates.append(instance)
        if not candidates:
            if campaign.pending:
                log.warning(
                    "campaign %s: no usable instance; %d wait", campaign.id, campaign.pending
                )
            return
        # Round by round, one batch per number that wants one: near the end, no number
        # takes the last small batches before the others had their turn.
        now = self._clock()
        rates = {i.id: self._rate(i) for i in candidates}
        # One number has nobody to share the tail with: whole batches to the end.
        total_rate = sum(rates.values()) if len(candidates) > 1 else 0.0
        remaining = campaign.pending
        wanting = list(candidates)
        empty_claims = 0
        while wanting:
            for instance in list(wanting):
                portfolio = await self._portfolio(instance.business_id)
                if (
                    portfolio.held
                    or portfolio.blocked_until > now
                    or depth.get(instance.id, 0) >= self.config.queued_batches_per_instance
                ):
                    wanting.remove(instance)
                    continue
                size = batch_size(
                    rates[instance.id],
                    remaining=remaining,
                    total_rate_mps=total_rate,
                    batch_seconds=self.config.batch_seconds,
                    max_size=self.config.batch_size,
                    tail_split=self.config.tail_split,
                )
                step = await self._route_batch(
                    campaign,
                    instance,
                    portfolio,
                    size if allowance is None else min(size, allowance),
                )
                if step is None:
                    self._all_routed.add(campaign.id)
                    return
                claimed, admitted = step
                if allowance is not None:  # capped: its bucket pays for what was routed
                    self.rate_caps.take(campaign.id, admitted)
                    allowance -= admitted
                    if allowance <= 0:
                        return
                remaining = max(0, remaining - claimed)
                if admitted:
                    depth[instance.id] = depth.get(instance.id, 0) + 1
                elif claimed:  # none admitted: the portfolio is at its limit
                    wanting.remove(instance)
                else:  # all suppressed, or waiting for their window: a bounded walk a round
                    empty_claims += 1
                    if empty_claims >= self.config.empty_claims_per_round:
                        return

    async def _route_batch(
        self,
        campaign: Campaign,
        instance: Instance,
        portfolio: PortfolioState,
        size: int,
    ) -> tuple[int, int] | None:
        """Claim up to ``size`` recipients and append those the portfolio's limit admits to
        the number's stream: (claimed, admitted), (0, 0) when all were suppressed; None when
        nothing is left to claim."""
        claim = await self._store.recipients.claim_pending(campaign.id, size, lease=self._lease())
        if claim is None:
            return None
        in_window = await self.windows.admit(campaign, claim)
        claimed = await self._skip_suppressed(instance.business_id, in_window)
        if not claimed:
            return 0, 0
        now = self._clock()
        by_address = {r.address: r for r in claimed}
        reservation = portfolio.gate.reserve([r.address for r in claimed])
        if reservation.deferred:
            held = [by_address[a].id for a in reservation.deferred]
            await self._store.recipients.requeue(claim.claim_id, held)
            self.deferred_recipients += len(held)
            portfolio.blocked_until = reservation.next_slot_at or now
            log.info(
                "portfolio %s at its messaging limit: %d recipients wait %.0fs",
                instance.business_id,
                len(held),
                portfolio.blocked_until - now,
            )
        admitted = [by_address[a] for a in reservation.admitted]
        if admitted:
            batch = Batch.from_claim(claim, admitted)
            try:
                await self._queue.enqueue(instance.id, batch.to_json())
            except Exception:
                # Redis away: no batch carries these rows. Back to pending now (best
                # effort: else the stale-row sweep does it) and their slots freed, so that
                # nothing waits half an hour for a batch that never was.
                portfolio.gate.release([r.address for r in admitted])
                with contextlib.suppress(Exception):
                    await self._store.recipients.requeue(claim.claim_id, [r.id for r in admitted])
                raise
            await self._fleet.ensure(instance)  # the number has work: it needs its actor
            self.routed_batches += 1
            self.routed_recipients += len(admitted)
        return len(claimed), len(admitted)

    async def _skip_suppressed(
        self, business_id: str, claimed: list[ClaimedRecipient]
    ) -> list[ClaimedRecipient]:
        """Claimed recipients minus those the business suppressed for marketing (their rows
        end ``suppressed``, never sent)."""
        skipped = set(
            await self._store.suppressions.skip_suppressed(business_id, [r.id for r in claimed])
        )
        if skipped:
            self.suppressed_recipients += len(skipped)
            log.info("business %s: %d suppressed recipients skipped", business_id, len(skipped))
        return [r for r in claimed if r.id not in skipped]

    def _rate(self, instance: Instance) -> float:
        """The number's send rate now: what its actor reports (after throttle cuts), else
        its registered throughput."""
        return self._fleet.rate(instance.id) or instance.throughput_mps or DEFAULT_RATE_MPS

    async def _instance(self, instance_id: UUID) -> Instance | None:
        instance = self._instances.get(instance_id)
        if instance is None:
            instance = await self._store.instances.get(instance_id)
            if instance is None:
                return None
            self._instances[instance_id] = instance
        return instance

    async def reload_instance(self, instance_id: UUID) -> Instance | None:
        """Read the instance row again (its status, token or limits changed); nothing else:
        a Meta-imposed 131064 hold stays (see :meth:`refresh_instance`)."""
        self._instances.pop(instance_id, None)
        instance = await self._store.instances.get(instance_id)
        if instance is not None:
            self._instances[instance_id] = instance
        return instance

    async def refresh_instance(self, instance_id: UUID) -> Instance | None:
        """The operator re-registered an instance: reload it; the caller replaces its actor.
        The operator acted on the number: its portfolio's hold ends."""
        instance = await self.reload_instance(instance_id)
        if instance is not None:
            await self.release_portfolio(instance.business_id)
        return instance

    async def release_portfolio(self, business_id: str) -> bool:
        """End a 131064 hold (the operator says Meta lifted it); False when none was held."""
        released = await self._store.holds.release(business_id)
        state = self._portfolios.get(business_id)
        if state is not None:
            released = released or state.held
            state.held, state.hold_reason = False, None
        # Their actors report the 131064 until they are restarted: that old report must not
        # hold the portfolio again.
        self._stale_holds.update(
            i.id
            for i in self._instances.values()
            if i.business_id == business_id
            and self._fleet.error_class(i.id) == ErrorClass.PORTFOLIO_HOLD.value
        )
        if released:
            log.warning("portfolio %s: hold released by the operator", business_id)
        return released

    async def release_held_numbers(self, business_id: str) -> list[Instance]:
        """Release the portfolio and make its numbers stopped by the hold active again; the
        caller restarts their actors (which still report the 131064)."""
        await self.release_portfolio(business_id)
        stopped = await self._store.instances.all(
            business_id=business_id, status=InstanceStatus.ERROR
        )
        back = []
        for instance in stopped:
            if self._fleet.error_class(instance.id) == ErrorClass.PORTFOLIO_HOLD.value or (
                instance.status_reason or ""
            ).startswith(HOLD_STATUS):
                await self._store.instances.set_status(instance.id, InstanceStatus.ACTIVE)
                refreshed = await self.refresh_instance(instance.id)
                if refreshed is not None:
                    back.append(refreshed)
        return back

    async def _note_hold(self, instance: Instance) -> None:
        """Meta answered 131064 to one of the portfolio's numbers: hold them all, durably."""
        if self._fleet.error_class(instance.id) != ErrorClass.PORTFOLIO_HOLD.value:
            self._stale_holds.discard(instance.id)  # restarted since: a new 131064 counts
            return
        if instance.id in self._stale_holds:
            return
        portfolio = await self._portfolio(instance.business_id)
        if portfolio.held:
            return
        reason = f"131064 on number {instance.phone_number_id}"
        await self._store.holds.hold(instance.business_id, reason)
        portfolio.held, portfolio.hold_reason = True, reason
        log.error(
            "portfolio %s held by Meta (131064): its numbers get no work", instance.business_id
        )

    async def _portfolio(self, business_id: str) -> PortfolioState:
        state = self._portfolios.get(business_id)
        if state is None:
            hold = await self._store.holds.get(business_id)
            portfolio, gate = await self._build_gate(business_id)
            state = self._portfolios.get(business_id)
            if state is not None:  # another task built it meanwhile: it may hold reservations
                return state
            state = self._portfolios[business_id] = PortfolioState(
                gate, held=hold is not None, hold_reason=None if hold is None else hold.reason
            )
            self._describe(state, portfolio)
            log.info(
                "portfolio %s: limit %s (%s), %d recipients in the window",
                business_id,
                state.tier.value if state.tier is not None else None,
                state.source or "not read yet",
                gate.used(),
            )
        return state

    async def _build_gate(self, business_id: str) -> tuple[Portfolio, MessagingLimitGate]:
        """A gate at the portfolio's limit in force, holding its accepted sends of the window
        and its sends in flight. The in-flight read is the last await: a caller that assigns
        the gate before awaiting again leaves no claim routed in between outside it."""
        portfolio = await self._store.portfolios.ensure(business_id)
        window = DAY_S + self.config.gate_margin_s
        tier = portfolio.tier_assuming(self.config.unreadable_limit)
        if tier.limit is None:
            # An unlimited gate tracks nobody: its window (millions of contacts for a large
            # sender) is not read. A lower limit later rebuilds the gate (apply_limit).
            return portfolio, MessagingLimitGate(None, window_s=window, clock=self._clock)
        history = await self._store.portfolios.gate_history(
            business_id, self._clock, window_s=window
        )
        history.extend(await self._in_flight(business_id))
        gate = MessagingLimitGate.from_history(
            tier.limit, history, window_s=window, clock=self._clock
        )
        return portfolio, gate

    def _describe(self, state: PortfolioState, portfolio: Portfolio) -> None:
        state.tier = portfolio.tier_assuming(self.config.unreadable_limit)
        state.source = portfolio.source
        state.limit_error = portfolio.limit_error

    async def _in_flight(self, business_id: str) -> list[tuple[str, float]]:
        """Routed but not sent yet: their slots are taken too (a restarted coordinator must
        not hand them out again)."""
        now = self._clock()
        in_flight = await self._store.recipients.in_flight_for_portfolio(business_id)
        return [(recipient, now - age) for recipient, age in in_flight]

    async def _resync_gates(self, *, only_blocked: bool = False) -> int:
        """Re-read each gate's window from Postgres (accepted sends and sends in flight):
        slots reserved for sends Meta never accepted (failed before acceptance, requeued,
        rerouted to another portfolio, dead-lettered) free up. Returns how many."""
        freed = 0
        now = self._clock()
        for business_id, state in list(self._portfolios.items()):
            if state.gate.limit is None:
                continue
            if only_blocked and (
                state.blocked_until <= now or now - state.last_resync < self.config.gate_resync_s
            ):
                continue
            state.last_resync = as_of = self._clock()
            window = await self._store.portfolios.window(
                business_id, DAY_S + self.config.gate_margin_s
            )
            in_flight = await self._store.recipients.in_flight_for_portfolio(business_id)
            holding = [recipient for recipient, _ in window + in_flight]
            released = state.gate.resync(holding, as_of)
            if released:
                state.blocked_until = 0.0
                freed += released
                log.info("portfolio %s: %d slots of unsent messages freed", business_id, released)
        return freed

    async def _refresh_limits(self) -> None:
        """Apply tier changes (detected by an instance actor, or overridden) to the gates."""
        self._last_limits = self._clock()
        holds = await self._store.holds.all()
        for business_id, state in list(self._portfolios.items()):
            # A hold set or released elsewhere (another process, an operator) applies here.
            hold = holds.get(business_id)
            state.held, state.hold_reason = hold is not None, None if hold is None else hold.reason
            portfolio = await self._store.portfolios.get(business_id)
            if portfolio is not None:
                await self.apply_limit(portfolio)

    async def apply_limit(self, portfolio: Portfolio) -> None:
        """Move the portfolio's gate to the limit now in force, at once (a webhook announced
        it, or a refresh found it); a portfolio not routed to yet is left for first use."""
        state = self._portfolios.get(portfolio.business_id)
        if state is None:
            return
        self._describe(state, portfolio)
        limit = portfolio.tier_assuming(self.config.unreadable_limit).limit
        if limit == state.gate.limit:
            return
        log.info(
            "portfolio %s: limit now %s (%s)",
            portfolio.business_id,
            "unlimited" if limit is None else limit,
            state.source,
        )
        if state.gate.limit is None:  # an unlimited gate tracked nobody: rebuild it
            # Built aside, then swapped in with no await between: routing keeps the same
            # state (and dict entry) throughout, and every claim routed before the rebuild's
            # in-flight read is in the new gate.
            _, state.gate = await self._build_gate(portfolio.business_id)
        else:
            state.gate.set_limit(limit)
        state.blocked_until = 0.0

    # -- what the coordinator shows ------------------------------------------------------

    def portfolio_stats(self) -> dict[str, dict[str, Any]]:
        return {
            business_id: {
                "daily_unique_used": state.gate.used() if state.gate.limit is not None else None,
                "daily_limit": state.gate.limit,
                "blocked_for_s": max(0, int(state.blocked_until - self._clock())),
                "tier": None if state.tier is None else state.tier.value,
                "limit_source": None if state.source is None else state.source.value,
                "limit_error": state.limit_error,
                "held": state.held,
                "hold_reason": state.hold_reason,
            }
            for business_id, state in self._portfolios.items()
        }
