"""``dispatcher suppressions``: list, add, remove and import (a CSV file streamed up) the
per-business marketing suppression list, through the REST API.

Exit codes as the other operator commands (``dispatcher/cli_ops.py``): 0 ok, 1 the API
refused or failed (an import's bad line is named: nothing of the file was imported), 2 usage.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from rich.table import Table

from dispatcher.cli_campaign import CHUNK_BYTES
from dispatcher.cli_ops import api_arguments, client, console, num, print_json
from dispatcher.errors import ConfigError

ACTIONS = ("list", "add", "remove", "import")


def _list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit, "offset": args.offset}
    if args.business_id:
        params["business_id"] = args.business_id
    if args.address:
        params["address"] = args.address
    with client(args) as api:
        found = api.get("/suppressions", params)["suppressions"]
    if args.json:
        print_json(found)
        return 0
    table = Table(title=f"Suppressions ({len(found)})")
    for column in ("business", "address", "source", "reason", "since"):
        table.add_column(column)
    for s in found:
        table.add_row(s["business_id"], s["address"], s["source"], s["reason"], s["created_at"])
    console.print(table)
    return 0


def _change(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"business_id": args.business_id, "addresses": args.addresses}
    with client(args) as api:
        if args.suppressions_action == "add":
            body["reason"] = args.reason
            changed = api.post("/suppressions", body)
        else:
            changed = api.delete("/suppressions", body)
    if args.json:
        print_json(changed)
    else:
        done = "suppressed" if args.suppressions_action == "add" else "no longer suppressed"
        console.print(f"business {changed['business_id']}: {num(changed['changed'])} {done}")
    return 0


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise ConfigError("FILE", f"{path}: no such file")
    query = urlencode({"business_id": args.business_id})
    with client(args) as api:
        done = api.upload(f"/suppressions/import?{query}", _chunks(path), "text/csv")
    if args.json:
        print_json(done)
        return 0
    console.print(
        f"business {done['business_id']}: {num(done['rows'])} addresses read from {path.name}, "
        f"{num(done['added'])} suppressed, {num(done['already_suppressed'])} already were, "
        f"{num(done['repeated'])} repeated"
    )
    if done["invalid"]:
        lines = ", ".join(str(item["line"]) for item in done["invalid_lines"])
        more = "..." if done["invalid"] > len(done["invalid_lines"]) else ""
        console.print(
            f"{num(done['invalid'])} phones in no numbering plan, suppressed all the same "
            f"(lines {lines}{more})"
        )
    return 0


def add_parser(commands: Any) -> None:
    """``suppressions`` and its actions, on the main parser's sub-commands."""
    suppressions = commands.add_parser(
        "suppressions", help="list, add, remove or import (CSV) a business's opt-outs"
    )
    actions = suppressions.add_subparsers(
        dest="suppressions_action", metavar="ACTION", required=True
    )
    listing = actions.add_parser("list", help="the suppressions (of one business, one address)")
    listing.add_argument("--business-id")
    listing.add_argument("--address", help="an E.164 phone or a BSUID")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(run=_list)
    for name, what in (("add", "suppress"), ("remove", "lift the suppression of")):
        change = actions.add_parser(name, help=f"{what} addresses for a business")
        change.add_argument("--business-id", required=True)
        change.add_argument("addresses", nargs="+", metavar="ADDRESS", help="E.164 or BSUID")
        if name == "add":
            change.add_argument("--reason", default="operator")
        change.set_defaults(run=_change)
    imported = actions.add_parser(
        "import", help="import a CSV list (address[,reason] a line): all of it or nothing"
    )
    imported.add_argument("--business-id", required=True)
    imported.add_argument("file", type=Path, metavar="FILE")
    imported.set_defaults(run=_import)
    for parser in actions.choices.values():
        api_arguments(parser)
