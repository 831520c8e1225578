"""Which variant each recipient gets: a hash of (campaign, address) placed on the cumulative
weights. Deterministic, so the choice is the same on every ingest, restart and retry, and
the same address always lands on the same variant (a duplicate row with its original).

BLAKE2b keyed by the campaign id, not CRC32: CRC is linear, so its bits are parities of the
address's digits, and a split by them follows digit patterns of the numbering plan; BLAKE2b
has no such structure, and a copy of a keyed state prepared once costs well under a
microsecond a row.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from uuid import UUID

_SPACE = 2**64


class VariantPicker:
    """Maps an address (as UTF-8 bytes) to a variant index in ``0 .. len(weights) - 1``."""

    __slots__ = ("_base", "_bounds")

    def __init__(self, campaign_id: UUID, weights: Sequence[float]) -> None:
        if not weights or any(w <= 0 for w in weights):
            raise ValueError("weights must be positive")
        total = sum(weights)
        # Bounds on the 64-bit hash space, as 8 big-endian bytes: digests compare as bytes in
        # the order of their values, so no row turns its digest into an int, and no float is
        # compared per row (the split is exact and the same on every platform).
        self._bounds = [
            min(int(c / total * _SPACE), _SPACE - 1).to_bytes(8, "big")
            for c in list(accumulate(weights))[:-1]
        ]
        self._base = hashlib.blake2b(digest_size=8, key=campaign_id.bytes)

    def pick(self, address: bytes) -> int:
        h = self._base.copy()
        h.update(address)
        return bisect_right(self._bounds, h.digest())

    def pick_text(self, address: str) -> int:
        return self.pick(address.encode())
