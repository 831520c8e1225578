"""Posts alerts from a background task: a bounded queue, retries with backoff, 429s honoured.

:meth:`AlertSender.submit` never waits: the coordinator's loop hands an alert over and goes
on; when the queue is full the alert is dropped with a log line. A post that fails is
retried (5xx, 429, connection errors), then given up with a log line; nothing reaches the
caller. An alert dropped, or given up by every service, was never seen by anyone: its key
is not held back by the dedup window, and it waits in :meth:`AlertSender.take_rearmed` (at
once when dropped, ``rearm_after_s`` after a give-up) for the watch to raise its condition
again if it still lasts.

The webhook URLs are credentials: logs name the service, never the URL (an httpx error's
text carries it, so only its type is logged).
"""

from __future__ import annotations

import asyncio
import contextlib
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
            delivered = False
            try:
                for service in self._targets:
                    delivered = await self._post(service, alert) or delivered
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in formatting must not stop later alerts
                log.exception("alert %s not posted", alert.key)
            finally:
                if not delivered:
                    self._given_up(alert)
                self._queue.task_done()

    def _given_up(self, alert: Alert) -> None:
        """No service took ``alert``: not a reason to stay silent for a whole window. (One
        service that took it is enough: raising it again would repeat it there.)"""
        self.dedup.forget(alert.key)
        self._rearm[alert.key] = (alert, self._clock() + self.config.rearm_after_s)
        log.warning(
            "alert %s reached no service: raised again in %.0fs if it still holds",
            alert.key,
            self.config.rearm_after_s,
        )

    async def _post(self, service: str, alert: Alert) -> bool:
        """Post to one service with retries; False when given up."""
        if self._client is None:
            raise RuntimeError("alert sender not started")
        payload = FORMATS[service](alert)
        delay = self.config.backoff_s
        for attempt in range(1, self.config.max_attempts + 1):
            wait: float | None = delay
            try:
                response = await self._client.post(self._targets[service], json=payload)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            else:
                if response.status_code < 300:
                    self.posted += 1
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code == 429:
                    wait = retry_after_s(response) or delay
                elif response.status_code < 500:
                    wait = None  # a bad payload or a revoked webhook: retrying cannot help
            if wait is None or attempt == self.config.max_attempts:
                self.failed += 1
                log.error("alert %s not posted to %s: %s", alert.key, service, problem)
                return False
            log.info("alert %s to %s: %s, retry in %.1fs", alert.key, service, problem, wait)
            await self._sleep(min(wait, self.config.max_backoff_s))
            delay = min(delay * 2, self.config.max_backoff_s)
        return False
