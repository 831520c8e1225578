"""One number's send loop: pace, send, classify, retry or settle. No Redis, no Postgres.

The instance worker feeds it messages and receives, through callbacks, each message's
settlement (sent, failed, or given back); the pipeline keeps every in-flight decision in
memory: no round trip per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from dispatcher.engine.first_sends import FirstSendsWatch
from dispatcher.engine.pacing import Pacer, Wait
from dispatcher.engine.retry import Action, RetryPolicy, RetryState, decide
from dispatcher.meta.client import MetaClient
from dispatcher.meta.error_codes import IN_DOUBT_ERROR, ErrorClass
from dispatcher.meta.messages import MetaError, SendOk
from dispatcher.policies.backoff import Backoff
from dispatcher.store.models import SendOutcome, SendResult

log = logging.getLogger(__name__)


@dataclass(slots=True)
class OutgoingMessage:
    """One message in an instance's hands."""

    recipient_id: int
    job_id: str
    address: str
    body: bytes
    attempts: int = 0
    """Sends tried so far, in earlier runs included."""
    throttled: int = 0
    previous_delay_s: float | None = None
    campaign_id: UUID | None = None
    retries: int | None = None
    """The row's automatic retries (its tag's attempt), carried into each result."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    max_in_flight: int = 64
    max_throttle_retries: int = 50
    """Throttle answers do not use up attempts, but a message is not retried forever."""
    idle_wake_s: float = 0.5
    maintenance_pause_s: float = 60.0
    """131057: how long the number pauses (Meta: up to a minute off the platform)."""


@dataclass(frozen=True, slots=True)
class LastError:
    """The last error Meta answered this number with, as the stats show it."""

    code: int | None
    subcode: int | None
    message: str
    details: str | None
    error_class: str


@dataclass(frozen=True, slots=True)
class CampaignHold:
    """A campaign must be held (its template cannot be sent, or its parameters are wrong)."""

    campaign_id: UUID
    reason: str
    kind: str
    """``template`` (released by the template status webhook) or ``parameters``."""


@dataclass(frozen=True, slots=True)
class Suppress:
    """The user stopped marketing messages (131050): suppress ``address`` for marketing."""

    address: str
    reason: str


Event = CampaignHold | Suppress


@dataclass(slots=True)
class PipelineStats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    in_doubt: int = 0
    """Sends whose answer never came (timeouts): settled as in doubt, not retried."""
    dropped: int = 0
    """Messages of batches this sender no longer owns, dropped unsent."""
    errors_by_class: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    requeued: int = 0
    """Given back to pending without an attempt (campaign held)."""
    last_error: LastError | None = None
    send_times: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


Settle = Callable[[OutgoingMessage, SendResult], None]
Dead = Callable[[OutgoingMessage, SendResult], None]
OnEvent = Callable[[Event], None]


class SendPipeline:
    """Sends one number's messages as fast as its pacer allows, never faster."""

    def __init__(
        self,
        *,
        instance_id: UUID,
        phone_number_id: str,
        token: str,
        client: MetaClient,
        pacer: Pacer,
        backoff: Backoff,
        on_settled: Settle,
        on_dead: Dead,
        config: PipelineConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_event: OnEvent | None = None,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.instance_id = instance_id
        self._may_send = may_send
        """False while this sender is not sure it still owns its work (see InstanceWorker)."""
        self.phone_number_id = phone_number_id
        self._token = token
        self._client = client
        self.pacer = pacer
        self._backoff = backoff
        self._on_settled = on_settled
        self._on_dead = on_dead
        self.config = config or PipelineConfig()
        self._clock = clock
        self._on_event = on_event or (lambda event: None)
        self._policy = RetryPolicy(
            backoff, self.config.max_throttle_retries, self.config.maintenance_pause_s
        )
        self.first_sends = FirstSendsWatch()
        self.paused_until = 0.0
        """131057: no send before this (clock time)."""
        self._ready: deque[OutgoingMessage] = deque()
        self._delayed: list[tuple[float, int, OutgoingMessage]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.config.max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.halted: MetaError | None = None
        """The per-instance (or portfolio) error that stopped this pipeline, if any."""
        self._given_back: list[OutgoingMessage] = []
        self.stats = PipelineStats()

    # -- feeding -------------------------------------------------------------------------

    def submit(self, messages: Iterable[OutgoingMessage]) -> None:
        self._ready.extend(messages)
        self._wake.set()

    def backlog(self) -> int:
        """Messages not settled: waiting, delayed or in flight."""
        return len(self._ready) + len(self._delayed) + len(self._in_flight)

    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Send until :meth:`stop` or a per-instance error; in-flight sends finish first."""
        try:
            while not self._should_stop():
                if (pause := self.paused_until - self._clock()) > 0:
                    await self._sleep(pause)
                    continue
                self._release_due()
                if not self._ready:
                    await self._idle()
                    continue
                message = self._ready[0]
                wait, seconds = self.pacer.next_wait(message.address)
                if wait is Wait.PAIR:
                    self._ready.popleft()
                    self._delay(message, seconds)
                    continue
                if wait is not Wait.NONE:
                    await self._sleep(seconds)
                    continue
                if not self._may_send():
                    await self._sleep(self.config.idle_wake_s)
                    continue
                await self._slots.acquire()
                if self._should_stop():  # changed while we waited for a slot
                    self._slots.release()
                    break
                if not self._ready or self._ready[0] is not message:  # dropped meanwhile
                    self._slots.release()
                    continue
                if not self._may_send() or not self.pacer.admit(message.address):
                    self._slots.release()
                    await self._sleep(self.config.idle_wake_s)
                    continue
                self._ready.popleft()
                task = asyncio.create_task(self._send(message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _should_stop(self) -> bool:
        return self._stopping or self.halted is not None

    def end_pause(self) -> None:
        """The number is back before its 131057 pause ran out (Meta's webhook said so)."""
        self.paused_until = 0.0
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def drop(self, job_ids: set[str]) -> list[OutgoingMessage]:
        """Forget the waiting and delayed messages of these batches (this sender no longer
        owns them); those dropped. Sends already in flight cannot be called back."""
        dropped = [m for m in self._ready if m.job_id in job_ids]
        dropped.extend(d[2] for d in self._delayed if d[2].job_id in job_ids)
        self._ready = deque(m for m in self._ready if m.job_id not in job_ids)
        self._delayed = [d for d in self._delayed if d[2].job_id not in job_ids]
        heapq.heapify(self._delayed)
        self.stats.dropped += len(dropped)
        return dropped

    def take_unsent(self) -> list[OutgoingMessage]:
        """After :meth:`run` returned: every message not settled, to give back."""
        unsent = [*self._given_back, *self._ready, *(m for _, _, m in self._delayed)]
        self._given_back.clear()
        self._ready.clear()
        self._delayed.clear()
        return unsent

    def sends_per_s(self, window_s: float = 5.0) -> float:
        now = self._clock()
        recent = sum(1 for t in self.stats.send_times if t > now - window_s)
        return recent / window_s

    # -- internals -----------------------------------------------------------------------

    async def _send(self, message: OutgoingMessage) -> None:
        try:
            result = await self._client.send_raw(self.phone_number_id, self._token, message.body)
        except Exception as exc:  # a surprise: the request may have left, so it is in doubt
            log.exception("instance %s: send raised", self.phone_number_id)
            result = MetaError(IN_DOUBT_ERROR, code=None, message=type(exc).__name__)
        finally:
            self._slots.release()
        now = self._clock()
        self.stats.send_times.append(now)
        if isinstance(result, SendOk):
            self.pacer.on_result(None, None, message.address)
            message.attempts += 1
            self.stats.sent += 1
            self._watch(message, bad_parameter=False)
            self._on_settled(message, self._result(message, SendOutcome.SENT, wamid=result.wamid))
        else:
            self._on_error(message, result)
        self._wake.set()

    def _on_error(self, message: OutgoingMessage, error: MetaError) -> None:
        rule = error.rule
        not_taken = error.code is None and (error.http_status or 0) >= 500
        self.pacer.on_result(rule.error_class, rule.throttle, message.address, not_taken=not_taken)
        self.stats.errors_by_class[rule.error_class.value] += 1
        self.stats.errors_by_code[
            str(error.code if error.code is not None else error.http_status)
        ] += 1
        if rule.error_class is ErrorClass.IN_DOUBT:
            # Meta may have taken it: its webhook or the in-doubt policy settles it, never
            # a resend from here.
            message.attempts += 1
            self.stats.in_doubt += 1
            self._on_settled(
                message,
                self._result(message, SendOutcome.IN_DOUBT, error_message=str(error)[:500]),
            )
            return
        self.stats.last_error = LastError(
            error.code, error.subcode, str(error)[:500], error.details, rule.error_class.value
        )
        decision = decide(
            rule,
            RetryState(message.attempts, message.throttled, message.previous_delay_s),
            self._policy,
            pair_wait_s=self.pacer.pairs.wait_time(message.address),
        )
        message.attempts, message.throttled = decision.attempts, decision.throttled
        action = decision.action
        if action is Action.RETRY_NOW:
            self._ready.appendleft(message)
        elif action is Action.RETRY_AFTER:
            if decision.delay_s is None:
                raise RuntimeError("RETRY_AFTER without a delay")
            if rule.error_class is not ErrorClass.THROTTLE:
                message.previous_delay_s = decision.delay_s
                self.stats.retried += 1
            self._delay(message, decision.delay_s)
        elif action is Action.PAUSE_NUMBER:
            if decision.delay_s is None:
                raise RuntimeError("PAUSE_NUMBER without a delay")
            if self.paused_until <= self._clock():
                log.warning(
                    "instance %s paused %.0fs: %s", self.phone_number_id, decision.delay_s, error
                )
            self.paused_until = max(self.paused_until, self._clock() + decision.delay_s)
            self._ready.appendleft(message)
        elif action is Action.HALT_INSTANCE:
            if self.halted is None:
                self.halted = error
                log.error(
                    "instance %s stopped: %s (%s)",
                    self.phone_number_id,
                    error,
                    rule.error_class.value,
                )
            self._given_back.append(message)
        elif action is Action.HOLD_CAMPAIGN:
            self._requeue(message, error)
            self._hold(message.campaign_id, f"template: {error}"[:300], "template", error)
        elif action is Action.FAIL:
            self.stats.failed += 1
            self._on_settled(message, self._failure(message, error))
            if rule.suppress:
                self._on_event(Suppress(message.address, str(error)[:300]))
            self._watch(message, bad_parameter=rule.bad_parameter, error=error)
        else:
            self._dead(message, error, decision.why)

    def _watch(
        self, message: OutgoingMessage, *, bad_parameter: bool, error: MetaError | None = None
    ) -> None:
        """Feed the campaign's first-sends watch; most of them bad parameters: hold it."""
        if message.campaign_id is None:
            return
        if self.first_sends.record(message.campaign_id, bad_parameter) and error is not None:
            reason = f"most of its first sends failed with a bad parameter: {error}"[:300]
            self._hold(message.campaign_id, reason, "parameters", error)

    def _hold(self, campaign_id: UUID | None, reason: str, kind: str, error: MetaError) -> None:
        """Give back every message of the campaign in hand (no attempt used) and tell the
        worker to hold it; nothing more of it is sent from here."""
        if campaign_id is None:
            return
        for queue in (self._ready,):
            keep = [m for m in queue if m.campaign_id != campaign_id]
            for held in (m for m in queue if m.campaign_id == campaign_id):
                self._requeue(held, error)
            queue.clear()
            queue.extend(keep)
        delayed = [entry for entry in self._delayed if entry[2].campaign_id != campaign_id]
        for _, _, held in (e for e in self._delayed if e[2].campaign_id == campaign_id):
            self._requeue(held, error)
        self._delayed = delayed
        heapq.heapify(self._delayed)
        self.first_sends.forget(campaign_id)
        self._on_event(CampaignHold(campaign_id, reason, kind))

    def _requeue(self, message: OutgoingMessage, error: MetaError) -> None:
        self.stats.requeued += 1
        self._on_settled(
            message,
            self._result(
                message,
                SendOutcome.REQUEUE,
                error_code=error.code,
                error_message=str(error)[:500],
            ),
        )

    def _dead(self, message: OutgoingMessage, error: MetaError, why: str) -> None:
        self.stats.dead += 1
        result = self._failure(message, error, prefix=f"{why}: ")
        self._on_dead(message, result)

    def _failure(self, message: OutgoingMessage, error: MetaError, prefix: str = "") -> SendResult:
        return self._result(
            message,
            SendOutcome.FAILED,
            error_code=error.code,
            error_message=(prefix + str(error))[:500],
        )

    def _result(
        self,
        message: OutgoingMessage,
        outcome: SendOutcome,
        *,
        wamid: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> SendResult:
        return SendResult(
            recipient_id=message.recipient_id,
            outcome=outcome,
            at=datetime.now(UTC),
            instance_id=self.instance_id,
            attempts=message.attempts,
            wamid=wamid,
            error_code=error_code,
            error_message=error_message,
            retries=message.retries,
        )

    def _delay(self, message: OutgoingMessage, seconds: float) -> None:
        heapq.heappush(self._delayed, (self._clock() + seconds, next(self._seq), message))

    def _release_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])

    async def _idle(self) -> None:
        timeout = self.config.idle_wake_s
        if self._delayed:
            timeout = min(timeout, max(0.0, self._delayed[0][0] - self._clock()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0.05:
            await asyncio.sleep(seconds)
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(seconds, self.config.idle_wake_s))
