"""The byte and time limits of one upload, on an in-process stream of chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dispatcher.errors import UploadLimitError
from dispatcher.uploads import UploadLimit, UploadLimits, limited


async def _chunks(*chunks: bytes, then_stall: bool = False) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if then_stall:
        await asyncio.Event().wait()  # a client that sends nothing more


async def _drain(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for chunk in chunks:
        into.append(chunk)


async def _read(chunks: AsyncIterator[bytes], limits: UploadLimits) -> bytes:
    return b"".join([chunk async for chunk in limited(chunks, limits)])


async def test_within_its_limits_a_body_passes_whole() -> None:
    body = await _read(_chunks(b"ab", b"cd"), UploadLimits(max_bytes=4, max_s=60))
    assert body == b"abcd"


async def test_a_body_one_byte_over_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(UploadLimitError) as refused:
        await _read(_chunks(b"ab", b"cde"), UploadLimits(max_bytes=4))
    assert (refused.value.limit, refused.value.maximum) == (UploadLimit.BYTES, 4)


async def test_a_stalled_client_is_cut_at_the_deadline() -> None:
    received: list[bytes] = []
    chunks = limited(_chunks(b"ab", then_stall=True), UploadLimits(max_s=0.2))
    with pytest.raises(UploadLimitError) as refused:
        await _drain(chunks, received)
    assert received == [b"ab"]
    assert refused.value.limit == UploadLimit.SECONDS


async def test_the_deadline_counts_from_when_the_upload_began() -> None:
    begun_at = asyncio.get_running_loop().time() - 60.0  # the request came a minute ago
    chunks = limited(_chunks(b"ab", then_stall=True), UploadLimits(max_s=30.0), begun_at=begun_at)
    with pytest.raises(UploadLimitError):
        # Counted from now, the stall would last 30 s: the guard below would fail the test.
        await asyncio.wait_for(_drain(chunks, []), timeout=10)


async def test_a_timeout_of_the_source_itself_is_not_taken_for_the_limit() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"ab"
        raise TimeoutError("the source's own")

    with pytest.raises(TimeoutError, match="the source's own"):
        await _read(failing(), UploadLimits(max_s=60))
