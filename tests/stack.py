"""The whole dispatcher on this machine for end-to-end tests: Ray, the coordinator, the API on a
real port, and the Meta sandbox posting its webhooks to that API. Real parts only."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import ray
from pydantic import SecretStr
from ray.exceptions import GetTimeoutError, RayError

from actors.coordinator import coordinator_handle
from api.app import create_app
from api.server import ApiServer
from dispatcher.config import Settings
from dispatcher.deployment import Deployment
from dispatcher.engine.config import EngineConfig
from dispatcher.engine.pacing import PacingConfig
from dispatcher.keyfile import load_keyring
from dispatcher.meta.tiers import MessagingTier
from dispatcher.policies.circuit_breaker import CircuitBreakerConfig
from dispatcher.sandbox.config import (
    NumberConfig,
    PortfolioConfig,
    SandboxConfig,
    WebhookConfig,
)
from dispatcher.sandbox.server import SandboxProcess, free_port

API_TOKEN = "test-api-token"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"


def sandbox_config(webhook_url: str) -> SandboxConfig:
    """Numbers of different throughputs; two share a portfolio with a small limit (250)."""
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id="5001", token="tok-5001", business_id="biz-small", throughput_mps=80
            ),
            NumberConfig(
                phone_number_id="5002", token="tok-5002", business_id="biz-small", throughput_mps=40
            ),
            NumberConfig(
                phone_number_id="6001",
                token="tok-6001",
                business_id="biz-large",
                throughput_mps=500,
            ),
            NumberConfig(
                phone_number_id="6002",
                token="tok-6002",
                business_id="biz-large",
                throughput_mps=200,
            ),
        ],
        portfolios=[
            PortfolioConfig(business_id="biz-small", messaging_tier=MessagingTier.TIER_250),
            PortfolioConfig(business_id="biz-large", messaging_tier=MessagingTier.TIER_100K),
        ],
        webhook=webhook_config(webhook_url, APP_SECRET),
    )


def webhook_config(url: str | None, app_secret: str) -> WebhookConfig:
    """Statuses soon after each send, half of them read: a campaign's webhooks in seconds."""
    return WebhookConfig(
        url=url,
        app_secret=app_secret,
        sent_delay_s=0.0,
        delivered_delay_s=0.2,
        read_delay_s=0.4,
        read_ratio=0.5,
        flush_interval_s=0.1,
    )


@dataclass
class Stack:
    """Handles to everything a test drives or inspects."""

    deployment: Deployment
    settings: Settings
    coordinator: Any
    sandbox: SandboxProcess
    api: ApiServer
    numbers: dict[str, str] = field(default_factory=dict)
    """phone_number_id -> token, as the sandbox knows them."""


def test_engine_config() -> EngineConfig:
    """Short intervals so that recovery paths run within a test's time."""
    return EngineConfig(
        route_interval_s=0.1,
        recover_interval_s=5.0,
        visibility_timeout_s=15.0,
        touch_interval_s=3.0,
        in_doubt_min_wait_s=3.0,
        in_doubt_webhook_margin_s=2.0,
        in_doubt_max_wait_s=30.0,
        in_doubt_check_interval_s=1.0,
        backoff_base_s=0.05,
        backoff_cap_s=1.0,
        max_attempts=15,
        winner_check_interval_s=0.25,
        # Wider margins than the defaults: the tests assert zero throughput violations on a
        # 2-core machine that runs Ray, Postgres, the API and the sandbox at once, where the
        # sandbox is sometimes descheduled long enough to see a burst. `make bench` measures
        # the defaults.
        pacing=PacingConfig(
            rate_headroom=0.02,
            jitter_margin_s=0.02,
            breaker=CircuitBreakerConfig(open_duration_s=1.0),
        ),
    )


def start_stack(
    settings: Settings, database_url: str, redis_url: str, engine: EngineConfig | None = None
) -> Stack:
    tag = uuid.uuid4().hex[:8]
    api_port = free_port()
    sandbox = SandboxProcess(sandbox_config(f"http://127.0.0.1:{api_port}/api/whatsapp/webhook"))
    sandbox.start()
    settings = settings.model_copy(
        update={
            "graph_url": sandbox.url,
            "api_token": SecretStr(API_TOKEN),
            "app_secret": SecretStr(APP_SECRET),
            "verify_token": SecretStr(VERIFY_TOKEN),
        }
    )
    deployment = Deployment(
        database_url=database_url,
        redis_url=redis_url,
        graph_url=sandbox.url,
        api_version=settings.api_version,
        queue_prefix=f"test:{tag}:",
        namespace=f"test-{tag}",
        engine=engine or test_engine_config(),
        keyring=load_keyring(settings),
    )
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    coordinator = coordinator_handle(deployment)
    ready = ray.get(coordinator.ping.remote())
    if not ready["ready"]:
        raise RuntimeError(f"coordinator: {ready['error']}")
    api = ApiServer(create_app(settings, deployment, coordinator), api_port)
    api.start()
    numbers = {n.phone_number_id: n.token for n in sandbox.config.numbers}
    return Stack(deployment, settings, coordinator, sandbox, api, numbers)


def stop_stack(stack: Stack) -> None:
    """Stop it all. A graceful shutdown that overruns on a busy machine is not a test
    failure: whatever is left is killed, and the session's Ray goes with the process."""
    stack.api.stop()
    try:
        ray.get(stack.coordinator.shutdown.remote(), timeout=120)
    except (GetTimeoutError, RayError):
        logging.getLogger(__name__).warning("coordinator shutdown overran; killing it")
    finally:
        ray.kill(stack.coordinator, no_restart=True)
        stack.sandbox.stop()


async def wait_until(predicate: Any, timeout_s: float = 60.0, every_s: float = 0.2) -> Any:
    """Poll an async predicate until it returns something truthy (generous bounds: real time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout_s}s (last: {value!r})")
        await asyncio.sleep(every_s)
