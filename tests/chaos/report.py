"""The verdict of one chaos scenario, from what the sandbox (Meta) saw, and the table of them.

Pure: no I/O. The sandbox's request log says how many times each recipient was accepted;
its audit adds duplicate sends by ``biz_opaque_callback_data`` (our recipient id) and the
throughput, pair-rate and messaging-limit violations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Row:
    fault: str
    recipients: int
    reached_once: int
    duplicates: int
    """Accepted sends beyond the first, per recipient."""
    lost: int
    """Recipients Meta never accepted."""
    violations: int
    """Throughput, pair-rate and messaging-limit violations the sandbox counted."""
    completed_s: float | None
    """From send to ``completed``; None when the campaign did not complete in its bound."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None
    """The scenario itself broke (a process did not start...): no verdict on the system."""

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.completed_s is not None
            and self.duplicates == 0
            and self.lost == 0
            and self.violations == 0
            and self.reached_once == self.recipients
        )


def judge(
    fault: str,
    addresses: Sequence[str],
    records: Iterable[Mapping[str, Any]],
    audit: Mapping[str, Any],
    completed_s: float | None,
    notes: Iterable[str] = (),
    error: str | None = None,
) -> Row:
    """One row: each campaign address against the sandbox's accepted requests."""
    accepted = Counter(str(r["recipient"]) for r in records if r.get("status") == 200)
    wanted = set(addresses)
    per_address = [accepted.get(address, 0) for address in wanted]
    by_request = sum(n - 1 for n in per_address if n > 1)
    # The same fact from the callback tag (our recipient id); the larger one counts, so a
    # request log that rolled over cannot hide a duplicate.
    duplicates = max(by_request, int(audit.get("duplicate_sends", 0)))
    strangers = sum(n for address, n in accepted.items() if address not in wanted)
    more = list(notes)
    if strangers:
        more.append(f"{strangers} sends to addresses not in the campaign")
    return Row(
        fault=fault,
        recipients=len(addresses),
        reached_once=sum(1 for n in per_address if n == 1),
        duplicates=duplicates,
        lost=sum(1 for n in per_address if n == 0),
        violations=sum(
            int(audit.get(key, 0))
            for key in ("throughput_violations", "pair_violations", "tier_violations")
        ),
        completed_s=completed_s,
        notes=tuple(more),
        error=error,
    )


def table(rows: Sequence[Row]) -> Table:
    out = Table(title="Chaos: what the sandbox (Meta) saw")
    for column in (
        "fault",
        "recipients",
        "reached once",
        "duplicates",
        "lost",
        "rate violations",
        "completion",
        "verdict",
    ):
        out.add_column(column, justify="left" if column in ("fault", "verdict") else "right")
    for row in rows:
        out.add_row(
            row.fault,
            f"{row.recipients:,}",
            f"{row.reached_once:,}",
            f"{row.duplicates:,}",
            f"{row.lost:,}",
            f"{row.violations:,}",
            "not completed" if row.completed_s is None else f"{row.completed_s:.1f}s",
            "[green]pass[/green]" if row.passed else "[red]FAIL[/red]",
        )
    return out


def print_report(rows: Sequence[Row], console: Console | None = None) -> None:
    console = console or Console(width=140)
    console.print(table(rows))
    for row in rows:
        for line in ((f"error: {row.error}",) if row.error else ()) + row.notes:
            console.print(f"  {row.fault}: {line}", highlight=False)
