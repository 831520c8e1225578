"""``dispatcher demo``: the whole system on this machine, one campaign, a live view, a summary.

Local Ray, embedded Redis and Postgres, the Meta sandbox with numbers of different limits in
portfolios of different tiers, the API receiving the sandbox's webhooks. Ctrl-C stops it all.
With ``keep``, everything stays up after the campaign, for a person to look around in the
console, until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from dispatcher.config import Settings
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig, WebhookConfig
from dispatcher.sandbox.server import SandboxProcess, free_port
from dispatcher.store.models import Campaign
from dispatcher.urls import redact

TEMPLATE = {
    "name": "campaign_promo",
    "language": "pt_BR",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{name}}"}]}],
}


@dataclass(frozen=True, slots=True)
class DemoNumber:
    phone_number_id: str
    business_id: str
    throughput_mps: int


# (portfolio, tier) and the numbers in it: a new portfolio (250 a day), a grown one (2K),
# a large one (100K) with an upgraded number (1,000 msg/s).
PORTFOLIOS = {
    "biz-new": MessagingTier.TIER_250,
    "biz-growing": MessagingTier.TIER_2K,
    "biz-large": MessagingTier.TIER_100K,
}
NUMBERS = [
    DemoNumber("1001", "biz-new", 80),
    DemoNumber("2001", "biz-growing", 80),
    DemoNumber("3001", "biz-large", 1_000),
    DemoNumber("2002", "biz-growing", 80),
    DemoNumber("3002", "biz-large", 250),
]


def sandbox_config(numbers: list[DemoNumber], webhook_url: str, app_secret: str) -> SandboxConfig:
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id=n.phone_number_id,
                token=f"demo-token-{n.phone_number_id}",
                business_id=n.business_id,
                display_phone_number=f"1555000{n.phone_number_id}",
                throughput_mps=n.throughput_mps,
                undeliverable=["+5511900000404"],
            )
            for n in numbers
        ],
        portfolios=[
            PortfolioConfig(business_id=b, messaging_tier=t)
            for b, t in PORTFOLIOS.items()
            if any(n.business_id == b for n in numbers)
        ],
        webhook=WebhookConfig(url=webhook_url, app_secret=app_secret, read_ratio=0.6),
    )


def run_demo(
    settings: Settings, recipients: int, numbers: int, console: Console, *, keep: bool = False
) -> int:
    """The main job; returns the exit code. Everything started here is stopped here."""
    from api.app import create_app
    from api.server import ApiServer
    from dispatcher.sdk import Dispatcher

    chosen = NUMBERS[: max(1, min(numbers, len(NUMBERS)))]
    app_secret = settings.app_secret.get_secret_value() or secrets.token_hex(16)
    generated = not settings.api_token.get_secret_value()
    settings = settings.model_copy(
        update={
            "app_secret": SecretStr(app_secret),
            "api_token": settings.api_token
            if settings.api_token.get_secret_value()
            else SecretStr(secrets.token_urlsafe(24)),
            "verify_token": settings.verify_token
            if settings.verify_token.get_secret_value()
            else SecretStr(secrets.token_urlsafe(12)),
        }
    )
    api_port = free_port()
    webhook_url = f"http://127.0.0.1:{api_port}/api/whatsapp/webhook"
    started = time.monotonic()
    console.print(f"[bold]Demo:[/bold] {recipients:,} recipients over {len(chosen)} numbers")
    with SandboxProcess(sandbox_config(chosen, webhook_url, app_secret)) as sandbox:
        console.print(f"  Meta sandbox   {sandbox.url}")
        settings = settings.model_copy(update={"graph_url": sandbox.url})
        dispatcher = Dispatcher.connect(settings=settings)
        api: ApiServer | None = None
        try:
            console.print(f"  Redis          {redact(dispatcher.deployment.redis_url)}")
            console.print(f"  Postgres       {redact(dispatcher.deployment.database_url)}")
            api = ApiServer(
                create_app(settings, dispatcher.deployment, dispatcher.coordinator), api_port
            ).start()
            where = "its token: below, at the end" if keep else "token in this process only"
            console.print(f"  API            {api.url}/api/whatsapp ({where})")
            console.print(f"  Ray dashboard  {_dashboard(dispatcher.dashboard_url)}")
            ids = [
                dispatcher.register_instance(
                    n.phone_number_id,
                    f"demo-token-{n.phone_number_id}",
                    n.business_id,
                    name=f"demo {n.phone_number_id}",
                    throughput_mps=n.throughput_mps,
                ).id
                for n in chosen
            ]
            campaign = dispatcher.create_campaign(
                "demo campaign",
                TEMPLATE,
                ids,
                (
                    {"phone": f"+5511{9_0000_0000 + i}", "variables": {"name": f"Cliente {i}"}}
                    for i in range(recipients)
                ),
            )
            console.print(
                f"  campaign       {campaign.id} ({campaign.total_recipients:,} recipients)"
            )
            send_started = time.monotonic()
            dispatcher.send(campaign.id)
            done = dispatcher.wait(campaign.id)
            send_s = time.monotonic() - send_started
            done = _settle_webhooks(dispatcher, done)
            audit = httpx.get(f"{sandbox.url}/_sandbox/audit", timeout=30).json()
            stats = dispatcher.stats()
            _summary(console, done, stats, audit, send_s, chosen)
            console.print(f"Ray dashboard: {_dashboard(dispatcher.dashboard_url)}")
            console.print(f"[dim]demo took {time.monotonic() - started:.1f}s in all")
            if keep:
                _keep_running(console, api.url, _token_hint(settings, generated), campaign.id)
        finally:
            console.print("[dim]stopping: API, actors, Ray, embedded services, sandbox")
            if api is not None:
                api.stop()
            dispatcher.close()
    return 0


def _token_hint(settings: Settings, generated: bool) -> str:
    """Where a person finds the API token: the demo's own is written to a private file
    (never printed: terminals are recorded and shared)."""
    if not generated:
        return "your DISPATCHER_API_TOKEN"
    path = Path(settings.data_dir) / "demo-api-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(settings.api_token.get_secret_value() + "\n")
    return f"the file {path.resolve()}"


def _keep_running(console: Console, api_url: str, token_hint: str, campaign_id: object) -> None:
    """Until Ctrl-C: the API, the actors and the services stay up."""
    console.print(f"[bold]Console:[/bold] {api_url}/console", soft_wrap=True)
    console.print(f"  log in with the API token in {token_hint}", soft_wrap=True)
    console.print(
        f"  CLI: export DISPATCHER_API_URL={api_url} and DISPATCHER_API_TOKEN, then "
        f"dispatcher campaign show {campaign_id}",
        soft_wrap=True,
    )
    console.print("Everything keeps running; Ctrl-C stops it.")
    # The signal only sets an event: no KeyboardInterrupt lands in the middle of Ray's or
    # the API's code, and the stop that follows is the ordinary one.
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    console.print()


def _settle_webhooks(dispatcher: Any, campaign: Campaign, timeout_s: float = 10.0) -> Campaign:
    """Give the last delivered / read webhooks a moment to arrive."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh: Campaign = dispatcher.campaign(campaign.id)
        if fresh.total_delivered + fresh.total_failed >= fresh.total_sent and fresh.total_read:
            return fresh
        time.sleep(0.5)
    result: Campaign = dispatcher.campaign(campaign.id)
    return result


