"""Signed status callbacks, batched like Meta's: sent, delivered, read, or failed.

Statuses follow the 2026 shape (Meta, "Status messages webhook reference":
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status,
and "Business-scoped user IDs", section "Status messages webhooks":
https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/):
``recipient_user_id`` (the BSUID) on every status but a failed one sent to a phone,
``recipient_id`` only when sent to a phone, ``recipient_parent_user_id`` when sent to a
parent BSUID, a ``contacts`` block for sent / delivered / read, ``pricing`` on sent and
delivered, no ``conversation`` (v24+), and ``biz_opaque_callback_data`` echoed as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from dispatcher.meta.signature import sign
from dispatcher.sandbox.audit import Audit
from dispatcher.sandbox.config import NumberConfig, WebhookConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message the sandbox accepted: what its statuses need."""

    number: NumberConfig
    wamid: str
    recipient: str
    callback_data: str | None
    fail_code: int | None
    """Fail with this code (after ``sent``) instead of delivering."""
    template: str = ""
    """The template's name: its read ratio may be its own (``read_ratio_by_template``)."""


FAILURES = {
    131026: (
        "Message undeliverable",
        "Unable to deliver message: the recipient cannot be reached.",
    ),
    # Meta's Error codes page (131050), text as in its status webhooks.
    131050: (
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
        "messages on WhatsApp from your business.",
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
        "messages on WhatsApp from your business.",
    ),
    131049: (
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "The business portfolio reached its messaging limit for the moving 24 h window.",
    ),
}


_COUNTRIES = (("55", "BR"), ("44", "GB"), ("91", "IN"), ("52", "MX"), ("34", "ES"), ("1", "US"))
PARENT_MARK = ".ENT."


def bsuid_for(recipient: str) -> str:
    """The sandbox's stable BSUID of a phone (or of a parent BSUID's member): a two-letter
    country code, a dot, digits (Meta's documented form, e.g. ``US.13491208655302741918``)."""
    if PARENT_MARK in recipient:
        country = recipient[:2]
    else:
        digits = recipient.lstrip("+")
        country = next((c for prefix, c in _COUNTRIES if digits.startswith(prefix)), "US")
    number = int.from_bytes(hashlib.sha256(recipient.encode()).digest()[:8], "big")
    return f"{country}.{number}"


VALUE_ERRORS = {
    130429: (
        "Rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number in a short period of time",
    ),
}
_CONTACT = "_contact"  # a status's contact, moved into the payload's contacts block


