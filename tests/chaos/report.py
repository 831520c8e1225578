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
    peak_over: int = 0
    """The most any number received in one second above its throughput (0: never over)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None
    """The scenario itself broke (a process did not start...): no verdict on the system."""

    def failures(self) -> list[str]:
        """Why the row fails; empty when it passes."""
        why = []
        if self.error is not None:
            why.append("broke")
        if self.duplicates:
            why.append("duplicates")
        if self.lost:
            why.append("lost")
        if self.completed_s is None:
            why.append("not completed")
        if self.violations:
            why.append("rate")
        return why

    @property
    def passed(self) -> bool:
        return not self.failures()

    def passed_but_jitter(self, control: Row) -> bool:
        """Passes, or fails on rate alone by no more than the same campaign without a fault
        did on the same machine a minute before (a busy 2-core machine delays the sandbox's
        clock by more than the pacer's jitter margin): the fault added no overshoot."""
        return self.failures() in ([], ["rate"]) and self.peak_over <= control.peak_over


def judge(
    fault: str,
    addresses: Sequence[str],
    records: Iterable[Mapping[str, Any]],
    audit: Mapping[str, Any],
    completed_s: float | None,
    notes: Iterable[str] = (),
    error: str | None = None,
    limits: Mapping[str, int] | None = None,
) -> Row:
    """One row: each campaign address against the sandbox's accepted requests."""
    limits = limits or {}
    accepted = Counter(str(r["recipient"]) for r in records if r.get("status") == 200)
    wanted = set(addresses)
    per_address = [accepted.get(address, 0) for address in wanted]
    by_request = sum(n - 1 for n in per_address if n > 1)
    # The same fact from the callback tag (our recipient id); the larger one counts, so a
    # request log that rolled over cannot hide a duplicate.
    duplicates = max(by_request, int(audit.get("duplicate_sends", 0)))
    peak_over = max(
        (
            int(a.get("max_received_per_s", 0)) - limits[pid]
            for pid, a in (audit.get("numbers") or {}).items()
            if pid in limits
        ),
        default=0,
    )
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
        peak_over=max(peak_over, 0),
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
        "peak over limit",
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
            f"{row.peak_over}/s",
            "not completed" if row.completed_s is None else f"{row.completed_s:.1f}s",
            "[green]pass[/green]" if row.passed else f"[red]FAIL[/red] {', '.join(row.failures())}",
        )
    return out


def print_report(rows: Sequence[Row], console: Console | None = None) -> None:
    console = console or Console(width=140)
    console.print(table(rows))
    for row in rows:
        for line in ((f"error: {row.error}",) if row.error else ()) + row.notes:
            console.print(f"  {row.fault}: {line}", highlight=False)
