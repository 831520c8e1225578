"""The operator's daily commands against a running API: what they share, and ``instances``.

Every command takes ``--api-url`` (default DISPATCHER_API_URL, else http://127.0.0.1:8080),
``--ca-file`` and ``--json`` (machine output on stdout: one JSON document); the token comes
from DISPATCHER_API_TOKEN. Exit codes: 0 ok, 1 the API or a service refused or failed,
2 usage (a bad option, a missing setting or file), 3 ``campaign watch`` saw the campaign end
failed or cancelled. The ``campaign`` commands are in ``dispatcher/cli_campaign.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dispatcher.api_client import ApiClient, default_api_url
from dispatcher.errors import ConfigError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

STDIN = "-"


def num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.api_url, args.ca_file)


def api_arguments(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """``--api-url``, ``--ca-file``, ``--json``. ``inherited``: a sub-command's copies, which
    must not overwrite what the parent command already parsed (argparse applies a
    sub-parser's defaults last)."""
    default = argparse.SUPPRESS if inherited else None
    parser.add_argument(
        "--api-url",
        default=argparse.SUPPRESS if inherited else default_api_url(),
        help="the API (default: DISPATCHER_API_URL, else http://127.0.0.1:8080; "
        "bearer token: DISPATCHER_API_TOKEN)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=default,
        help="trust the API's certificate through this CA bundle (default: DISPATCHER_CA_FILE)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if inherited else False,
        help="machine output: one JSON document on stdout",
    )


def _list_instances(args: argparse.Namespace) -> int:
    with client(args) as api:
        found = api.get("/instances")["items"]
    if args.json:
        print_json(found)
        return 0
    table = Table(title=f"Instances ({len(found)})")
    for column in ("id", "number", "business", "name", "status", "msg/s", "tier"):
        table.add_column(column)
    for i in found:
        table.add_row(
            i["id"],
            i["phone_number_id"],
            i["business_id"],
            i["name"],
            i["status"] + (f" ({i['status_reason']})" if i.get("status_reason") else ""),
            num(i.get("throughput_mps")),
            str(i.get("messaging_tier") or i.get("detected_tier") or "-"),
        )
    console.print(table)
    return 0


def read_token(token_file: str | None, token_env: str | None) -> str:
    """The access token from a file (``-``: stdin) or an environment variable, never argv."""
    if token_env is not None:
        token = os.environ.get(token_env, "")
        where = f"--token-env {token_env}"
    elif token_file is None or token_file == STDIN:
        token, where = sys.stdin.read(), "--token-file - (stdin)"
    else:
        try:
            token = Path(token_file).read_text()
        except OSError as exc:
            raise ConfigError("--token-file", f"{token_file}: {exc.strerror}") from None
        where = f"--token-file {token_file}"
    token = token.strip()
    if not token:
        raise ConfigError(where, "no access token there")
    return token


def _register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "phone_number_id": args.phone_number_id,
        "access_token": read_token(args.token_file, args.token_env),
        "business_id": args.business_id,
    }
    for key, value in (
        ("name", args.name),
        ("throughput_mps", args.throughput),
        ("messaging_tier", args.messaging_tier),
    ):
        if value is not None:
            body[key] = value
    with client(args) as api:
        instance = api.post("/instances", body)
    if args.json:
        print_json(instance)
    else:
        console.print(
            f"instance {instance['id']}: number {instance['phone_number_id']} "
            f"({instance['business_id']}), {instance['status']}"
        )
    return 0


def add_parsers(commands: Any) -> None:
    """``instances`` (list) and ``instances register``, on the main parser's sub-commands."""
    instances = commands.add_parser("instances", help="list or register WhatsApp numbers")
    api_arguments(instances)
    instances.set_defaults(run=_list_instances)
    actions = instances.add_subparsers(dest="instances_action", metavar="ACTION")
    register = actions.add_parser(
        "register", help="register (or re-register) a number; the token never on the command line"
    )
    api_arguments(register, inherited=True)
    register.add_argument("--phone-number-id", required=True)
    register.add_argument("--business-id", required=True, help="the number's portfolio")
    token = register.add_mutually_exclusive_group(required=True)
    token.add_argument("--token-file", help="read the access token from this file (-: stdin)")
    token.add_argument("--token-env", help="read the access token from this environment variable")
    register.add_argument("--throughput", type=int, help="msg/s (default: read from Meta)")
    register.add_argument("--messaging-tier", help="the portfolio's limit (TIER_2K, 10K...)")
    register.add_argument("--name")
    register.set_defaults(run=_register)
