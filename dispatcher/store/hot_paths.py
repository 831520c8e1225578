"""Every statement on the dispatcher's hot paths, as the repositories send it: one list.

``make bench-scale`` (``dispatcher/bench/pgscale.py``) reads their plans at 10 million
recipients, and ``tests/store/test_hot_path_plans.py`` at 200,000 with the same statistics
shape: none may read the recipients or the contacts table sequentially. Each entry calls
the real repository method (see :func:`dispatcher.store.plans.capture`), so the SQL checked
is the SQL shipped; a new hot-path statement belongs here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from dispatcher.store import Store
from dispatcher.store.attempts import Decided, FailedRow
from dispatcher.store.ingest import _MARK_DUPLICATES
from dispatcher.store.models import (
    CampaignStatus,
    InDoubtPolicy,
    RecipientStatus,
    SendOutcome,
    SendResult,
    StatusUpdate,
)
from dispatcher.store.plans import PlanSummary, capture, custom_plan, generic_plan

BATCH = 500
"""Rows per batch statement, as the engine sends them (EngineConfig.batch_size)."""
LEASE = ("bench-coordinator", 1)
"""The coordinator lease the sample database holds (holder, epoch)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Rows of a filled database the statements are run on (``dispatcher/bench/pg_data.py``)."""

    business_id: str
    """The big sender's portfolio (unlimited: its gate reads no window)."""
    limited_business_id: str
    """A portfolio at a limit, its window full: what a gate's rebuild reads."""
    instance_id: UUID
    epoch: int
    running: UUID
    """The big running campaign."""
    completed: UUID
    claim_id: int
    queued_ids: list[int]
    """A routed batch: ``queued`` in ``claim_id``."""
    sending_ids: list[int]
    """Held by ``instance_id`` at ``epoch``, not in doubt."""
    sent_ids: list[int]
    sent_wamids: list[str]
    middle_id: int
    """An id half-way through the running campaign: a deep keyset page."""
    queue_prefix: str
    lost_at: datetime
    watermark: int
    """The id the running campaign's last append started above (ingest's duplicates)."""
    failed_ids: list[int] = field(default_factory=list)
    """Failed rows of the running campaign, waiting in the retry inbox (a mass failure)."""


@dataclass(frozen=True, slots=True)
class HotPath:
    name: str
    call: Callable[[Store, Sample], Awaitable[object]]
    writes: bool = False
    owner: str | None = None
    """A branch that owns the code (report its plan, fix it there); None: this one."""


def _now() -> datetime:
    return datetime.now(UTC)


def _results(s: Sample) -> list[SendResult]:
    return [
        SendResult(i, SendOutcome.SENT, _now(), s.instance_id, 1, f"wamid.bench.{i}")
        for i in s.sending_ids[:BATCH]
    ]


def _by_wamid(s: Sample) -> list[StatusUpdate]:
    return [StatusUpdate(RecipientStatus.DELIVERED, _now(), w) for w in s.sent_wamids[:BATCH]]


def _by_tag(s: Sample) -> list[StatusUpdate]:
    return [
        StatusUpdate(RecipientStatus.READ, _now(), None, recipient_id=i) for i in s.sent_ids[:BATCH]
    ]


def _decided(s: Sample) -> list[Decided]:
    """The sweep's decisions on a batch of the inbox: retry each in an hour."""
    return [
        Decided(
            FailedRow(i, 0, s.running, CampaignStatus.RUNNING, None, RecipientStatus.FAILED, 0,
                      131049, None),
            3600.0,
        )
        for i in s.failed_ids[:BATCH]
    ]  # fmt: skip


def _later(s: Sample) -> list[tuple[int, datetime]]:
    return [(i, _now() + timedelta(hours=1)) for i in s.queued_ids]


STALE = timedelta(minutes=30)
IDLE = timedelta(seconds=40)

