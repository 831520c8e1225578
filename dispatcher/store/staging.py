"""Uploads of recipients staged outside the database, so that no transaction waits on a client.

An upload's rows are validated as they stream in and spooled, already encoded as Postgres'
binary COPY stream, to an anonymous temporary file (in memory up to ``SPOOL_MEMORY_BYTES``,
then on local disk), written a chunk at a time in a worker thread. The client may be slow or
stall: meanwhile nothing of the upload touches Postgres, no transaction is open and no pooled
connection is held. Only once the input ended does ``ingest.apply`` send the file, as it is,
in one COPY inside one short transaction: no Python work per row while it is open.

Why not an UNLOGGED staging table: moving its rows into the recipients takes an
``INSERT ... SELECT``, row at a time where COPY writes pages in batches; measured, it halved
the ingest's throughput (200,000 rows).

List hygiene happens here too, outside any transaction: a phone of the right shape that no
numbering plan allows (dispatcher/numbering.py) is staged with the status ``invalid`` (final,
never sent) instead of refusing the upload; a row that is not an address at all still does.

A campaign of A/B variants (``dispatcher/ab``) gets one more column, each row's variant,
picked here by a hash of (campaign, address): no statement of the ingest's transaction
works per row for it, and a campaign of one template writes exactly what it did before.

Nothing to clean: the file has no name (unlinked at creation) and is closed when the upload
ends, applied or not; a process that dies takes its files with it.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import IO
from uuid import UUID

import orjson

from dispatcher.ab.assign import VariantPicker
from dispatcher.ab.settings import MAX_VARIANTS
from dispatcher.errors import InvalidRecipientError, UploadLimitError
from dispatcher.meta.messages import BSUID_RE, E164_RE
from dispatcher.numbering import is_valid_phone
from dispatcher.store.models import NewRecipient
from dispatcher.uploads import UploadLimit, UploadLimits

SPOOL_MEMORY_BYTES = 4 * 2**20
"""An upload up to this size stays in memory (a create's inline recipients always do)."""
CHUNK_BYTES = 2**20
"""Encoded rows are written to the spool, and read back, this many bytes at a time."""
COPY_COLUMNS = ("campaign_id", "phone", "user_id", "variables", "status")
"""The columns of each staged row, in the order they are encoded."""
VARIANT_COLUMNS = (*COPY_COLUMNS, "variant")
"""...and those of a campaign of A/B variants."""

# Postgres' binary COPY format: a signature, flags and header extension length, then per row
# a field count and each field as a length (-1: NULL) and its bytes, then -1 to end.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_length = struct.Struct("!i").pack
_JSONB_VERSION = b"\x01"
# An enum's binary form is its label.
_PENDING = _length(len(b"pending")) + b"pending"
_INVALID = _length(len(b"invalid")) + b"invalid"
_VARIANT = [_length(2) + struct.pack("!h", index) for index in range(MAX_VARIANTS)]
"""Each variant index as a smallint field, encoded once."""


def check(index: int, new: NewRecipient) -> None:
    """Raise :class:`InvalidRecipientError` unless exactly one valid address is given."""
    if (new.phone is None) == (new.user_id is None):
        raise InvalidRecipientError(index, "give exactly one of phone and user_id")
    if new.phone is not None and not E164_RE.fullmatch(new.phone):
        raise InvalidRecipientError(index, f"phone {new.phone!r} is not E.164 (+ and 7-15 digits)")
    if new.user_id is not None and not BSUID_RE.fullmatch(new.user_id):
        raise InvalidRecipientError(index, f"user_id {new.user_id!r} is not a BSUID")


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _length(len(data)) + data


def valid_number(new: NewRecipient) -> bool:
    """False for a phone in no numbering plan (its row is staged ``invalid``); a BSUID is not
    a phone number: always True."""
    return new.phone is None or is_valid_phone(new.phone)


def _encode(buffer: bytearray, row_head: bytes, new: NewRecipient, valid: bool) -> None:
    """Append one row: the campaign (in ``row_head``), phone, user_id, variables (jsonb),
    status (``pending``, or ``invalid`` when not ``valid``)."""
    buffer += row_head
    buffer += _text(new.phone)
    buffer += _text(new.user_id)
    if new.variables is None:
        buffer += _NULL
    else:
        data = orjson.dumps(new.variables)
        buffer += _length(len(data) + 1)
        buffer += _JSONB_VERSION
        buffer += data
    buffer += _PENDING if valid else _INVALID


async def _each(
    rows: Iterable[NewRecipient] | AsyncIterable[NewRecipient],
) -> AsyncIterator[NewRecipient]:
    if isinstance(rows, AsyncIterable):
        async for new in rows:
            yield new
    else:
        for new in rows:
            yield new


@dataclass(slots=True)
class StagedUpload:
    """The validated rows of one upload for ``campaign_id``, as a binary COPY stream in input
    order; close it after. ``invalid`` of them are phones in no numbering plan."""

    campaign_id: UUID
    rows: int
    _spool: IO[bytes]
    invalid: int = 0
    columns: tuple[str, ...] = COPY_COLUMNS
    """The COPY's columns, in the order each row is encoded."""

    async def stream(self) -> AsyncIterator[bytes]:
        """The COPY stream, from its start."""
        await asyncio.to_thread(self._spool.seek, 0)
        while chunk := await asyncio.to_thread(self._spool.read, CHUNK_BYTES):
            yield chunk

    def close(self) -> None:
        self._spool.close()


async def stage(
    rows: Iterable[NewRecipient] | AsyncIterable[NewRecipient],
    campaign_id: UUID,
    limits: UploadLimits | None = None,
    picker: VariantPicker | None = None,
) -> StagedUpload:
    """Validate and spool ``rows`` for ``campaign_id`` (read once, never held whole in
    memory); a phone in no numbering plan is kept, ``invalid``; each row gets its variant
    when ``picker`` (the campaign's A/B weights) is given. Refused, with nothing kept, for a
    row that is not a recipient (:class:`InvalidRecipientError`, with its index), more than
    ``limits.max_rows`` rows (:class:`UploadLimitError`), or whatever the input raised."""
    max_rows = None if limits is None else limits.max_rows
    columns = COPY_COLUMNS if picker is None else VARIANT_COLUMNS
    row_head = struct.pack("!hi", len(columns), 16) + campaign_id.bytes
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    try:
        count = invalid = 0
        buffer = bytearray(_HEADER)
        async for new in _each(rows):
            check(count, new)
            if max_rows is not None and count >= max_rows:
                raise UploadLimitError(
                    UploadLimit.ROWS, max_rows, f"the upload has more than {max_rows} recipients"
                )
            count += 1
            valid = valid_number(new)
            invalid += not valid
            _encode(buffer, row_head, new, valid)
            if picker is not None:  # then its variant, from its address (the row's last field)
                address = new.phone if new.phone is not None else new.user_id
                buffer += _VARIANT[picker.pick((address or "").encode())]
            if len(buffer) >= CHUNK_BYTES:
                await asyncio.to_thread(spool.write, bytes(buffer))
                buffer.clear()
        buffer += _TRAILER
        await asyncio.to_thread(spool.write, bytes(buffer))
    except BaseException:
        spool.close()
        raise
    return StagedUpload(campaign_id, count, spool, invalid, columns)
