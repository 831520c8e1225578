"""Recipients in bulk: JSON lines or CSV, parsed line by line from a stream of bytes.

Nothing is held whole: lines are cut from the chunks as they come, so a million-recipient
upload streams straight into ``Recipients.ingest``. A bad line raises
:class:`RecipientLineError` with its 1-based line number (the CSV header is line 1).

- JSON lines (``application/x-ndjson``, ``application/jsonl``): one object per line,
  ``{"phone": "+5511999990001", "variables": {"name": "Ana"}}`` or ``{"user_id": "BR.x"}``.
- CSV (``text/csv``): a header naming the columns, then one recipient per line. ``phone``
  and ``user_id`` are the addresses (an empty cell: absent); every other column is a named
  variable (``{{name}}`` in the template). Quoted cells may hold commas, not line breaks.

Blank lines are skipped in both.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, AsyncIterator
from enum import StrEnum
from typing import Any

import orjson

from dispatcher.errors import DispatcherError

MAX_LINE_BYTES = 64 * 1024
ADDRESS_COLUMNS = ("phone", "user_id")


class RecipientFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


MEDIA_TYPES: dict[str, RecipientFormat] = {
    "application/x-ndjson": RecipientFormat.JSONL,
    "application/jsonl": RecipientFormat.JSONL,
    "application/x-jsonlines": RecipientFormat.JSONL,
    "text/csv": RecipientFormat.CSV,
}


class RecipientLineError(DispatcherError):
    """Line ``line`` (1-based) of a bulk upload is not a recipient."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


async def lines(
    chunks: AsyncIterable[bytes], max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, str]]:
    """``(number, text)`` of every non-blank line, decoded as UTF-8 (a leading BOM dropped)."""
    number = 0
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            text = _decode(number, raw, max_line_bytes)
            if text:
                yield number, text
        if len(pending) > max_line_bytes:
            raise RecipientLineError(number + 1, f"longer than {max_line_bytes} bytes")
    if pending:
        number += 1
        text = _decode(number, pending, max_line_bytes)
        if text:
            yield number, text


def _decode(number: int, raw: bytes, max_line_bytes: int) -> str:
    if len(raw) > max_line_bytes:
        raise RecipientLineError(number, f"longer than {max_line_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipientLineError(number, "not UTF-8") from None
    if number == 1:
        text = text.removeprefix("\ufeff")
    return text.strip()


async def records(
    chunks: AsyncIterable[bytes], fmt: RecipientFormat
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """``(line, {"phone"?, "user_id"?, "variables"?})`` per recipient, unvalidated beyond
    their shape: the caller checks the values (addresses, variables)."""
    if fmt is RecipientFormat.JSONL:
        async for number, text in lines(chunks):
            yield number, _json_record(number, text)
        return
    header: list[str] | None = None
    async for number, text in lines(chunks):
        cells = _csv_cells(number, text)
        if header is None:
            header = _csv_header(number, cells)
            continue
        if len(cells) != len(header):
            raise RecipientLineError(
                number, f"{len(cells)} cells where the header has {len(header)}"
            )
        yield number, _csv_record(header, cells)


def _json_record(number: int, text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise RecipientLineError(number, "not JSON") from None
    if not isinstance(value, dict):
        raise RecipientLineError(number, "not a JSON object")
    return value


def _csv_cells(number: int, text: str) -> list[str]:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise RecipientLineError(number, f"not CSV ({exc})") from None
    return rows[0] if rows else []


def _csv_header(number: int, cells: list[str]) -> list[str]:
    header = [cell.strip() for cell in cells]
    if not any(name in ADDRESS_COLUMNS for name in header):
        raise RecipientLineError(number, "the header names neither phone nor user_id")
    if any(not name for name in header):
        raise RecipientLineError(number, "the header has an empty column name")
    if len(set(header)) != len(header):
        raise RecipientLineError(number, "the header repeats a column")
    return header


def _csv_record(header: list[str], cells: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for name, cell in zip(header, cells, strict=True):
        if name in ADDRESS_COLUMNS:
            if cell.strip():
                record[name] = cell.strip()
        else:
            variables[name] = cell
    if variables:
        record["variables"] = variables
    return record
