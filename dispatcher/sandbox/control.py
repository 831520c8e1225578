"""A client for the sandbox's ``/_sandbox`` control API (tests, benchmarks, the demo)."""

from __future__ import annotations

from typing import Any

import httpx

from dispatcher.sandbox.config import NumberConfig, SandboxConfig


class SandboxControl:
    """Reset, inject faults, move the clock, flush webhooks and read the audit."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(base_url=url, timeout=30.0)

    async def reset(self, config: SandboxConfig | None = None) -> None:
        """Forget everything (audit, limits, faults, scheduled webhooks); maybe a new config."""
        body = config.model_dump_json().encode() if config is not None else b""
        (await self._client.post("/_sandbox/reset", content=body)).raise_for_status()

    async def faults(self, **update: Any) -> dict[str, Any]:
        """Set faults: latency_ms, error_5xx_ratio, timeout_ratio, timeout_s,
        accept_timeout_ratio, throttle_burst, expire_token, restore_token, clear."""
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

    async def other_sender(
        self, phone_number_id: str, callback_data: list[str], fail_code: int | None = None
    ) -> list[str]:
        """Another app sends on the number with its own callback data; their wamids."""
        body: dict[str, Any] = {"phone_number_id": phone_number_id, "callback_data": callback_data}
        if fail_code is not None:
            body["fail_code"] = fail_code
        response = await self._client.post("/_sandbox/other_sender", json=body)
        response.raise_for_status()
        return list(response.json()["wamids"])

    async def value_errors(self, phone_number_id: str, code: int = 130429) -> None:
        """POST a webhook with ``value.errors[]`` (no statuses) about the number, now."""
        response = await self._client.post(
            "/_sandbox/value_errors", json={"phone_number_id": phone_number_id, "code": code}
        )
        response.raise_for_status()

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

    async def add_number(self, number: NumberConfig, messaging_tier: str | None = None) -> None:
        """Add a number (and its portfolio, when new, at ``messaging_tier``)."""
        body = {"number": number.model_dump(mode="json"), "messaging_tier": messaging_tier}
        (await self._client.post("/_sandbox/numbers", json=body)).raise_for_status()

    async def set_tier(self, business_id: str, messaging_tier: str, notify: bool = True) -> None:
        """Change a portfolio's limit; ``notify`` sends business_capability_update."""
        response = await self._client.post(
            f"/_sandbox/portfolios/{business_id}/tier",
            json={"messaging_tier": messaging_tier, "notify": notify},
        )
        response.raise_for_status()

    async def emit_webhook(self, entry_id: str, field: str, value: dict[str, Any]) -> bool:
        """Post one operational webhook (signed); True when the endpoint answered 2xx."""
        response = await self._client.post(
            "/_sandbox/webhooks", json={"entry_id": entry_id, "field": field, "value": value}
        )
        response.raise_for_status()
        return bool(response.json()["delivered"])

    async def throughput_upgrade(self, phone_number_id: str, maintenance_s: float) -> None:
        """131057 on every call for ``maintenance_s``, then the THROUGHPUT_UPGRADE webhook,
        then 1,000 msg/s."""
        response = await self._client.post(
            f"/_sandbox/numbers/{phone_number_id}/throughput_upgrade",
            json={"maintenance_s": maintenance_s},
        )
        response.raise_for_status()

    async def aclose(self) -> None:
        await self._client.aclose()