def _summary(
    console: Console,
    campaign: Campaign,
    stats: dict[str, Any],
    audit: dict[str, Any],
    send_s: float,
    numbers: list[DemoNumber],
) -> None:
    table = Table(title=f"Campaign '{campaign.name}': {campaign.status}")
    settled = ("sent", "delivered", "read", "failed", "duplicates", "suppressed", "invalid")
    columns = ("recipients", *settled)
    for column in (*columns, "send time", "msg/s"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{campaign.total_recipients:,}",
        f"{campaign.total_sent:,}",
        f"{campaign.total_delivered:,}",
        f"{campaign.total_read:,}",
        f"{campaign.total_failed:,}",
        f"{campaign.total_duplicates:,}",
        f"{campaign.total_suppressed:,}",
        f"{campaign.total_invalid:,}",
        f"{send_s:.1f}s",
        f"{campaign.total_sent / max(send_s, 1e-9):,.0f}",
    )
    console.print(table)
    by_number = {s.get("phone_number_id"): s for s in stats["instances"].values()}
    portfolios = stats["portfolios"]
    numbers_table = Table(title="Numbers, as Meta (the sandbox) saw them")
    for column in (
        "number",
        "portfolio",
        "daily limit",
        "limit msg/s",
        "accepted",
        "max in any 1 s",
        "130429",
        "131056",
        "breaker",
    ):
        numbers_table.add_column(column, justify="right")
    for number in numbers:
        seen = audit["numbers"].get(number.phone_number_id, {})
        live = by_number.get(number.phone_number_id, {})
        limit = portfolios.get(number.business_id, {}).get("daily_limit")
        numbers_table.add_row(
            number.phone_number_id,
            number.business_id,
            "unlimited" if limit is None else f"{limit:,}",
            f"{number.throughput_mps:,}",
            f"{seen.get('accepted', 0):,}",
            str(seen.get("max_received_per_s", 0)),
            str(seen.get("errors", {}).get("130429", 0)),
            str(seen.get("errors", {}).get("131056", 0)),
            str(live.get("breaker", {}).get("state", "-")),
        )
    console.print(numbers_table)
    console.print(
        f"sandbox audit: {audit['accepted']:,} accepted, {audit['duplicate_sends']} duplicate "
        f"sends, {audit['throughput_violations']} throughput / {audit['pair_violations']} pair "
        f"/ {audit['tier_violations']} messaging-limit violations; "
        f"{audit['webhook_statuses']:,} statuses delivered by webhook"
    )
    waiting = unsettled(campaign)
    if waiting > 0:
        console.print(f"{waiting:,} recipients wait for their portfolio's 24 h window to move")


def unsettled(campaign: Campaign) -> int:
    """Recipients with no final outcome yet: not sent, failed, duplicate, suppressed or
    invalid (the last three are final without a send)."""
    return (
        campaign.total_recipients
        - campaign.total_sent
        - campaign.total_failed
        - campaign.total_duplicates
        - campaign.total_suppressed
        - campaign.total_invalid
    )


def _dashboard(url: str | None) -> str:
    if not url:
        return "not running (install ray[default])"
    return url if url.startswith("http") else f"http://{url}"
