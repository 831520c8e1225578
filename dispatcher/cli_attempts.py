"""``dispatcher campaign attempts ID --recipient N``: one recipient's attempts with their
codes (automatic retries, README "Automatic retry"), and ``--retry-policy-file`` for create."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from dispatcher.cli_ops import client, console, print_json
from dispatcher.errors import ConfigError

ATTEMPT_COLUMNS = ("attempt", "status", "wamid", "error_code", "error_message", "retry_at")


def retry_policy(path: Path | None) -> dict[str, Any] | None:
    """The policy of ``--retry-policy-file`` as JSON (the API validates it: 422 names the
    field); None: the default policy."""
    if path is None:
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("--retry-policy-file", f"{path}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError("--retry-policy-file", f"{path}: not a JSON object")
    return value


def _attempts(args: argparse.Namespace) -> int:
    with client(args) as api:
        shown = api.get(
            f"/campaigns/{args.campaign_id}/attempts", params={"recipient_id": args.recipient}
        )
    if args.json:
        print_json(shown)
        return 0
    recipient = shown["recipient"]
    address = recipient.get("phone") or recipient.get("user_id")
    table = Table(title=f"Recipient {recipient['id']} ({address}): {recipient['status']}")
    for column in ATTEMPT_COLUMNS:
        table.add_column(column)
    for attempt in shown["attempts"]:
        table.add_row(*("" if attempt[c] is None else str(attempt[c]) for c in ATTEMPT_COLUMNS))
    console.print(table)
    return 0


def add_parser(actions: Any) -> None:
    """``attempts`` on the campaign's actions (the API options and the campaign id are added
    with the others')."""
    attempts = actions.add_parser("attempts", help="one recipient's attempts with their codes")
    attempts.add_argument(
        "--recipient", type=int, required=True, help="the recipient's id (see: recipients)"
    )
    attempts.set_defaults(run=_attempts)
