"""A suppression list in CSV, read line by line from a stream of bytes (issue 15).

One address a line, an E.164 phone or a BSUID as recipients are given, then optionally a
reason: ``+5511999990001,asked by phone``. The first line may be a header (``address``,
``phone`` or ``user_id`` first, e.g. ``phone,reason``). Blank lines are skipped; quoted cells
may hold commas. A line that is not an address (or has more than two cells, or too long a
reason) raises :class:`RecipientLineError` with its 1-based number: the import is refused
whole, as a recipient upload is.

A phone of the right shape that no numbering plan allows is still an address: suppressing it
costs nothing and an opt-out is never dropped (a newer plan may open its range); it is
marked, so the answer can list it.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, AsyncIterator
from typing import NamedTuple

from dispatcher.meta.messages import BSUID_RE, E164_RE
from dispatcher.numbering import is_valid_phone
from dispatcher.recipient_files import RecipientLineError, lines

HEADER_NAMES = frozenset({"address", "phone", "user_id"})
"""A first line whose first cell is one of these is a header."""
MAX_REASON_CHARS = 300
DEFAULT_REASON = "import"


class SuppressionLine(NamedTuple):
    """One line of the list: its number, the address, the reason, and whether the address is
    a phone in some numbering plan (a BSUID always is)."""

    line: int
    address: str
    reason: str
    valid_number: bool


def _cells(number: int, text: str) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise RecipientLineError(number, f"not CSV ({exc})") from None
    return [cell.strip() for cell in rows[0]] if rows else []


def parse_line(number: int, cells: list[str]) -> SuppressionLine:
    """One line's cells as a suppression, or :class:`RecipientLineError`."""
    if not 1 <= len(cells) <= 2:
        raise RecipientLineError(number, f"{len(cells)} cells: give an address and a reason")
    address = cells[0]
    reason = cells[1] if len(cells) == 2 and cells[1] else DEFAULT_REASON
    if len(reason) > MAX_REASON_CHARS:
        raise RecipientLineError(number, f"reason: longer than {MAX_REASON_CHARS} characters")
    if "\x00" in reason:
        raise RecipientLineError(number, "reason: NUL characters are not allowed")
    if E164_RE.fullmatch(address):
        return SuppressionLine(number, address, reason, is_valid_phone(address))
    if BSUID_RE.fullmatch(address):
        return SuppressionLine(number, address, reason, True)
    raise RecipientLineError(
        number, f"{address[:40]!r} is neither an E.164 phone (+ and 7-15 digits) nor a BSUID"
    )


async def suppression_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[SuppressionLine]:
    """Every suppression of a CSV body, the header (if any) left out."""
    first = True
    async for number, text in lines(chunks):
        cells = _cells(number, text)
        if first and cells and cells[0].lower() in HEADER_NAMES:
            first = False
            continue
        first = False
        yield parse_line(number, cells)
