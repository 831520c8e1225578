"""Limits of one bulk upload of recipients: rows, bytes, and the time a client has to send it.

A slow or endless upload must not hold the server: :func:`limited` counts bytes as they arrive
and gives the client until a deadline (``max_s`` after the upload began) for each next chunk;
rows are counted where they are staged (``store/staging.py``). Passing a limit raises
:class:`UploadLimitError` naming it, and the upload is refused whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.errors import UploadLimitError


class UploadLimit(StrEnum):
    """Each limit, by the name of its setting (``DISPATCHER_`` + upper case)."""

    ROWS = "max_upload_rows"
    BYTES = "max_upload_bytes"
    SECONDS = "max_upload_s"


ABANDONED_AFTER_S = 3_600.0
"""An upload without a time limit is abandoned once nothing of it was written for this long."""
ABANDON_MARGIN_S = 120.0
"""An upload with a time limit is abandoned this long after the limit (its last chunk and
its apply may still be running at the limit)."""


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """``None``: no limit (the driver SDK's uploads, from a trusted process)."""

    max_rows: int | None = None
    max_bytes: int | None = None
    max_s: float | None = None

    @property
    def abandoned_after_s(self) -> float:
        """Untouched for this long, the upload's process is gone: its rows may be cleaned."""
        return ABANDONED_AFTER_S if self.max_s is None else self.max_s + ABANDON_MARGIN_S


def too_large(max_bytes: int) -> UploadLimitError:
    return UploadLimitError(
        UploadLimit.BYTES, max_bytes, f"the upload is larger than {max_bytes} bytes"
    )


def too_slow(max_s: float) -> UploadLimitError:
    return UploadLimitError(
        UploadLimit.SECONDS, max_s, f"the upload was not received within {max_s:g} s"
    )


async def limited(
    chunks: AsyncIterable[bytes], limits: UploadLimits, *, begun_at: float | None = None
) -> AsyncIterator[bytes]:
    """``chunks`` as they come, cut with :class:`UploadLimitError` past ``limits.max_bytes``
    or when the next chunk has not come ``limits.max_s`` after ``begun_at`` (the event
    loop's clock; now by default)."""
    loop = asyncio.get_running_loop()
    deadline = None
    if limits.max_s is not None:
        deadline = (loop.time() if begun_at is None else begun_at) + limits.max_s
    received = 0
    iterator = aiter(chunks)
    while True:
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if limits.max_s is None or not timeout.expired():
                raise
            raise too_slow(limits.max_s) from None
        received += len(chunk)
        if limits.max_bytes is not None and received > limits.max_bytes:
            raise too_large(limits.max_bytes)
        yield chunk
