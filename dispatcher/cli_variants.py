"""An A/B campaign's variants as ``dispatcher campaign show`` prints them: counters, read
rate with its interval, and the winner with the figures it was decided on."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dispatcher.cli_ops import num


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def variant_table(report: dict[str, Any]) -> Table:
    """``GET /campaigns/{id}/variants`` with a column per variant (a test has a few): fits a
    terminal's width where a row per variant and a column per counter would not."""
    confidence = report["confidence"]
    lines = report["variants"]
    table = Table(title=f"Variants (read rate = read / sent; interval at {confidence:.0%})")
    table.add_column("variant")
    for line in lines:
        table.add_column(
            f"{line['label']} (winner)" if line["winner"] else line["label"], justify="right"
        )
    table.add_row("template", *(str(line["template"].get("name", "")) for line in lines))
    table.add_row("weight", *(f"{line['weight']:g}" for line in lines))
    for counter in ("sent", "delivered", "read", "failed"):
        table.add_row(counter, *(num(line[counter]) for line in lines))
    table.add_row("read rate", *(_rate(line["read_rate"]) for line in lines))
    table.add_row(
        "interval",
        *(f"{_rate(line['read_rate_low'])} - {_rate(line['read_rate_high'])}" for line in lines),
    )
    return table


def winner_line(report: dict[str, Any]) -> str:
    """What was decided, when, and on which figures; or how a winner will be decided."""
    winner = report.get("winner")
    auto = report.get("auto_winner")
    if winner is None:
        if auto is None:
            return "winner: none (no automatic winner set)"
        return (
            f"winner: not yet (automatic after {auto['min_sends_per_variant']:,} sends per "
            f"variant, at {auto['confidence']:.0%} confidence over at most "
            f"{auto.get('max_looks', 5)} looks)"
        )
    figures = winner["figures"]
    label = figures["variants"][winner["variant"]]["label"]
    arms = ", ".join(
        f"{v['label']} {v['read']:,}/{v['sent']:,} = {_rate(v['read_rate'])}"
        for v in figures["variants"]
    )
    return (
        f"winner: {label}, decided at {winner['decided_at']} (z {winner['z']:.2f}, one-sided "
        f"p {winner['p_value']:.2g} at {figures['confidence']:.0%}) on {arms}; the rest of "
        "the campaign gets its template"
    )
