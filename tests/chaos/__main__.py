"""``python -m tests.chaos [--profile short|full] [--only NAME ...] [--keep]``: the chaos table.

Exits 1 when any row fails (a duplicate, a lost recipient, a rate violation, a campaign that
did not complete by itself, or a scenario that broke).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict

from rich.console import Console

from tests.chaos.report import Row, print_report
from tests.chaos.runner import run_profile
from tests.chaos.scenarios import names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--profile", choices=["short", "full"], default="full")
    parser.add_argument("--only", action="append", choices=names(), help="run just these")
    parser.add_argument("--keep", action="store_true", help="keep logs and data under /tmp")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    console = Console(width=140)
    began = time.monotonic()

    def progress(row: Row, seconds: float) -> None:
        verdict = "pass" if row.passed else "FAIL"
        console.print(f"[{time.monotonic() - began:6.0f}s] {row.fault}: {verdict} ({seconds:.0f}s)")

    rows = asyncio.run(run_profile(args.profile, args.only, args.keep, progress))
    print_report(rows, console)
    console.print(f"chaos {args.profile}: {time.monotonic() - began:.0f}s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump([{**asdict(r), "passed": r.passed} for r in rows], out, indent=1)
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
