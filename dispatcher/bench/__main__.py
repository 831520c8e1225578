"""``make bench``: what the dispatcher's hot paths cost, printed as tables anyone can rerun.

``python -m dispatcher.bench`` runs every section but the slow ones (``ON_DEMAND``);
``python -m dispatcher.bench NAME...`` the ones named.
Figures are rates measured in one run, so ratios between rows are meaningful even on a noisy
shared machine; absolute numbers vary from run to run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rich.console import Console

# Each section is a module of this package with ``run(console)``; listed in run order.
SECTIONS = [
    "services",
    "policies",
    "meta",
    "store",
    "hygiene",
    "webhooks",
    "campaigns",
    "scale",
    "actors",
    "fleet",
    "pgscale",
]
# Run only when named (``make bench-scale``): pgscale fills 10 million rows, minutes of work.
ON_DEMAND = frozenset({"pgscale"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dispatcher.bench")
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    # Wide enough for the tables when the output is a file or a pipe, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 132)
    for name in args.sections or [s for s in SECTIONS if s not in ON_DEMAND]:
        console.rule(f"bench: {name}")
        module = importlib.import_module(f"dispatcher.bench.{name}")
        module.run(console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
