"""A client for the sandbox's ``/_sandbox`` control API (tests, benchmarks, the demo)."""

from __future__ import annotations

from typing import Any

import httpx

from dispatcher.sandbox.config import SandboxConfig


class SandboxControl:
    """Reset, inject faults, move the clock, flush webhooks and read the audit."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(base_url=url, timeout=30.0)

    async def reset(self, config: SandboxConfig | None = None) -> None:
        """Forget everything (audit, limits, faults, scheduled webhooks); maybe a new config."""
        body = config.model_dump_json().encode() if config is not None else b""
        (await self._client.post("/_sandbox/reset", content=body)).raise_for_status()

    async def faults(self, **update: Any) -> dict[str, Any]:
        """Set faults: latency_ms, error_5xx_ratio, timeout_ratio, timeout_s, throttle_burst,
        expire_token, restore_token, clear."""
        response = await self._client.post("/_sandbox/faults", json=update)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock forward (limits' windows, webhook schedule)."""
        response = await self._client.post("/_sandbox/clock", json={"advance_s": seconds})
        response.raise_for_status()

    async def flush_webhooks(self) -> int:
        """POST every due status now; how many were due."""
        response = await self._client.post("/_sandbox/flush")
        response.raise_for_status()
        return int(response.json()["flushed"])

    async def audit(self) -> dict[str, Any]:
        response = await self._client.get("/_sandbox/audit")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def requests(self, limit: int = 1000) -> list[dict[str, Any]]:
        response = await self._client.get("/_sandbox/requests", params={"limit": limit})
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    async def aclose(self) -> None:
        await self._client.aclose()
