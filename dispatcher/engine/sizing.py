"""How many recipients the coordinator claims into one number's next batch.

A batch holds about ``batch_seconds`` of its number's sends, so a slow number and a fast one
hold the same time's worth of work, not the same count. Near a campaign's end the batches
shrink: each holds at most ``1 / tail_split`` of the time the unrouted rest would take on all
the campaign's numbers together. A slow number then never takes a large last batch while a
fast one runs dry: the numbers finish within about one small batch of each other.
"""

from __future__ import annotations

import math

MIN_BATCH = 10
"""The smallest batch outside a tail: a smaller one costs a claim and a stream entry for
too little work."""
MIN_BATCH_S = 0.05
"""The smallest tail batch, in seconds of its number's sends. In time, not a count: a floor
of so many messages would give a slow number more than its share of the very end."""
DEFAULT_RATE_MPS = 80.0
"""Meta's default throughput: assumed for a number whose rate nobody reported yet."""


def batch_size(
    rate_mps: float,
    *,
    remaining: int,
    total_rate_mps: float,
    batch_seconds: float,
    max_size: int,
    tail_split: int,
) -> int:
    """The next batch's size for a number sending at ``rate_mps``, when ``remaining``
    recipients of the campaign are still unrouted and its numbers together send at
    ``total_rate_mps`` (0: no tail sizing, e.g. a campaign with one number)."""
    full = max(MIN_BATCH, min(max_size, int(rate_mps * batch_seconds)))
    if total_rate_mps <= 0 or tail_split <= 0:
        return full
    tail = math.ceil(rate_mps * remaining / total_rate_mps / tail_split)
    return min(full, max(1, math.ceil(rate_mps * MIN_BATCH_S), tail))
