"""Our tag in ``biz_opaque_callback_data``: which statuses are ours, unforgeably.

Another system may send from the same number with its own callback data (often a bare
number), and Meta sends its statuses to every app subscribed to the WABA. A status is ours
when its wamid is one we sent, or when its callback data is our tag: a prefix, the
recipient id, the attempt (the row's automatic ``retries`` when it was sent) and a short MAC
over them, keyed by the deployment's secret
(:meth:`dispatcher.store.secrets.Secrets.callback_key`). A bare number, another
deployment's tag or a forged one match nothing.

The attempt tells a late status of a retried attempt from one of the current attempt by the
row's own ``retries`` (``store/outcomes.py``), and lets the sandbox's audit tell an intended
retry from a message sent twice. Tags of the first format (``wcd1``, no attempt) are still
read: messages sent before the attempt was added may be in flight for days.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "wcd2"
"""Names the format, so a future format can be told apart: ``wcd2.{recipient}.{attempt}.{mac}``."""
PREFIX_V1 = "wcd1"
"""The first format, ``wcd1.{recipient}.{mac}``: read, and made only for a batch routed
before the attempt was carried."""
MAC_CHARS = 16
"""64 bits of HMAC-SHA256 in hex: a forger's guess succeeds once in 2**64."""
KEY_BYTES = 32
_MAX_ID = 2**63 - 1  # a bigint: a larger id would fail the bulk write of every status
_MAX_ATTEMPT = 2**31 - 1  # an integer column (retries)


@dataclass(frozen=True, slots=True)
class Tagged:
    """What a valid tag names."""

    recipient_id: int
    attempt: int | None
    """The row's ``retries`` when the message was sent; None for a first-format tag."""


class CallbackTag:
    """Makes and checks tags under one deployment key (the key never leaves this object)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a callback tag key needs at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "CallbackTag(<key hidden>)"

    def make(self, recipient_id: int, attempt: int | None = 0) -> str:
        """The ``biz_opaque_callback_data`` of a send to ``recipient_id`` at ``attempt``
        (the row's automatic retries so far); None, for a batch routed before the attempt
        was carried: the first format."""
        if attempt is None:
            body = f"{PREFIX_V1}.{recipient_id}"
        else:
            body = f"{PREFIX}.{recipient_id}.{attempt}"
        return f"{body}.{self._mac(body)}"

    def parse(self, callback: object) -> Tagged | None:
        """What a valid tag (either format) names; None for anything else."""
        if not isinstance(callback, str) or len(callback) > 64 or not callback.isascii():
            return None
        parts = callback.split(".")
        if parts[0] == PREFIX and len(parts) == 4:
            numbers = parts[1:3]
        elif parts[0] == PREFIX_V1 and len(parts) == 3:
            numbers = parts[1:2]
        else:
            return None
        # One spelling per number: digits only, no leading zeros.
        if not all(n.isdigit() and n == str(int(n)) for n in numbers):
            return None
        recipient_id = int(numbers[0])
        attempt = int(numbers[1]) if len(numbers) == 2 else None
        if recipient_id > _MAX_ID or (attempt is not None and attempt > _MAX_ATTEMPT):
            return None
        if not hmac.compare_digest(parts[-1], self._mac(".".join(parts[:-1]))):
            return None
        return Tagged(recipient_id, attempt)

    def recipient_id(self, callback: object) -> int | None:
        """The recipient id of a valid tag; None for anything else."""
        tagged = self.parse(callback)
        return None if tagged is None else tagged.recipient_id

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:MAC_CHARS]
