"""Every tunable of the sending engine, in one place, units in the names."""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatcher.engine.in_doubt import InDoubtBound
from dispatcher.engine.pacing import PacingConfig
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.transport import PoolConfig, TransportKind
from dispatcher.store.models import InDoubtPolicy


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Tunables shared by the coordinator and the instance actors."""

    batch_size: int = 500
    """The most recipients claimed and routed together (one stream entry)."""
    batch_seconds: float = 2.0
    """A batch holds about this many seconds of its number's sends (up to batch_size)."""
    tail_split: int = 4
    """Near a campaign's end a batch holds at most this fraction (1/tail_split) of the time
    its unrouted rest takes on all its numbers: the numbers finish together (engine/sizing.py)."""
    queued_batches_per_instance: int = 2
    """The coordinator keeps about this many batches waiting per instance: enough to never
    starve a number, few enough that a number going down strands little work."""
    empty_claims_per_round: int = 20
    """Claims a campaign's routing may make per round that route nothing (every row
    suppressed, or given back to wait for its own send window): a large list outside its
    recipients' windows is walked over a few rounds, without holding up other campaigns."""
    route_interval_s: float = 0.2
    """The coordinator's round (routing, recovery); a send routes at once, without waiting."""
    completion_check_s: float = 0.05
    """How often a campaign with nothing left to route is checked for completion: one cheap
    UPDATE, so ``completed`` follows the last result written by a fraction of a second."""
    recover_interval_s: float = 60.0
    visibility_timeout_s: float = 120.0
    """A batch held this long by a consumer that stopped touching it is reclaimed."""
    touch_interval_s: float = 20.0
    flush_interval_s: float = 0.25
    flush_max_results: int = 500
    epoch_check_interval_s: float = 2.0
    """How often an instance actor checks that its epoch is still its instance's current one
    (a replacement took over: it stops at once)."""
    epoch_lease_s: float = 8.0
    """An actor that could not confirm its epoch for this long (a pause, a partition from
    Postgres) sends nothing until it does: shorter than the fleet's replacement time, so a
    paused process that resumes never sends beside its replacement."""
    coordinator_lease_s: float = 10.0
    """The coordinator lease's lifetime: a standby coordinator takes over this long after
    the active one stopped renewing (it died, or lost Postgres)."""
    coordinator_lease_renew_s: float = 2.0
    """How often the active coordinator renews its lease (and a standby tries to take it)."""
    in_doubt_policy: InDoubtPolicy = InDoubtPolicy.RESEND
    """What an in-doubt send becomes when no webhook came within the bound (README,
    "In-doubt sends"): resend it (default: by then a webhook would almost surely have said
    Meta took it, and a loss is certain where a duplicate is only possible), or fail it."""
    in_doubt_min_wait_s: float = 30.0
    """An in-doubt send waits at least this long for its status webhook..."""
    in_doubt_webhook_margin_s: float = 20.0
    """...and until statuses of events this much later than it have been applied..."""
    in_doubt_max_wait_s: float = 300.0
    """...or at most this long, when no webhook traffic shows progress. Meta sends a
    message's ``sent`` status within seconds of taking it, so these bounds are minutes, not
    hours: a sender killed at a campaign's tail leaves its last batch waiting this long."""
    in_doubt_check_interval_s: float = 5.0
    gate_margin_s: float = 3600.0
    """A routed message may go out this long after its slot is reserved; the 24 h
    messaging-limit window is widened by it so the slot is never reused too early."""
    contacts_prune_interval_s: float = 300.0
    """How often the coordinator forgets portfolio contacts past the gate's window (24 h
    plus gate_margin_s): they no longer count, and the table would grow with every send."""
    contacts_prune_batch: int = 10_000
    """Contacts deleted per statement: short transactions, however large the backlog."""
    contacts_prune_max_batches: int = 20
    """Batches per round at most: a large backlog is worked off over several rounds."""
    stale_after_s: float = 1800.0
    """Recipients 'queued'/'sending' untouched this long lost their batch (a cleared queue)
    and go back to pending. Batches held by a live actor are kept alive (touch_interval_s)."""
    unreadable_limit: MessagingTier = MessagingTier.TIER_250
    """Assumed for a portfolio whose limit could not be read (DISPATCHER_UNREADABLE_LIMIT)."""
    stopped_check_s: float = 0.5
    """How often an instance actor asks whether the campaigns of the batches it holds were
    cancelled: their unsent messages are dropped, so nothing more goes out after a cancel."""
    gate_resync_s: float = 5.0
    """While a portfolio waits at its messaging limit, its gate is re-read from Postgres this
    often: slots of sends Meta never accepted (failed, requeued, rerouted) free up."""
    limits_refresh_s: float = 1.0
    """How soon a detected or overridden messaging limit reaches the coordinator's gates."""
    retry_after_s: float = 1.0
    """Pause before a worker loop retries after Redis or Postgres failed it."""
    retry_sweep_passes: int = 4
    """Reads of the retry inbox (``batch_size`` failures each) per coordinator round: a mass
    failure's backlog is decided over several rounds, routing goes on between them."""
    shutdown_grace_s: float = 10.0
    """At shutdown, how long an instance actor waits for its campaign-hold and suppression
    writes still in progress (they retry through an outage) before its final flush."""
    instance_idle_stop_s: float = 300.0
    """An instance actor with no work this long (nothing waiting on its stream, nothing held,
    in flight or in doubt, no send) is stopped: a number without work costs no process. The
    next work routed to it starts a new incarnation (DISPATCHER_INSTANCE_IDLE_STOP_S)."""
    idle_check_interval_s: float = 5.0
    """How often the coordinator looks for idle actors to stop, and for numbers with work on
    their stream but no actor (left by a stop, a restart, an operator's recover) to start."""
    facts_fresh_s: float = 3600.0
    """A number's facts read this recently (registration, a webhook, an earlier start) are
    not read again when its actor starts: actors come and go with the work, and Meta allows
    200 management calls an hour per WABA."""
    health_interval_s: float = 30.0
    stats_interval_s: float = 1.0
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 30.0
    max_attempts: int = 8
    max_in_flight: int = 64
    maintenance_pause_s: float = 60.0
    """131057 (number in maintenance, e.g. its throughput upgrade): Meta takes the number off
    the platform for up to a minute; it sends nothing for this long, fails nothing."""
    template_cache_campaigns: int = 64
    """Campaign templates an instance actor keeps (batches carry none: it reads a campaign's
    template from Postgres once, then from memory)."""
    template_cache_bytes: int = 32 * 2**20
    """...and about how many bytes of them (a template's components may be megabytes)."""
    winner_check_interval_s: float = 1.0
    """How often the coordinator judges the A/B campaigns waiting for an automatic winner
    (one query over their per-variant counters, none when no such campaign runs)."""
    transport: TransportKind = TransportKind.AIOHTTP
    pool: PoolConfig = field(default_factory=PoolConfig)
    pacing: PacingConfig = field(default_factory=PacingConfig)

    def in_doubt_bound(self) -> InDoubtBound:
        return InDoubtBound(
            self.in_doubt_min_wait_s, self.in_doubt_webhook_margin_s, self.in_doubt_max_wait_s
        )
