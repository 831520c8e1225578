"""A suppression list imported whole: all of its addresses, or none (issue 15).

As recipient uploads (staging.py), the lines are validated as they stream in and spooled
outside the database, so that no transaction waits on the client; once the input ended, one
short transaction copies them into a temporary table and inserts the new ones. A refused
line, a limit passed or a failing input leave the list as it was: an operator fixes the file
and sends it again, and never wonders which half of it was applied.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import IO

import asyncpg

from dispatcher.errors import UploadLimitError
from dispatcher.store.staging import CHUNK_BYTES, SPOOL_MEMORY_BYTES
from dispatcher.suppression_files import SuppressionLine
from dispatcher.uploads import UploadLimit, UploadLimits

MAX_LISTED_INVALID = 100
"""The invalid numbers an answer lists by line (all of them are counted)."""
SOURCE = "import"
"""The ``source`` of imported suppressions (the REST add is ``operator``)."""

_CREATE = """
CREATE TEMP TABLE suppression_import (address text NOT NULL, reason text NOT NULL)
ON COMMIT DROP
"""
# The first reason of an address repeated in the file wins (lines are copied in order, and
# DISTINCT ON keeps the first row of each address in the ctid order of the copy).
_INSERT = """
WITH given AS (
    SELECT DISTINCT ON (address) address, reason FROM suppression_import ORDER BY address, ctid
), added AS (
    INSERT INTO whatsapp_suppressions (business_id, address, reason, source)
    SELECT $1, address, reason, $2 FROM given ORDER BY address
    ON CONFLICT (business_id, address) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM given) AS distinct_addresses, (SELECT count(*) FROM added) AS added
"""


@dataclass(slots=True)
class Imported:
    """What one import did: ``rows`` read, ``added`` new suppressions, ``already`` addresses
    suppressed before, ``repeated`` rows naming an address an earlier row named, ``invalid``
    phones in no numbering plan (suppressed all the same), the first of them by line."""

    business_id: str
    rows: int = 0
    added: int = 0
    already: int = 0
    repeated: int = 0
    invalid: int = 0
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)


def _escape(text: str) -> str:
    """A value in COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


async def _spool(
    given: AsyncIterable[SuppressionLine], result: Imported, max_rows: int | None
) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    try:
        buffer: list[str] = []
        size = 0
        async for line in given:
            if max_rows is not None and result.rows >= max_rows:
                raise UploadLimitError(
                    UploadLimit.ROWS, max_rows, f"the list has more than {max_rows} addresses"
                )
            result.rows += 1
            if not line.valid_number:
                result.invalid += 1
                if len(result.invalid_lines) < MAX_LISTED_INVALID:
                    result.invalid_lines.append((line.line, line.address))
            row = f"{line.address}\t{_escape(line.reason)}\n"
            buffer.append(row)
            size += len(row)
            if size >= CHUNK_BYTES:
                await asyncio.to_thread(spool.write, "".join(buffer).encode())
                buffer.clear()
                size = 0
        await asyncio.to_thread(spool.write, "".join(buffer).encode())
    except BaseException:
        spool.close()
        raise
    return spool


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    await asyncio.to_thread(spool.seek, 0)
    while chunk := await asyncio.to_thread(spool.read, CHUNK_BYTES):
        yield chunk


async def import_suppressions(
    pool: asyncpg.Pool,
    business_id: str,
    given: AsyncIterable[SuppressionLine],
    limits: UploadLimits | None = None,
) -> Imported:
    """Suppress every address of ``given`` for the business, or none: a refused line
    (:class:`RecipientLineError`), more than ``limits.max_rows`` lines
    (:class:`UploadLimitError`) or a failing input change nothing."""
    result = Imported(business_id)
    spool = await _spool(given, result, None if limits is None else limits.max_rows)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_CREATE)
            await conn.copy_to_table(
                "suppression_import", source=_chunks(spool), columns=("address", "reason")
            )
            counts = await conn.fetchrow(_INSERT, business_id, SOURCE)
    finally:
        spool.close()
    result.added = counts["added"]
    result.already = counts["distinct_addresses"] - counts["added"]
    result.repeated = result.rows - counts["distinct_addresses"]
    return result