HOT_PATHS: list[HotPath] = [
    # Routing: claim, suppression check, hand-over, give-back.
    HotPath(
        "claim pending (batch)", lambda st, s: st.recipients.claim_pending(s.running, BATCH), True
    ),
    HotPath(
        "claim pending (leased)",
        lambda st, s: st.recipients.claim_pending(s.running, BATCH, lease=LEASE),
        True,
    ),
    HotPath(
        "suppression check",
        lambda st, s: st.suppressions.skip_suppressed(s.business_id, s.queued_ids),
        True,
    ),
    HotPath(
        "hand over (mark sending)",
        lambda st, s: st.recipients.hand_over(s.claim_id, s.queued_ids, s.instance_id, s.epoch),
        True,
    ),
    HotPath("requeue batch", lambda st, s: st.recipients.requeue(s.claim_id, s.queued_ids), True),
    HotPath(
        "requeue held",
        lambda st, s: st.recipients.requeue_held(s.sending_ids, s.instance_id, s.epoch),
        True,
    ),
    HotPath("keep alive", lambda st, s: st.recipients.keep_alive(s.sending_ids), True),
    HotPath("statuses of a batch", lambda st, s: st.recipients.statuses(s.queued_ids)),
    # Results and webhooks.
    HotPath(
        "apply send results",
        lambda st, s: st.outcomes.apply_results(
            _results(s), instance_id=s.instance_id, epoch=s.epoch
        ),
        True,
    ),
    HotPath(
        "webhook statuses by wamid", lambda st, s: st.outcomes.apply_statuses(_by_wamid(s)), True
    ),
    HotPath("webhook statuses by tag", lambda st, s: st.outcomes.apply_statuses(_by_tag(s)), True),
    HotPath("recipient by wamid", lambda st, s: st.recipients.by_wamid(s.sent_wamids[0])),
    HotPath("revive dead letters", lambda st, s: st.recipients.revive(s.sent_ids), True),
    # Listing and campaigns.
    HotPath("recipients page (first)", lambda st, s: st.recipients.page(s.running)),
    HotPath(
        "recipients page (deep)", lambda st, s: st.recipients.page(s.running, after_id=s.middle_id)
    ),
    HotPath(
        "recipients page (pending, deep)",
        lambda st, s: st.recipients.page(
            s.running, status=RecipientStatus.PENDING, after_id=s.middle_id
        ),
    ),
    HotPath(
        "recipients page (failed)",
        lambda st, s: st.recipients.page(s.running, status=RecipientStatus.FAILED),
    ),
    HotPath("running campaigns", lambda st, s: st.campaigns.running()),
    HotPath("campaign counters", lambda st, s: st.campaigns.get(s.running)),
    HotPath("complete if settled", lambda st, s: st.campaigns.complete_if_settled(s.running), True),
    HotPath("stopped campaigns", lambda st, s: st.campaigns.stopped([s.running, s.completed])),
    # Sweeps.
    HotPath(
        "in-doubt sweep (resolve)",
        lambda st, s: st.in_doubt.resolve(_now(), InDoubtPolicy.RESEND, None),
        True,
    ),
    HotPath("in-doubt count", lambda st, s: st.in_doubt.count()),
    HotPath(
        "stale queued sweep", lambda st, s: st.recipients.requeue_stale(s.running, STALE), True
    ),
    HotPath(
        "orphaned sending",
        lambda st, s: st.recovery.orphaned_sending(None, IDLE, None, [s.running]),
    ),
    HotPath("mark in doubt", lambda st, s: st.recovery.mark_in_doubt(s.sending_ids, IDLE), True),
    HotPath(
        "lost batches resolved", lambda st, s: st.recovery.resolved(s.queue_prefix, s.lost_at), True
    ),
    HotPath("requeue queued (rebuild)", lambda st, s: st.recovery.requeue_queued(), True),
    # Send windows and expiry (issue 15).
    HotPath("expire (pending, queued)", lambda st, s: st.windows.expire(s.running), True),
    HotPath("stopped past expiry", lambda st, s: st.windows.stopped_past_expiry()),
    HotPath("defer to the window", lambda st, s: st.windows.defer(s.claim_id, _later(s)), True),
    HotPath("waiting counts", lambda st, s: st.windows.waiting([s.running, s.completed])),
    # Automatic retry (issue 15).
    HotPath("retry inbox (undecided)", lambda st, s: st.attempts.undecided(BATCH)),
    HotPath("retry move (settle)", lambda st, s: st.attempts.settle(_decided(s)), True),
    HotPath("retry inbox count", lambda st, s: st.attempts.undecided_count(s.running)),
    HotPath("attempts of a recipient", lambda st, s: st.attempts.of_recipient(s.failed_ids[0])),
    # The portfolio's 24 h window.
    HotPath("contacts window", lambda st, s: st.portfolios.window(s.limited_business_id)),
    HotPath(
        "in flight for portfolio",
        lambda st, s: st.recipients.in_flight_for_portfolio(s.business_id),
    ),
    HotPath("prune contacts (batch)", lambda st, s: st.portfolios.prune_contacts(), True),
    # Ingest (branch sec-ingest owns it): the duplicates of an append.
    HotPath(
        "ingest: mark duplicates",
        lambda st, s: st.pool.execute(_MARK_DUPLICATES, s.running, s.watermark, True),
        True,
        owner="sec-ingest",
    ),
]


@dataclass(frozen=True, slots=True)
class HotPathPlan:
    path: HotPath
    custom: PlanSummary
    """Planned for the sample's values, executed (EXPLAIN ANALYZE) and rolled back."""
    generic: PlanSummary
    """Planned without the values, as a long-lived prepared statement may be."""

    @property
    def scans_big_table(self) -> bool:
        return self.custom.scans_big_table or self.generic.scans_big_table


async def plan_hot_paths(
    conn: asyncpg.Connection, sample: Sample, paths: Sequence[HotPath] = HOT_PATHS
) -> list[HotPathPlan]:
    """The plans of ``paths`` on the database ``conn`` is connected to; nothing is changed."""
    plans = []
    for path in paths:
        statement = await capture(lambda store, path=path: path.call(store, sample))  # type: ignore[misc]
        custom = await custom_plan(conn, statement)
        plans.append(HotPathPlan(path, custom, await generic_plan(conn, statement)))
    return plans
