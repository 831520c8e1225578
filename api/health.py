"""``/healthz`` (the process answers) and ``/readyz`` (Postgres, Redis and Ray answer, and
Meta's webhook can be accepted)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api.errors import error_response, json_response
from api.openapi import Operation
from api.schemas import Health, Readiness
from api.state import app_state
from dispatcher.config import Settings, require
from dispatcher.errors import ConfigError

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = app_state(request)
    checks = await asyncio.gather(
        _check("postgres", state.store.pool.fetchval("SELECT 1")),
        _check("redis", state.queues.client.ping()),
        _check("ray", _coordinator_ready(state.coordinator)),
    )
    results = {**dict(checks), "webhook": _webhook_configured(state.settings)}
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        reasons = "; ".join(f"{name} ({results[name]})" for name in failed)
        return error_response(503, "not_ready", f"not ready: {reasons}", results)
    return json_response(Readiness(status="ready", checks=results).model_dump())


def _webhook_configured(settings: Settings) -> str:
    """Without an app secret every status webhook is refused, without a verify token Meta
    cannot subscribe: a dispatcher that would lose its statuses is not ready."""
    missing = []
    for name in ("app_secret", "verify_token"):
        try:
            require(settings, name)
        except ConfigError as exc:
            missing.append(exc.setting)
    return f"error: {', '.join(missing)} not configured" if missing else "ok"


async def _coordinator_ready(coordinator: Any) -> None:
    answer = await coordinator.ping.remote()
    if not answer.get("ready"):
        raise RuntimeError(answer.get("error") or "coordinator not ready")


async def _check(name: str, probe: Awaitable[Any]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %ss", name, CHECK_TIMEOUT_S)
        return name, "timeout"
    except Exception as exc:  # any failure means "not ready": report it, do not raise
        log.warning("readiness: %s failed: %s", name, type(exc).__name__)
        return name, f"error: {type(exc).__name__}"
    return name, "ok"


OPERATIONS = [
    Operation("GET", "/healthz", healthz, "Liveness", ("Alive", Health), public=True, root=True),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "Readiness: Postgres (SELECT 1), Redis (PING), the coordinator (ping), and the webhook's "
        "app secret and verify token configured",
        ("Ready", Readiness),
        public=True,
        root=True,
        errors=[503],
    ),
]
