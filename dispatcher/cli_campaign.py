"""``dispatcher campaign``: show, create (a file streamed up), send, pause, resume, cancel,
watch (exit 0 completed, 3 failed or cancelled), export recipients as CSV, and show one
recipient's attempts (``cli_attempts.py``)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from dispatcher import cli_attempts
from dispatcher.api_client import ApiClient
from dispatcher.cli_ops import api_arguments, client, console, err_console, num, print_json
from dispatcher.cli_variants import variant_table, winner_line
from dispatcher.errors import ConfigError, ServiceError
from dispatcher.store.campaigns import FINAL
from dispatcher.store.models import CampaignStatus, RecipientStatus

EXIT_CAMPAIGN_NOT_COMPLETED = 3
CAMPAIGN_ACTIONS = (
    *("show", "create", "send", "pause", "resume", "cancel", "watch", "recipients", "attempts"),
)
CHUNK_BYTES = 64 * 1024
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
}
RECIPIENT_COLUMNS = (
    "id",
    "phone",
    "user_id",
    "status",
    "attempts",
    "instance_id",
    "wamid",
    "error_code",
    "error_message",
    "error_details",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "variables",
)
CAMPAIGN_COUNTERS = (
    ("recipients", "total_recipients"),
    ("pending", "pending"),
    ("queued", "queued"),
    ("sending", "sending"),
    ("sent", "total_sent"),
    ("delivered", "total_delivered"),
    ("read", "total_read"),
    ("failed", "total_failed"),
    ("waiting for a retry", "retry_waiting"),
    ("duplicates", "total_duplicates"),
    ("suppressed", "total_suppressed"),
    ("expired", "total_expired"),
    ("waiting", "waiting"),
    ("invalid", "total_invalid"),
)


def _show(args: argparse.Namespace) -> int:
    with client(args) as api:
        shown = api.get(f"/campaigns/{args.campaign_id}")
        variants = (
            api.get(f"/campaigns/{args.campaign_id}/variants") if shown.get("ab_test") else None
        )
    if args.json:
        print_json(shown if variants is None else {**shown, "variants": variants})
        return 0
    table = Table(title=f"Campaign '{shown['name']}' ({shown['id']}): {shown['status']}")
    table.add_column("counter")
    table.add_column("rows", justify="right")
    for title, key in CAMPAIGN_COUNTERS:
        table.add_row(title, num(shown.get(key)))
    console.print(table)
    if shown.get("total_duplicates"):
        console.print(
            "duplicates: rows naming a phone or BSUID the campaign has earlier; kept, never "
            "sent (listed by: dispatcher campaign recipients ID --status duplicate)"
        )
    if shown.get("total_suppressed"):
        console.print(
            "suppressed: recipients who stopped the business's marketing messages; settled, "
            "never sent (listed by: dispatcher campaign recipients ID --status suppressed)"
        )
    if shown.get("waiting"):
        console.print(
            f"waiting: pending recipients outside their send window (or a retry's delay); "
            f"the first may be sent at {shown.get('next_window_at')}"
        )
    if shown.get("total_invalid"):
        console.print(
            "invalid: phones in no numbering plan (an unassigned area code, a wrong length); "
            "kept, never sent (listed by: dispatcher campaign recipients ID --status invalid)"
        )
    if variants is not None:
        console.print(variant_table(variants))
        console.print(winner_line(variants))
    return 0


def content_type(path: Path) -> str:
    kind = CONTENT_TYPES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError("--file", f"{path.name}: name it .csv, .ndjson or .jsonl")
    return kind


def _file_chunks(path: Path, advance: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            advance(len(chunk))
            yield chunk


def _upload(api: ApiClient, campaign_id: str, path: Path, kind: str) -> dict[str, Any]:
    """Stream ``path`` to the campaign with a progress bar (on stderr) of the bytes sent."""
    progress = Progress(
        TextColumn(f"uploading {path.name}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("upload", total=path.stat().st_size)
        chunks = _file_chunks(path, lambda n: progress.advance(task, n))
        return api.upload(f"/campaigns/{campaign_id}/recipients", chunks, kind)


def _create(args: argparse.Namespace) -> int:
    path: Path | None = args.file
    kind = None
    if path is not None:
        kind = content_type(path)
        if not path.is_file():
            raise ConfigError("--file", f"{path}: no such file")
    components: list[Any] = []
    if args.components_file is not None:
        try:
            components = json.loads(args.components_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError("--components-file", f"{args.components_file}: {exc}") from None
    body = {
        "name": args.name,
        "instance_ids": args.instance,
        "template": {
            "name": args.template_name,
            "language": args.language,
            "components": components,
        },
    }
    body.update(_schedule(args))
    if (policy := cli_attempts.retry_policy(args.retry_policy_file)) is not None:
        body["retry_policy"] = policy
    appended = None
    with client(args) as api:
        campaign = api.post("/campaigns", body)
        if path is not None and kind is not None:
            try:
                appended = _upload(api, campaign["id"], path, kind)
            except Exception as exc:  # the API refused, or the file could not be read
                # All or nothing: a draft without its recipients is of no use to anyone.
                with contextlib.suppress(ServiceError):
                    api.post(f"/campaigns/{campaign['id']}/cancel")
                problem = exc.problem if isinstance(exc, ServiceError) else f"{path}: {exc}"
                raise ServiceError(
                    "api", f"{problem} (campaign {campaign['id']} cancelled)"
                ) from None
            campaign = api.get(f"/campaigns/{campaign['id']}")
    if args.json:
        print_json({"campaign": campaign, "upload": appended})
        return 0
    console.print(f"campaign {campaign['id']} ({campaign['name']}): {campaign['status']}")
    if appended is not None and path is not None:
        console.print(
            f"{appended['added']:,} recipients added from {path.name}, {appended['duplicates']:,} "
            f"of them duplicates and {appended.get('invalid', 0):,} invalid numbers (kept, never "
            f"sent); {appended['total_recipients']:,} in all"
        )
    console.print(f"send it with: dispatcher campaign send {campaign['id']}")
    return 0


def _act(args: argparse.Namespace) -> int:
    with client(args) as api:
        campaign = api.post(f"/campaigns/{args.campaign_id}/{args.action}")
    if args.json:
        print_json(campaign)
    else:
        console.print(f"campaign {campaign['id']}: {campaign['status']}")
    return 0


def settled(campaign: dict[str, Any]) -> int:
    """Recipients with a final outcome: sent (or beyond), failed, duplicate, suppressed or
    invalid."""
    return int(
        campaign["total_sent"]
        + campaign["total_failed"]
        + campaign["total_duplicates"]
        + campaign.get("total_suppressed", 0)
        + campaign.get("total_expired", 0)
        + campaign.get("total_invalid", 0)
    )


def _counts(campaign: dict[str, Any]) -> str:
    counts = (
        f"sent {campaign['total_sent']:,}  delivered {campaign['total_delivered']:,}  "
        f"read {campaign['total_read']:,}  failed {campaign['total_failed']:,}"
    )
    if campaign.get("total_expired"):
        counts += f"  expired {campaign['total_expired']:,}"
    if campaign.get("waiting"):
        counts += f"  waiting {campaign['waiting']:,} until {campaign.get('next_window_at')}"
    if campaign.get("retry_waiting"):
        counts += f"  (for a retry: {campaign['retry_waiting']:,})"
    return counts


def _schedule(args: argparse.Namespace) -> dict[str, Any]:
    """--window-file, --expires-at, --max-per-minute as the API takes them (it validates)."""
    given: dict[str, Any] = {}
    if args.window_file is not None:
        try:
            given["send_window"] = json.loads(args.window_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError("--window-file", f"{args.window_file}: {exc}") from None
    if args.expires_at is not None:
        given["expires_at"] = args.expires_at
    if args.max_per_minute is not None:
        given["max_per_minute"] = args.max_per_minute
    return given


def _watch(args: argparse.Namespace) -> int:
    """Live progress until the campaign is completed, failed or cancelled."""
    progress = Progress(
        TextColumn("[bold]{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        disable=args.json,
    )
    with client(args) as api, progress:
        campaign = api.get(f"/campaigns/{args.campaign_id}")
        task = progress.add_task("watch", total=None, status="", counts="")
        while True:
            progress.update(
                task,
                total=campaign["total_recipients"],
                completed=settled(campaign),
                status=campaign["status"],
                counts=_counts(campaign),
            )
            if campaign["status"] in FINAL:
                break
            time.sleep(args.interval)
            campaign = api.get(f"/campaigns/{args.campaign_id}")
    if args.json:
        print_json(campaign)
    else:
        reason = f" ({campaign['status_reason']})" if campaign.get("status_reason") else ""
        console.print(
            f"campaign {campaign['id']}: {campaign['status']}{reason}; {_counts(campaign)}"
        )
    return 0 if campaign["status"] == CampaignStatus.COMPLETED else EXIT_CAMPAIGN_NOT_COMPLETED


def _recipients(args: argparse.Namespace) -> int:
    """Every recipient (of one status) as CSV, or as one JSON array, streamed page by page."""
    params: dict[str, Any] = {"limit": args.page_size}
    if args.status:
        params["status"] = args.status
    out = sys.stdout
    with client(args) as api:
        items = api.pages(f"/campaigns/{args.campaign_id}/recipients", params)
        if args.json:
            out.write("[")
            for index, item in enumerate(items):
                out.write(("," if index else "") + "\n" + json.dumps(item))
            out.write("\n]\n")
            return 0
        writer = csv.writer(out)
        writer.writerow(RECIPIENT_COLUMNS)
        for item in items:
            row = [item.get(column) for column in RECIPIENT_COLUMNS]
            row[-1] = "" if item.get("variables") is None else json.dumps(item["variables"])
            writer.writerow(["" if cell is None else cell for cell in row])
    return 0


def add_parser(commands: Any) -> None:
    """``campaign`` and its actions, on the main parser's sub-commands."""
    campaign = commands.add_parser(
        "campaign", help="create, send, pause, resume, cancel, watch or export a campaign"
    )
    actions = campaign.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="status and counters (also: dispatcher campaign ID)")
    show.set_defaults(run=_show)
    create = actions.add_parser("create", help="a draft campaign, recipients from a file")
    create.add_argument("--name", required=True)
    create.add_argument("--template-name", required=True)
    create.add_argument("--language", required=True, help="the template's, e.g. en_US")
    create.add_argument(
        "--instance", required=True, action="extend", nargs="+", help="instance id(s)"
    )
    create.add_argument(
        "--file",
        type=Path,
        help="recipients: .csv (header: phone or user_id, variables) or .ndjson / .jsonl, streamed",
    )
    create.add_argument("--components-file", type=Path, help="the template's components (JSON)")
    create.add_argument(
        "--window-file",
        type=Path,
        help='send window (JSON): {"days": ["mon"], "start": "09:00", "end": "18:00", '
        '"timezone": "America/Sao_Paulo"}',
    )
    create.add_argument("--expires-at", help="ISO time with zone: unsent recipients expire")
    create.add_argument("--max-per-minute", type=int, help="a cap on the campaign's send rate")
    create.add_argument(
        "--retry-policy-file",
        type=Path,
        help='automatic retries (JSON: {"rules": [...]}, README "Automatic retry"); '
        "absent: the default",
    )
    create.set_defaults(run=_create)
    for name in ("send", "pause", "resume", "cancel"):
        act = actions.add_parser(name, help=f"{name} the campaign")
        act.set_defaults(run=_act)
    watch = actions.add_parser(
        "watch", help="live progress until done; exit 0 completed, 3 failed or cancelled"
    )
    watch.add_argument(
        "--interval", type=_seconds, default=1.0, help="seconds between polls (0.1 to 60)"
    )
    watch.set_defaults(run=_watch)
    export = actions.add_parser("recipients", help="export recipients as CSV (or --json)")
    export.add_argument("--status", choices=[s.value for s in RecipientStatus])
    export.add_argument(
        "--page-size", type=int, default=1_000, choices=range(1, 1_001), metavar="1-1000"
    )
    export.set_defaults(run=_recipients)
    cli_attempts.add_parser(actions)
    for name, parser in actions.choices.items():
        api_arguments(parser)
        if name != "create":
            parser.add_argument("campaign_id", type=_campaign_id, help="the campaign's id")


def campaign_shorthand(argv: list[str]) -> list[str]:
    """``dispatcher campaign ID`` is ``dispatcher campaign show ID``."""
    for index, word in enumerate(argv):
        if word == "campaign":
            rest = argv[index + 1 :]
            if rest and not rest[0].startswith("-") and rest[0] not in CAMPAIGN_ACTIONS:
                return [*argv[: index + 1], "show", *rest]
            break
        if not word.startswith("-"):
            break
    return argv


def _campaign_id(text: str) -> str:
    """A campaign id is a UUID: anything else is a usage error, never a path."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a campaign id: {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("between 0.1 and 60 seconds")
    return value
