"""Fictitious phones that are valid numbers: every recipient is checked against the real
numbering plans (dispatcher/numbering.py), and an impossible one is never sent.

Brazilian mobiles: an area code, ``9``, then any eight digits.
"""

from __future__ import annotations

import uuid

BR_AREA_CODES = (
    *range(11, 20),
    21, 22, 24, 27, 28,
    31, 32, 33, 34, 35, 37, 38,
    *range(41, 50),
    51, 53, 54, 55,
    *range(61, 70),
    71, 73, 74, 75, 77, 79,
    *range(81, 90),
    *range(91, 100),
)  # fmt: skip
"""Every area code with mobiles in Brazil's plan (67 of them)."""
BLOCK_SIZE = 100_000
BLOCKS = len(BR_AREA_CODES) * 1_000
"""Random blocks of ``BLOCK_SIZE`` numbers: ~67,000 of them."""


def block() -> int:
    """A random block: tests that share a database rarely name the same customers."""
    return uuid.uuid4().int % BLOCKS


def phone(block: int, n: int) -> str:
    """The ``n``-th phone (0 to 99,999) of ``block``: a valid Brazilian mobile."""
    area = BR_AREA_CODES[block % len(BR_AREA_CODES)]
    return f"+55{area}9{block // len(BR_AREA_CODES):03d}{n:05d}"
