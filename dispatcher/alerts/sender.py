"""Posts alerts from a background task: a bounded queue, retries with backoff, 429s honoured.

:meth:`AlertSender.submit` never waits: the coordinator's loop hands an alert over and goes
on; when the queue is full the alert is dropped with a log line. What happens next depends
on what each service answered (:class:`Delivery`), because an alert raised again is posted
again:

- taken (2xx) by one service at least: done; the dedup window stands.
- certainly not delivered (connection refused, 5xx, 429), retried, then given up by every
  service: nobody saw it. Its window is let go and it waits in
  :meth:`AlertSender.take_rearmed` for the watch to raise its condition again if it still
  lasts: ``rearm_after_s`` after the first give-up, doubled after each further one, never
  longer than the dedup window.
- maybe delivered (a timeout, a connection cut mid-answer): not retried, since a slow
  service may well have taken the post. The window stands; the condition is raised again
  when the window ends, if it still lasts: at most one post per window, as if it had arrived.
- refused for good (a 4xx other than 429: a revoked webhook, a payload it will not take; or
  a payload we failed to build): never raised again while the condition lasts; posting it
  again would only be refused again.

A dropped alert was never on its way: re-armed at once, its window never began.

The webhook URLs are credentials: logs name the service, never the URL (an httpx error's
text carries it, so only its type is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from dispatcher.alerts.config import AlertConfig
from dispatcher.alerts.dedup import AlertDedup
from dispatcher.alerts.events import Alert
from dispatcher.alerts.formats import discord_payload, slack_payload

log = logging.getLogger(__name__)

FORMATS: dict[str, Callable[[Alert], dict[str, Any]]] = {
    "slack": slack_payload,
    "discord": discord_payload,
}


def retry_after_s(response: httpx.Response) -> float | None:
    """The wait a 429 asks for: the ``Retry-After`` header (seconds; Slack and Discord both
    send it), else Discord's JSON ``retry_after``."""
    header = response.headers.get("retry-after")
    if header is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(header))
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return max(0.0, float(response.json()["retry_after"]))
    return None


class MaskWebhookUrls(logging.Filter):
    """httpx logs each request's URL at INFO: on its logger, our webhook URLs show as
    ``<slack webhook>``. Other records pass untouched."""

    def __init__(self, targets: dict[str, str]) -> None:
        super().__init__()
        # As configured and as httpx prints it (host lowercased, default port dropped...).
        self._targets = [
            (service, form)
            for service, url in targets.items()
            for form in {url, _normalised(url)}
            if form
        ]

    def _mask(self, value: object) -> object:
        text = str(value)
        hit = False
        for service, url in self._targets:
            if url in text:
                text, hit = text.replace(url, f"<{service} webhook>"), True
        return text if hit else value

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._mask(arg) for arg in record.args)
        record.msg = self._mask(record.msg)
        return True


def _normalised(url: str) -> str:
    try:
        return str(httpx.URL(url))
    except (httpx.InvalidURL, ValueError, TypeError):
        return url


HTTPX_LOGGER = "httpx"

UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Errors raised before a byte of the request left: the service cannot have the post."""


class Delivery(enum.Enum):
    """What one service made of one alert, after its retries."""

    DELIVERED = "delivered"
    UNSENT = "certainly not delivered"
    """Connection refused, 5xx, 429: nobody saw it; worth raising again."""
    UNKNOWN = "maybe delivered"
    """A timeout or a broken answer after the request went out: the post may have arrived."""
    REFUSED = "refused for good"
    """A 4xx other than 429, or a payload we could not build: again would be refused again."""


def rearm_delay_s(give_ups: int, rearm_after_s: float, window_s: float) -> float:
    """How long after its ``give_ups``-th give-up in a row an unsent alert is raised again:
    ``rearm_after_s``, doubled each time, capped at the dedup window (a service down for
    hours costs one try per window, like an alert that went through)."""
    return min(rearm_after_s * 2.0 ** max(0, give_ups - 1), window_s)


class AlertSender:
    """One per coordinator process; :meth:`start` it inside the event loop."""

    def __init__(
        self,
        config: AlertConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._targets = config.targets
        self._client = client
        self._own_client = client is None
        self._sleep = sleep
        self.dedup = AlertDedup(config.dedup_window_s, clock)
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._mask = MaskWebhookUrls(self._targets)
        self._clock = clock
        self._rearm: dict[str, tuple[Alert, float]] = {}
        """Key -> (alert, when) of alerts nobody received, to be raised again from then."""
        self._give_ups: dict[str, int] = {}
        """Key -> give-ups in a row with every service unreached: the re-arm backs off."""
        self.posted = 0
        self.suppressed = 0
        self.dropped = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    def start(self) -> None:
        if self._task is None and self.enabled:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self.config.request_timeout_s)
            logging.getLogger(HTTPX_LOGGER).addFilter(self._mask)
            self._task = asyncio.create_task(self._run(), name="alert-sender")

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` unless its key was alerted within the window; never waits. True
        when queued."""
        if not self.enabled:
            return False
        if not self.dedup.allows(alert.key):
            self.suppressed += 1
            return False
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            self._rearm[alert.key] = (alert, self._clock())
            log.warning("alert queue full (%d): %s dropped", self._queue.maxsize, alert.key)
            return False
        self.dedup.admit(alert.key)  # on its way: the window starts now, not before the put
        self._rearm.pop(alert.key, None)
        return True

    def take_rearmed(self) -> list[Alert]:
        """Alerts nobody received whose condition may be raised again now (then forgotten
        here: raised again, they go through :meth:`submit` like any other)."""
        now = self._clock()
        due = [key for key, (_, when) in self._rearm.items() if when <= now]
        return [self._rearm.pop(key)[0] for key in due]

    async def drain(self) -> None:
        """Until every queued alert was posted or given up (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        logging.getLogger(HTTPX_LOGGER).removeFilter(self._mask)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                outcomes = [await self._post(service, alert) for service in self._targets]
            except Exception:  # a bug must not stop later alerts; its window stands
                log.exception("alert %s not posted", alert.key)
            else:
                self._settle(alert, outcomes)
            finally:
                # Cancelled (shutdown) too: drain() must not wait for it. A cancelled alert
                # is not settled: this process is going away, its re-arm with it.
                self._queue.task_done()

    def _settle(self, alert: Alert, outcomes: list[Delivery]) -> None:
        """Whether and when ``alert``'s condition is raised again (see the module docstring).
        One service that took it, or may have, is enough: raising it again would repeat it
        there."""
        key = alert.key
        if Delivery.DELIVERED in outcomes:
            self._give_ups.pop(key, None)
        elif Delivery.UNKNOWN in outcomes:
            self._give_ups.pop(key, None)
            ends = self.dedup.ends_at(key)
            when = self._clock() + self.dedup.window_s if ends is None else ends
            self._rearm[key] = (alert, when)
            log.warning(
                "alert %s may have arrived (timeout): raised again in %.0fs if it still holds",
                key,
                when - self._clock(),
            )
        elif Delivery.UNSENT in outcomes:
            give_ups = self._give_ups.get(key, 0) + 1
            self._give_ups[key] = give_ups
            if len(self._give_ups) > 1_000:  # long-gone conditions: keep those still waiting
                self._give_ups = {k: n for k, n in self._give_ups.items() if k in self._rearm}
            delay = rearm_delay_s(give_ups, self.config.rearm_after_s, self.dedup.window_s)
            self.dedup.forget(key)
            self._rearm[key] = (alert, self._clock() + delay)
            log.warning(
                "alert %s reached no service: raised again in %.0fs if it still holds",
                key,
                delay,
            )
        else:
            self._give_ups.pop(key, None)
            log.error("alert %s refused by every service: not raised again while it holds", key)

    async def _post(self, service: str, alert: Alert) -> Delivery:
        """Post to one service, retrying only what certainly did not arrive."""
        if self._client is None:
            raise RuntimeError("alert sender not started")
        try:
            payload = FORMATS[service](alert)
        except Exception:  # a bug in formatting: the next alert may format fine
            self.failed += 1
            log.exception("alert %s not posted to %s: no payload", alert.key, service)
            return Delivery.REFUSED
        delay = self.config.backoff_s
        for attempt in range(1, self.config.max_attempts + 1):
            wait: float | None = delay
            try:
                response = await self._client.post(self._targets[service], json=payload)
            except UNSENT_ERRORS as exc:
                problem, outcome = type(exc).__name__, Delivery.UNSENT
            except httpx.HTTPError as exc:  # sent, maybe taken: again could post it twice
                problem, outcome, wait = type(exc).__name__, Delivery.UNKNOWN, None
            else:
                if response.status_code < 300:
                    self.posted += 1
                    return Delivery.DELIVERED
                problem, outcome = f"HTTP {response.status_code}", Delivery.UNSENT
                if response.status_code == 429:
                    wait = retry_after_s(response) or delay
                elif response.status_code < 500:
                    # A bad payload or a revoked webhook: retrying cannot help.
                    wait, outcome = None, Delivery.REFUSED
            if wait is None or attempt == self.config.max_attempts:
                self.failed += 1
                log.error("alert %s not posted to %s: %s", alert.key, service, problem)
                return outcome
            log.info("alert %s to %s: %s, retry in %.1fs", alert.key, service, problem, wait)
            await self._sleep(min(wait, self.config.max_backoff_s))
            delay = min(delay * 2, self.config.max_backoff_s)
        return Delivery.UNSENT  # max_attempts < 1: nothing was tried
