"""The short chaos profile, as CI runs it: select with ``-m chaos``, skip with ``-m 'not chaos'``.

Each fault hits real processes (Ray workers, ``dispatcher serve``, our own valkey and
PostgreSQL) during a real campaign; the sandbox's audit must show every recipient reached
once, none twice, no rate violation, and the campaign completed by itself.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from tests.chaos.report import print_report
from tests.chaos.runner import run_profile


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_the_short_chaos_profile_reaches_everyone_once() -> None:
    rows = asyncio.run(run_profile("short"))
    text = io.StringIO()
    print_report(rows, Console(file=text, width=160))
    print(text.getvalue())
    control, *faults = rows
    assert control.fault.startswith("none")
    assert control.failures() in ([], ["rate"]), text.getvalue()
    assert faults
    assert all(row.passed_but_jitter(control) for row in faults), text.getvalue()
