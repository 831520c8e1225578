"""Our tag in ``biz_opaque_callback_data``: which statuses are ours, unforgeably.

Another system may send from the same number with its own callback data (often a bare
number), and Meta sends its statuses to every app subscribed to the WABA. A status is ours
when its wamid is one we sent, or when its callback data is our tag: a prefix, the
recipient id and a short MAC over both, keyed by the deployment's secret
(:meth:`dispatcher.store.secrets.Secrets.callback_key`). A bare number, another
deployment's tag or a forged one match nothing.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "wcd1"
"""Names the format, so a future format can be told apart."""
MAC_CHARS = 16
"""64 bits of HMAC-SHA256 in hex: a forger's guess succeeds once in 2**64."""
KEY_BYTES = 32
_MAX_ID = 2**63 - 1  # a bigint: a larger id would fail the bulk write of every status


class CallbackTag:
    """Makes and checks tags under one deployment key (the key never leaves this object)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a callback tag key needs at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "CallbackTag(<key hidden>)"

    def make(self, recipient_id: int) -> str:
        """The ``biz_opaque_callback_data`` of a send to ``recipient_id``."""
        return f"{PREFIX}.{recipient_id}.{self._mac(recipient_id)}"

    def recipient_id(self, callback: object) -> int | None:
        """The recipient id of a valid tag; None for anything else."""
        if not isinstance(callback, str) or len(callback) > 64 or not callback.isascii():
            return None
        parts = callback.split(".")
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit():
            return None
        if parts[1] != str(int(parts[1])):  # one spelling per id: no leading zeros
            return None
        recipient_id = int(parts[1])
        if recipient_id > _MAX_ID:
            return None
        if not hmac.compare_digest(parts[2], self._mac(recipient_id)):
            return None
        return recipient_id

    def _mac(self, recipient_id: int) -> str:
        message = f"{PREFIX}.{recipient_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:MAC_CHARS]
