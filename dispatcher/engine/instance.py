"""One number's worker: read its stream, send through the pipeline, write results in bulk, ack.

What an ``InstanceActor`` runs, without Ray. A batch is acknowledged only after every message
in it is settled AND written to Postgres: an ack before the write could lose results on a crash.

Each run is one incarnation with its own epoch (``store/fencing.py``): taking rows into its
hands and writing their results check the epoch in the same statement, and a worker that
finds itself replaced (its epoch is no longer current) stops sending at once. Rows a
replaced sender left ``sending`` are in doubt: this worker never resends them itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from dispatcher.engine.batch import Batch, BatchItem, send_body
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.pacing import Pacer
from dispatcher.engine.pipeline import (
    CampaignHold,
    Event,
    OutgoingMessage,
    PipelineConfig,
    SendPipeline,
    Suppress,
)
from dispatcher.engine.templates import CampaignTemplates, TemplateCache, UnknownVariantError
from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.client import MetaClient
from dispatcher.meta.error_codes import ErrorClass
from dispatcher.meta.render import RenderLimitError
from dispatcher.policies.backoff import Backoff
from dispatcher.queue.streams import Job, WorkQueue
from dispatcher.store import Store
from dispatcher.store.models import CampaignStatus, InstanceStatus, SendOutcome, SendResult

log = logging.getLogger(__name__)

MIN_BACKLOG = 10
START_RECLAIM_MAX_DELIVERIES = 1_000_000
"""At start-up a worker re-appends its stream's held batches, whatever their deliveries."""


@dataclass(slots=True)
class HeldJob:
    """A batch this worker holds: unsettled messages, and results not yet durable."""

    job: Job
    unsettled: int
    dead: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""


def _message(
    job: Job, batch: Batch, templates: CampaignTemplates, item: BatchItem, tag: CallbackTag
) -> OutgoingMessage:
    return OutgoingMessage(
        item.recipient_id,
        job.job_id,
        item.address,
        send_body(templates.pick(item.variant), item, tag),
        item.attempts,
        campaign_id=batch.campaign_id,
        retries=item.retries,
    )


def _unsendable(
    item: BatchItem, instance_id: UUID, error: RenderLimitError | UnknownVariantError
) -> SendResult:
    """A recipient whose own message breaks Meta's limits, or whose variant is none of the
    campaign's, fails alone, never sent."""
    why = "breaks a limit" if isinstance(error, RenderLimitError) else "has no template"
    return SendResult(
        item.recipient_id,
        SendOutcome.FAILED,
        datetime.now(UTC),
        instance_id=instance_id,
        attempts=item.attempts,
        error_message=f"not sent: the message {why} (see error_details)",
        error_details=str(error)[:500],
        retries=item.retries,
    )


def render(
    job: Job,
    batch: Batch,
    templates: CampaignTemplates,
    items: list[BatchItem],
    tag: CallbackTag,
    instance_id: UUID,
) -> tuple[list[OutgoingMessage], list[SendResult], list[SendResult]]:
    """The batch's send bodies, and the results of the recipients that fail unsent: (to
    send, over a limit, of no variant)."""
    messages: list[OutgoingMessage] = []
    over: list[SendResult] = []
    lost: list[SendResult] = []
    for item in items:
        try:
            messages.append(_message(job, batch, templates, item, tag))
        except RenderLimitError as exc:
            over.append(_unsendable(item, instance_id, exc))
        except UnknownVariantError as exc:
            lost.append(_unsendable(item, instance_id, exc))
    return messages, over, lost


READ_GRACE_S = 2.0
"""How long a stopping worker waits for the batch it is reading or starting (a blocking read
lasts 0.5 s; a start, a few round trips)."""


