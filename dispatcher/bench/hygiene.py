"""Benchmark: what list hygiene costs an upload (issue 15).

Every phone of an upload is checked against the numbering plans while it is staged
(``store/staging.py``), outside any transaction. Measured on ``ROWS`` generated numbers, all
distinct (the memo never hits): the check alone, ``phonenumbers``' own parse and validate (on
a sample: it is the slow path the check avoids), and staging with and without the check, in
rows per second. No database: staging is where the check's cost lands.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from unittest import mock

import phonenumbers
from rich.console import Console
from rich.table import Table

from dispatcher import numbering
from dispatcher.store.models import NewRecipient
from dispatcher.store.staging import stage

ROWS = int(os.environ.get("BENCH_HYGIENE_ROWS", "1000000"))
LIBRARY_SAMPLE = 50_000
AREA_CODES = (11, 21, 31, 41, 51, 61, 71, 81, 91)


def _phones(count: int) -> Iterator[str]:
    """Valid Brazilian mobiles, mostly, and one in a hundred with an unassigned area code."""
    for i in range(count):
        area = 10 if i % 100 == 99 else AREA_CODES[i % len(AREA_CODES)]
        yield f"+55{area}9{i:08d}"


def _rate(count: int, started: float) -> float:
    return count / max(time.perf_counter() - started, 1e-9)


def _any_number(new: NewRecipient) -> bool:
    """Staging's check replaced by a plain function (a mock's call costs microseconds)."""
    return True


def _library(phone: str) -> bool:
    return bool(phonenumbers.is_valid_number(phonenumbers.parse(phone)))


async def _stage_rate(phones: list[str], *, check: bool) -> tuple[float, int]:
    rows = (NewRecipient(phone=p) for p in phones)
    numbering.is_valid_phone.cache_clear()
    started = time.perf_counter()
    if check:
        upload = await stage(rows, uuid.uuid4())
    else:  # the same staging with every number taken as valid, as before issue 15
        with mock.patch("dispatcher.store.staging.valid_number", new=_any_number):
            upload = await stage(rows, uuid.uuid4())
    rate = _rate(upload.rows, started)
    upload.close()
    return rate, upload.invalid


def run(console: Console) -> None:
    phones = list(_phones(ROWS))
    numbering.is_valid_phone.cache_clear()
    started = time.perf_counter()
    valid = sum(map(numbering.is_valid_phone, phones))
    check = _rate(ROWS, started)
    started = time.perf_counter()
    sum(map(_library, phones[:LIBRARY_SAMPLE]))
    library = _rate(LIBRARY_SAMPLE, started)
    without, _ = asyncio.run(_stage_rate(phones, check=False))
    with_check, invalid = asyncio.run(_stage_rate(phones, check=True))

    table = Table(title=f"List hygiene: {ROWS:,} distinct phones ({ROWS - valid:,} invalid)")
    for column in ("what", "numbers/s", "µs/number"):
        table.add_column(column, justify="right" if column != "what" else "left")
    for name, rate in (
        ("numbering check (dispatcher/numbering.py)", check),
        (f"phonenumbers parse + is_valid_number ({LIBRARY_SAMPLE:,})", library),
        ("staging without the check", without),
        ("staging with the check", with_check),
    ):
        table.add_row(name, f"{rate:,.0f}", f"{1e6 / rate:.2f}")
    console.print(table)
    console.print(
        f"staged {invalid:,} rows invalid; the check costs staging "
        f"{(1 - with_check / without) * 100:.0f}% of its rate"
    )
