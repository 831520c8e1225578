"""Bulk recipient formats, cut from chunks that split lines anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.recipient_files import RecipientFormat, RecipientLineError, records

CSV = (
    '\ufeffphone,user_id,name\r\n+5511900000001,,Ana\r\n\r\n,BR.7,"Silva, B"\r\n+5511900000003,,'
).encode()


async def _chunks(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    last = 0
    for cut in sorted(set(cuts)):
        yield data[last:cut]
        last = cut
    yield data[last:]


async def _all(
    data: bytes, fmt: RecipientFormat, cuts: list[int]
) -> list[tuple[int, dict[str, object]]]:
    return [item async for item in records(_chunks(data, cuts), fmt)]


@given(st.lists(st.integers(0, len(CSV)), max_size=8))
async def test_csv_whatever_the_chunks(cuts: list[int]) -> None:
    assert await _all(CSV, RecipientFormat.CSV, cuts) == [
        (2, {"phone": "+5511900000001", "variables": {"name": "Ana"}}),
        (4, {"user_id": "BR.7", "variables": {"name": "Silva, B"}}),
        (5, {"phone": "+5511900000003", "variables": {"name": ""}}),
    ]


async def test_json_lines() -> None:
    data = b'{"phone": "+5511900000001"}\n\n{"user_id": "BR.1", "variables": ["a"]}'
    assert await _all(data, RecipientFormat.JSONL, [5, 30]) == [
        (1, {"phone": "+5511900000001"}),
        (3, {"user_id": "BR.1", "variables": ["a"]}),
    ]


@pytest.mark.parametrize(
    ("data", "fmt", "line"),
    [
        (b'{"phone": 1}\n[1]\n', RecipientFormat.JSONL, 2),
        (b"\n\n{oops\n", RecipientFormat.JSONL, 3),
        (b"name\nAna\n", RecipientFormat.CSV, 1),
        (b'phone\n"+55\n', RecipientFormat.CSV, 2),
        (b"phone,name\n+5511900000001\n", RecipientFormat.CSV, 2),
        (b"phone\n" + b"9" * 70_000, RecipientFormat.CSV, 2),
    ],
)
async def test_bad_lines_are_named(data: bytes, fmt: RecipientFormat, line: int) -> None:
    with pytest.raises(RecipientLineError) as caught:
        await _all(data, fmt, [3])
    assert caught.value.line == line