class InstanceWorker:
    """Sends one WhatsApp number's batches at the number's pace."""

    def __init__(
        self,
        *,
        instance_id: UUID,
        phone_number_id: str,
        throughput_mps: float,
        token: str,
        store: Store,
        queue: WorkQueue,
        client: MetaClient,
        config: EngineConfig | None = None,
        consumer: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        epoch: int | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.epoch = epoch
        """This incarnation's epoch; taken from Postgres when :meth:`run` starts if not given."""
        self.fenced = False
        """A newer incarnation took over: this one sends nothing more."""
        self._confirmed_at = float("-inf")
        self.in_doubt_found = 0
        """Rows of reclaimed batches that an earlier sender left in doubt."""
        self.instance_id = instance_id
        self.phone_number_id = phone_number_id
        self._store = store
        self._queue = queue
        self._consumer = consumer or f"instance-{instance_id}"
        self._clock = clock
        self.pacer = Pacer(throughput_mps, self.config.pacing, clock)
        self.pipeline = SendPipeline(
            instance_id=instance_id,
            phone_number_id=phone_number_id,
            token=token,
            client=client,
            pacer=self.pacer,
            backoff=Backoff(
                self.config.backoff_base_s, self.config.backoff_cap_s, self.config.max_attempts
            ),
            on_settled=self._settled,
            on_dead=self._dead,
            config=PipelineConfig(
                max_in_flight=self.config.max_in_flight,
                maintenance_pause_s=self.config.maintenance_pause_s,
            ),
            clock=clock,
            on_event=self._event,
            may_send=self._owns_work,
        )
        self._held: dict[str, HeldJob] = {}
        self._unstarted: list[Job] = []
        """Read from the stream, not yet handed to the pipeline (a start that failed)."""
        self._start_failed: set[str] = set()
        """Jobs whose hand-over may have committed before their start failed."""
        self._handing_over: str | None = None
        self._in_hand: set[int] = set()
        """Recipients given to the pipeline whose result is not written yet: whatever a
        retried start finds ``sending`` under this sender, these it must not send again."""
        self._results: list[tuple[str, SendResult]] = []
        self._flush_now = asyncio.Event()
        """Set when the pipeline ran out of work: its last results are written at once, so
        the campaign completes without waiting for the flush interval."""
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._reading = asyncio.Lock()
        """Held while a batch is read and started: an idle stop waits for a read under way."""
        self.started_at = clock()
        self.last_active = self.started_at
        """When this worker last took a batch or wrote results (clock time)."""
        self.written = 0
        self._tag: CallbackTag | None = None
        self.templates = TemplateCache(
            store.variants.templates,
            max_campaigns=self.config.template_cache_campaigns,
            max_bytes=self.config.template_cache_bytes,
        )
        self.unsendable = 0
        """Recipients failed without a send: their message broke one of Meta's limits."""

    # -- callbacks from the pipeline ----------------------------------------------------

    def _settled(self, message: OutgoingMessage, result: SendResult) -> None:
        self._results.append((message.job_id, result))
        self._flush_if_idle()

    def _dead(self, message: OutgoingMessage, result: SendResult) -> None:
        held = self._held.get(message.job_id)
        if held is not None:
            held.dead.append({"recipient_id": message.recipient_id, "address": message.address})
            held.reason = result.error_message or "retries exhausted"
        self._results.append((message.job_id, result))
        self._flush_if_idle()

    def _flush_if_idle(self) -> None:
        # Called from the send being settled, which the backlog still counts.
        if self.pipeline.backlog() <= 1 and not self._unstarted:
            self._flush_now.set()

    def _event(self, event: Event) -> None:
        """A campaign hold or a suppression: written in the background (the send path does
        not wait on Postgres); both writes are idempotent."""
        task = asyncio.create_task(self._apply_event(event))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _apply_event(self, event: Event) -> None:
        for _ in range(30):
            try:
                if isinstance(event, CampaignHold):
                    if await self._store.campaigns.hold(
                        event.campaign_id, event.reason, event.kind
                    ):
                        log.error(
                            "campaign %s held (%s): %s",
                            event.campaign_id,
                            event.kind,
                            event.reason,
                        )
                elif isinstance(event, Suppress):
                    instance = await self._store.instances.get(self.instance_id)
                    if instance is not None:
                        await self._store.suppressions.add(
                            instance.business_id, [event.address], event.reason, "131050"
                        )
                return
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:
                log.exception("instance %s: applying %s failed", self.phone_number_id, event)
                await asyncio.sleep(self.config.retry_after_s)

    # -- the loops ----------------------------------------------------------------------

    async def run(self) -> None:
        """Until stopped, fenced or the number is unusable; then its unsent work goes back to
        pending (not when fenced: the newer incarnation owns it)."""
        if self.epoch is None:
            self.epoch = await self._store.epochs.start(self.instance_id)
        self._confirmed_at = self._clock()
        log.info("instance %s: epoch %d", self.phone_number_id, self.epoch)
        self._tag = await self._store.secrets.callback_tag()
        self.pacer.assume_window_used()
        # A dead predecessor's batches come back to this stream. Never dead-lettered here: each
        # restart counts a delivery, and a batch dead-lettered at start would strand its rows
        # until the stale-row sweep; hand_over fences whatever the predecessor had in hand.
        await self._queue.recover_stuck(
            self.instance_id, min_idle_ms=0, max_deliveries=START_RECLAIM_MAX_DELIVERIES
        )
        sender = asyncio.create_task(self.pipeline.run(), name=f"send-{self.phone_number_id}")
        loops = [
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._touch_loop()),
            asyncio.create_task(self._epoch_loop()),
            asyncio.create_task(self._stopped_loop()),
        ]
        try:
            await sender
        finally:
            reader = loops[0]
            for task in loops[1:]:
                task.cancel()
            reading = False
            if self.fenced:
                # A read in flight may return a batch the stream gave our consumer name,
                # which the newer incarnation shares and will not read again: let it land,
                # so that _start hands it back, instead of stranding it until its
                # visibility timeout.
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(reader), READ_GRACE_S)
            else:
                # Not in the middle of a start: cancelled after its hand-over, a batch's
                # rows would stay ``sending`` in nobody's hands, in doubt for the next one.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reading.acquire(), READ_GRACE_S)
                    reading = True
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if reading:
                self._reading.release()
            await self._finish_background()
            await self._flush()
            if self.pipeline.halted is not None and not self.fenced:
                if self._results:
                    # Results not durable: acking now could lose them. The batches stay
                    # held, and whoever reclaims them checks Postgres first.
                    log.error(
                        "instance %s: %d results unwritten; its batches stay on the queue",
                        self.phone_number_id,
                        len(self._results),
                    )
                else:
                    await self._give_back()

    async def _finish_background(self) -> None:
        """Campaign holds and suppressions still being written get a bounded time to land:
        cancelled, a hold would be lost and the campaign keep sending a template Meta
        refuses, a suppression lost and the opted-out number messaged again."""
        if not self._background:
            return
        _, late = await asyncio.wait(set(self._background), timeout=self.config.shutdown_grace_s)
        for task in late:
            task.cancel()
        if late:
            log.error(
                "instance %s: %d hold/suppression writes unfinished after %.0fs; dropped",
                self.phone_number_id,
                len(late),
                self.config.shutdown_grace_s,
            )

    def _callback_tag(self) -> CallbackTag:
        if self._tag is None:
            raise RuntimeError("run() reads the tag before any batch")
        return self._tag

    def stop(self) -> None:
        self._stopping = True
        self.pipeline.stop()

    def stopping(self) -> bool:
        return self._stopping

    def idle(self, idle_s: float) -> bool:
        """Nothing held, waiting, in flight or unwritten, and no batch taken or result
        written for ``idle_s``. A halted or fenced worker is never idle: its state must stay
        visible (and its number unusable) until it is replaced."""
        return (
            not self._held
            and not self._unstarted
            and not self._results
            and not self._background
            and self.pipeline.backlog() == 0
            and self.pipeline.halted is None
            and not self.fenced
            and self._clock() - self.last_active >= idle_s
        )

    def held_jobs(self) -> list[str]:
        """Ids of the batches this worker holds now."""
        return list(self._held)

    async def stop_if_idle(self, idle_s: float) -> bool:
        """Stop if :meth:`idle`; checked again once no read is under way (a batch read just
        now is started, and this worker is busy again). Nothing is left in anyone's doubt:
        an idle worker holds no batch and no row."""
        if not self.idle(idle_s):
            return False
        async with self._reading:
            if not self.idle(idle_s):
                return False
            self.stop()
        log.info(
            "instance %s: idle for %.0fs; stopping (epoch %s)",
            self.phone_number_id,
            self._clock() - self.last_active,
            self.epoch,
        )
        return True

    async def _read_loop(self) -> None:
        # About one batch of this number's work in hand (a batch is batch_seconds of it): a
        # slow number must not hoard a campaign's tail while fast ones sit idle.
        low_water = max(MIN_BACKLOG, int(self.pacer.limit_mps * self.config.batch_seconds))
        while not self._stopping and self.pipeline.halted is None and not self.fenced:
            if self.pipeline.backlog() >= low_water or not self._owns_work():
                await asyncio.sleep(0.05)
                continue
            try:
                async with self._reading:
                    if self.stopping():  # an idle stop came while this read waited
                        break
                    if not self._unstarted:
                        jobs = await self._queue.read(
                            self.instance_id, self._consumer, count=1, block_ms=500
                        )
                        self._unstarted.extend(jobs)
                    # Even once fenced: _start hands a batch read meanwhile back to the
                    # stream for the newer incarnation (it shares our consumer name).
                    while self._unstarted:
                        job = self._unstarted[0]
                        await self._start(job, again=job.job_id in self._start_failed)
                        # By identity: the touch loop may have dropped a reclaimed one meanwhile.
                        self._unstarted[:] = [j for j in self._unstarted if j is not job]
                        self._start_failed.discard(job.job_id)
                        self._handing_over = None
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:
                # Redis or Postgres hiccuped: a batch read but not started is kept here and
                # started again once they answer (touched meanwhile), not left in the stream
                # until its visibility timeout. Whether its hand-over may have committed is
                # remembered: only then are rows it already holds its own to send.
                if self._unstarted and self._unstarted[0].job_id == self._handing_over:
                    self._start_failed.add(self._unstarted[0].job_id)
                self._handing_over = None
                log.exception("instance %s: reading work failed; retrying", self.phone_number_id)
                await asyncio.sleep(self.config.retry_after_s)

    async def _start(self, job: Job, *, again: bool = False) -> None:
        """Hand a batch read from the stream to the pipeline. ``again``: an earlier start of
        this very job failed, maybe after its hand-over committed (the answer lost): rows this
        sender already holds, and has in hand in no other batch, are then its to send."""
        self.last_active = self._clock()
        batch = Batch.from_json(job.batch)
        ids = [item.recipient_id for item in batch.items]
        status = await self._store.campaigns.status(batch.campaign_id)
        # Before any row moves: a failed read leaves them untouched, the start tried again.
        template = await self.templates.templates(batch.campaign_id)
        # Fenced first, even for a held campaign: rows an earlier sender left ``sending``
        # (maybe accepted by Meta) are marked in doubt, never given back to be sent again.
        self._handing_over = job.job_id
        handed = await self._store.recipients.hand_over(
            batch.claim_id, ids, self.instance_id, self.epoch
        )
        if handed.fenced:
            # Read after a newer incarnation took over (they share the consumer name): hand
            # it back for that one, appended again before the ack so it cannot be lost.
            await self._queue.enqueue(self.instance_id, job.batch)
            await self._queue.ack(self.instance_id, job.job_id)
            self._fence("taking a batch")
            return
        if handed.in_doubt:
            # An earlier sender may have sent these: the coordinator settles them by their
            # webhooks or the in-doubt policy. Not ours to resend.
            self.in_doubt_found += len(handed.in_doubt)
            log.warning(
                "instance %s: %d recipients of batch %s in doubt (their sender was replaced)",
                self.phone_number_id,
                len(handed.in_doubt),
                job.job_id,
            )
        moved = set(handed.moved)
        if again:
            # The first try's hand-over committed, its answer lost: those rows are ours,
            # unless this incarnation already has them in hand (sent or being sent).
            moved.update(set(handed.already_mine) - self._in_hand)
        if status is CampaignStatus.HELD:
            # Routed before its hold: nothing of it is sent; the rows just taken go back to
            # pending, no attempt used.
            await self._store.recipients.requeue_held(sorted(moved), self.instance_id, self.epoch)
            await self._queue.ack(self.instance_id, job.job_id)
            return
        items = [item for item in batch.items if item.recipient_id in moved]
        held = HeldJob(job, unsettled=len(items))
        self._held[job.job_id] = held
        if not items or template is None:  # no campaign, no rows: nothing to send
            await self._settle_job(job.job_id, held)
            return
        self._in_hand.update(item.recipient_id for item in items)
        self.pipeline.submit(self._messages(job, batch, template, items))

    def _messages(
        self, job: Job, batch: Batch, template: CampaignTemplates, items: list[BatchItem]
    ) -> list[OutgoingMessage]:
        """The batch's send bodies; a recipient whose message breaks a limit, or whose variant
        is none of the campaign's, is settled as failed at once (written with the batch's
        other results), the others go on."""
        messages, over, lost = render(
            job, batch, template, items, self._callback_tag(), self.instance_id
        )
        for failed, why in ((over, "their message breaks a limit"), (lost, "of no variant")):
            if not failed:
                continue
            self._results.extend((job.job_id, result) for result in failed)
            self.unsendable += len(failed)
            log.warning(
                "instance %s: %d recipients of campaign %s fail unsent, %s (%s)",
                self.phone_number_id,
                len(failed),
                batch.campaign_id,
                why,
                failed[0].error_details,
            )
        return messages

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.config.flush_interval_s)
            self._flush_now.clear()
            try:
                await self._flush()
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:  # an ack failed: the batch stays held and is retried
                log.exception("instance %s: settling batches failed", self.phone_number_id)
                await asyncio.sleep(self.config.retry_after_s)

    async def _flush(self) -> None:
        """Write results in one round trip, then ack the batches they settled."""
        if not self._results:
            return
        results, self._results = self._results, []
        try:
            changed = await self._store.outcomes.apply_results(
                [result for _, result in results], instance_id=self.instance_id, epoch=self.epoch
            )
            if changed == 0 and not await self._epoch_current():
                self._fence("writing results")
                return
        except Exception:
            self._results = results + self._results  # not durable: keep them, retry next time
            log.exception(
                "instance %s: writing %d results failed", self.phone_number_id, len(results)
            )
            return
        self.written += len(results)
        self._in_hand.difference_update(result.recipient_id for _, result in results)
        self.last_active = self._clock()
        done: list[str] = []
        for job_id, _ in results:
            held = self._held.get(job_id)
            if held is not None:
                held.unsettled -= 1
                if held.unsettled <= 0:
                    done.append(job_id)
        # Settled earlier but not acked (an ack failed) are retried here too.
        done.extend(j for j, h in self._held.items() if h.unsettled <= 0)
        for job_id in dict.fromkeys(done):
            held = self._held.get(job_id)
            if held is not None:
                await self._settle_job(job_id, held)

    async def _settle_job(self, job_id: str, held: HeldJob) -> None:
        if held.dead:
            await self._queue.dead_letter(
                self.instance_id, job_id, {**held.job.batch, "dead": held.dead}, held.reason
            )
        else:
            await self._queue.ack(self.instance_id, job_id)
        # Forgotten only once acked: a failed ack leaves it held, settled at the next flush.
        self._held.pop(job_id, None)

    async def _touch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.touch_interval_s)
            if not self._held and not self._unstarted:
                continue
            try:
                # Rows in Postgres first, whatever Redis says: a long outage (breaker open), or
                # a Redis that lost the batch, must not let the stale-row safety net or the
                # in-doubt sweep hand them to another sender while we still hold them.
                ids = [
                    item[0] for h in self._held.values() for item in h.job.batch.get("items", [])
                ]
                await self._store.recipients.keep_alive(ids)
                unstarted = [job.job_id for job in self._unstarted]
                held = await self._queue.touch(
                    self.instance_id, self._consumer, [*self._held, *unstarted]
                )
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:
                log.exception("instance %s: touching held batches failed", self.phone_number_id)
                continue
            # A batch not yet started that was reclaimed is another's now: not started here.
            # In place: the read loop holds this very list while it reads.
            pruned = [job for job in self._unstarted if job.job_id not in held]
            self._unstarted[:] = [job for job in self._unstarted if job.job_id in held]
            await self._give_back_unstarted(pruned)
            lost = set(self._held) - set(held)
            if lost:
                await self._lost(lost)

    async def _give_back_unstarted(self, pruned: list[Job]) -> None:
        """Jobs reclaimed from us before they started: if a failed start's hand-over may have
        committed, their rows are ``sending`` under this sender but were never sent; back to
        pending (only rows still ours and not in doubt move), or the copy of the batch that
        was reclaimed finds them out of its hands."""
        for job in pruned:
            if job.job_id not in self._start_failed:
                continue
            ids = [item[0] for item in job.batch.get("items", [])]
            try:
                await self._store.recipients.requeue_held(
                    [i for i in ids if i not in self._in_hand], self.instance_id, self.epoch
                )
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:  # Postgres away: the stale-row sweep gives them back later
                log.exception("instance %s: giving back a batch failed", self.phone_number_id)
                continue
            self._start_failed.discard(job.job_id)

    async def _lost(self, lost: set[str]) -> None:
        """Batches reclaimed from us: their waiting messages are dropped at once. If a newer
        incarnation took over, this one is fenced; if not (this loop stalled past the
        visibility timeout), the dropped rows go back to pending: none was sent, and the
        reclaimed entry finds them out of its claim."""
        dropped = self.pipeline.drop(lost)
        for job_id in lost:
            self._held.pop(job_id, None)
        log.warning(
            "instance %s: %d batches reclaimed from it; %d messages dropped unsent",
            self.phone_number_id,
            len(lost),
            len(dropped),
        )
        if not await self._epoch_current():
            self._fence("batches reclaimed")
        elif dropped:
            given_back = [m.recipient_id for m in dropped]
            await self._store.recipients.requeue_held(given_back, self.instance_id, self.epoch)
            self._in_hand.difference_update(given_back)

    # -- fencing ------------------------------------------------------------------------

    def _owns_work(self) -> bool:
        """Sends go out only while the epoch was confirmed recently: a process that was
        paused (SIGSTOP, a partition) checks before it sends anything more."""
        return not self.fenced and self._clock() - self._confirmed_at <= self.config.epoch_lease_s

    async def _epoch_current(self) -> bool:
        if self.epoch is None:
            raise RuntimeError("the epoch is checked before it is claimed")
        current = await self._store.epochs.current(self.instance_id, self.epoch)
        if current:
            self._confirmed_at = self._clock()
        return current

    async def _epoch_loop(self) -> None:
        while not self.fenced:
            await asyncio.sleep(self.config.epoch_check_interval_s)
            try:
                if not await self._epoch_current():
                    self._fence("epoch check")
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:  # Postgres away: sends pause once the epoch lease runs out
                log.exception("instance %s: checking its epoch failed", self.phone_number_id)

    def _fence(self, where: str) -> None:
        """A newer incarnation owns this number's work: drop ours, send nothing more. Its
        batches are not acked (the newer one reclaims them) and its results not written
        (they would be refused); the rows it left ``sending`` are in doubt there."""
        if self.fenced:
            return
        self.fenced = True
        dropped = self.pipeline.drop(set(self._held))
        self._held.clear()
        self._results.clear()
        self.pipeline.stop()
        log.error(
            "instance %s: epoch %s replaced (%s); stopped, %d messages dropped unsent",
            self.phone_number_id,
            self.epoch,
            where,
            len(dropped),
        )

    async def _stopped_loop(self) -> None:
        """Drop the unsent messages of cancelled campaigns: nothing more of them goes out.
        They go back to ``pending`` (never sent), and their batches settle as usual."""
        while True:
            await asyncio.sleep(self.config.stopped_check_s)
            campaigns = {UUID(h.job.batch["campaign_id"]) for h in self._held.values()}
            if not campaigns:
                continue
            try:
                stopped = await self._store.campaigns.stopped(list(campaigns))
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception:
                log.exception("instance %s: checking for cancels failed", self.phone_number_id)
                continue
            self.templates.forget(stopped)
            jobs = {j for j, h in self._held.items() if UUID(h.job.batch["campaign_id"]) in stopped}
            now = datetime.now(UTC)
            for message in self.pipeline.drop(jobs):
                result = SendResult(
                    message.recipient_id,
                    SendOutcome.REQUEUE,
                    now,
                    attempts=message.attempts,
                    retries=message.retries,
                )
                self._results.append((message.job_id, result))

    async def _give_back(self) -> None:
        """The number cannot send: its unsent work goes back to pending for other numbers."""
        error = self.pipeline.halted
        if error is None:
            raise RuntimeError("work given back from a number that is not halted")
        unsent = self.pipeline.take_unsent()
        ids = [m.recipient_id for m in unsent]
        requeued = (
            await self._store.recipients.requeue_held(ids, self.instance_id, self.epoch)
            if ids
            else 0
        )
        # Batches not started yet are still on the stream: give back their rows still queued
        # in their claim (a stale copy's rows may be in another sender's hands).
        while jobs := await self._queue.read(self.instance_id, self._consumer, count=50):
            for job in jobs:
                batch = Batch.from_json(job.batch)
                requeued += await self._store.recipients.requeue(
                    batch.claim_id, [item.recipient_id for item in batch.items]
                )
                self._held.setdefault(job.job_id, HeldJob(job, 0))
        for job_id in list(self._held):
            await self._queue.ack(self.instance_id, job_id)
            self._held.pop(job_id)
        status = "portfolio held" if error.error_class is ErrorClass.PORTFOLIO_HOLD else "stopped"
        await self._store.instances.set_status(
            self.instance_id, InstanceStatus.ERROR, f"{status}: {error}"[:300]
        )
        log.error(
            "instance %s %s; %d recipients given back to pending",
            self.phone_number_id,
            status,
            requeued,
        )

    # -- what the actor shows -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        pipeline, pacer = self.pipeline, self.pacer
        halted = pipeline.halted
        return {
            "instance_id": str(self.instance_id),
            "phone_number_id": self.phone_number_id,
            "state": "fenced"
            if self.fenced
            else "error"
            if halted is not None
            else ("stopping" if self._stopping else "running"),
            "epoch": self.epoch,
            "error": None if halted is None else str(halted),
            "error_class": None if halted is None else halted.error_class.value,
            "uptime_s": round(self._clock() - self.started_at, 1),
            "idle_for_s": round(self._clock() - self.last_active, 1),
            "configured_rate_mps": pacer.limit_mps,
            "current_rate_mps": round(pacer.current_rate(), 2),
            "bucket_tokens": round(pacer.bucket.tokens(), 3),
            "breaker": pacer.breaker.stats(),
            "sends_per_s": round(pipeline.sends_per_s(), 1),
            "sent": pipeline.stats.sent,
            "failed": pipeline.stats.failed,
            "retried": pipeline.stats.retried,
            "dead_lettered": pipeline.stats.dead,
            "in_doubt": pipeline.stats.in_doubt,
            "in_doubt_found": self.in_doubt_found,
            "dropped_unsent": pipeline.stats.dropped,
            "unsendable": self.unsendable,
            "templates_cached": len(self.templates),
            "errors_by_class": dict(pipeline.stats.errors_by_class),
            "errors_by_code": dict(pipeline.stats.errors_by_code),
            "last_error": None
            if pipeline.stats.last_error is None
            else {
                "code": pipeline.stats.last_error.code,
                "subcode": pipeline.stats.last_error.subcode,
                "message": pipeline.stats.last_error.message,
                "details": pipeline.stats.last_error.details,
                "error_class": pipeline.stats.last_error.error_class,
            },
            "paused_for_s": round(max(0.0, pipeline.paused_until - self._clock()), 1),
            "requeued": pipeline.stats.requeued,
            "backlog": pipeline.backlog(),
            "in_flight": pipeline.in_flight(),
            "batches_held": len(self._held),
            "results_unwritten": len(self._results),
            "pair_guard_tracked": len(pacer.pairs),
        }