class WebhookSender:
    """Schedules each accepted message's statuses and POSTs the due ones in batches."""

    def __init__(
        self,
        config: WebhookConfig,
        audit: Audit,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._audit = audit
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - simulated delays, not secrets
        self._heap: list[tuple[float, int, str, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._retrying: set[asyncio.Task[None]] = set()

    def pending(self) -> int:
        """Statuses not delivered yet: scheduled, plus posts being retried."""
        return len(self._heap) + len(self._retrying)

    def schedule(self, message: Accepted) -> None:
        """Queue the statuses of one accepted message, each after its configured delay."""
        config = self.config
        now = self._clock()
        self._push(now + config.sent_delay_s, message, "sent")
        if message.fail_code is not None:
            self._push(now + config.delivered_delay_s, message, "failed")
            return
        delivered_at = now + config.delivered_delay_s
        # Reads are the recipient's doing (see WebhookConfig.read_ratio_by_template).
        ratio = config.read_ratio_by_template.get(message.template, config.read_ratio)
        read = self._rng.random() < ratio
        read_at = now + config.read_delay_s
        if config.out_of_order and self._rng.random() < 0.5:
            delivered_at, read_at = read_at, delivered_at
        skip_delivered = read and self._rng.random() < config.read_skips_delivered_ratio
        if not skip_delivered:
            self._push(delivered_at, message, "delivered")
        if read:
            self._push(read_at, message, "read")

    def _push(self, due: float, message: Accepted, status: str) -> None:
        heapq.heappush(
            self._heap,
            (due, next(self._seq), message.number.phone_number_id, self._status(message, status)),
        )

    def _status(self, message: Accepted, status: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"id": message.wamid, "status": status}
        recipient = message.recipient
        contact: dict[str, Any] = {"profile": {"name": "Sandbox User"}}
        if recipient.startswith("+") or recipient.isdigit():
            payload["recipient_id"] = contact["wa_id"] = recipient.lstrip("+")
            if status != "failed":  # Meta omits it on a failed message sent to a phone
                payload["recipient_user_id"] = contact["user_id"] = bsuid_for(recipient)
        elif PARENT_MARK in recipient:
            payload["recipient_user_id"] = contact["user_id"] = bsuid_for(recipient)
            payload["recipient_parent_user_id"] = contact["parent_user_id"] = recipient
        else:
            payload["recipient_user_id"] = contact["user_id"] = recipient
        if status != "failed":
            payload[_CONTACT] = contact
        if message.callback_data is not None:
            payload["biz_opaque_callback_data"] = message.callback_data
        if status == "failed" and message.fail_code is not None:
            title, details = FAILURES.get(
                message.fail_code, ("Message failed to send", f"error {message.fail_code}")
            )
            payload["errors"] = [
                {
                    "code": message.fail_code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": details},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        elif status in ("sent", "delivered"):
            payload["pricing"] = {
                "billable": True,
                "pricing_model": "PMP",
                "type": "regular",
                "category": "marketing",
            }
        return payload

    def start(self, numbers: dict[str, NumberConfig]) -> None:
        self._numbers = numbers
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._retrying):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def clear(self) -> None:
        self._heap.clear()
        for task in list(self._retrying):
            task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # the loop must outlive any one bad batch
                log.exception("webhook flush failed")

    async def flush(self) -> int:
        """POST every status that is due; the number of statuses taken off the schedule."""
        now = self._clock()
        due: dict[str, list[dict[str, Any]]] = defaultdict(list)
        taken = 0
        while self._heap and self._heap[0][0] <= now:
            _, _, phone_number_id, status = heapq.heappop(self._heap)
            due[phone_number_id].append(status)
            taken += 1
        if not taken or self.config.url is None:
            return taken
        posts = []
        for phone_number_id, statuses in due.items():
            if self.config.out_of_order:
                self._rng.shuffle(statuses)
            for start in range(0, len(statuses), self.config.batch_max):
                chunk = statuses[start : start + self.config.batch_max]
                posts.append(self._post(self._payload(phone_number_id, chunk), len(chunk)))
        if self.config.out_of_order:
            self._rng.shuffle(posts)
        await asyncio.gather(*posts)
        return taken

    def _payload(self, phone_number_id: str, statuses: list[dict[str, Any]]) -> bytes:
        timestamp = str(int(self._wall()))
        contacts: dict[str, dict[str, Any]] = {}
        for status in statuses:
            status["timestamp"] = timestamp
            contact = status.pop(_CONTACT, None)
            if contact is not None:
                contacts.setdefault(contact.get("user_id") or contact.get("wa_id", ""), contact)
        value: dict[str, Any] = {"messaging_product": "whatsapp", **self._metadata(phone_number_id)}
        if contacts:
            value["contacts"] = list(contacts.values())
        value["statuses"] = statuses
        return self._envelope(phone_number_id, value)

    def _metadata(self, phone_number_id: str) -> dict[str, Any]:
        number = self._numbers[phone_number_id]
        return {
            "metadata": {
                "display_phone_number": number.display_phone_number,
                "phone_number_id": number.phone_number_id,
            }
        }

    def _envelope(self, phone_number_id: str, value: dict[str, Any]) -> bytes:
        number = self._numbers[phone_number_id]
        entry = {
            "id": number.waba_id or number.business_id,
            "changes": [{"value": value, "field": "messages"}],
        }
        return orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})

    async def post_change(self, entry_id: str, field: str, value: dict[str, Any]) -> bool:
        """POST one operational webhook (not a status), signed, as Meta shapes it: one
        ``entry`` (the WABA) with one change. True when the endpoint took it."""
        if self.config.url is None:
            return False
        entry = {
            "id": entry_id,
            "time": int(self._wall()),
            "changes": [{"value": value, "field": field}],
        }
        body = orjson.dumps({"object": "whatsapp_business_account", "entry": [entry]})
        before = self._audit.webhook_failures
        await self._post(body, 0, retry=False)
        return self._audit.webhook_failures == before

    async def post_value_errors(self, phone_number_id: str, code: int) -> None:
        """POST at once a ``messages`` change with ``value.errors[]`` and no statuses: an
        error not tied to a message, such as an asynchronous 130429 (Meta, "Errors messages
        webhook reference":
        https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/errors)."""
        title, details = VALUE_ERRORS.get(code, ("Error", f"Error {code}"))
        error = {
            "code": code,
            "title": title,
            "message": title,
            "error_data": {"details": details},
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }
        value = {"messaging_product": "whatsapp", **self._metadata(phone_number_id)}
        value["errors"] = [error]
        number = self._numbers[phone_number_id]
        await self.post_change(number.waba_id or number.business_id, "messages", value)

    async def _post(self, body: bytes, count: int, *, retry: bool = True) -> None:
        for attempt in range(1, self.config.max_attempts + 1):
            if await self._try(body, count):
                return
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        if retry and self.config.retry_for_s > 0:
            # Meta keeps retrying a failed delivery (Webhooks overview: up to 7 days, less and
            # less often), alongside newer deliveries: in the background, not in the flush.
            task = asyncio.create_task(self._retry_later(body, count))
            self._retrying.add(task)
            task.add_done_callback(self._retrying.discard)
            return
        self._gave_up(count)

    async def _retry_later(self, body: bytes, count: int) -> None:
        deadline = time.monotonic() + self.config.retry_for_s
        delay = 1.0
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            if await self._try(body, count):
                return
            delay = min(delay * 2, 30.0)
        self._gave_up(count)

    async def _try(self, body: bytes, count: int) -> bool:
        if self.config.url is None:
            raise RuntimeError("webhook delivery without a URL")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s)
            )
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(self.config.app_secret, body),
        }
        try:
            async with self._session.post(self.config.url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status < 300:
                    self._audit.webhook_posts += 1
                    self._audit.webhook_statuses += count
                    return True
        except (aiohttp.ClientError, TimeoutError):
            pass
        return False

    def _gave_up(self, count: int) -> None:
        self._audit.webhook_failures += 1
        log.warning("webhook POST with %d statuses given up", count)
