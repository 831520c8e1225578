"""Meta's documented limit and account webhooks (tests/meta/fixtures/), signed, to the live
webhook: each answered 200 and each with the effect DESIGN.md gives it. The fixtures name
WABA 102290129340398 and display number 15550783881; numbers mapped to them are registered
here (the display number is learnt from the sandbox's Graph API, not given)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from dispatcher.sandbox.config import NumberConfig
from dispatcher.sandbox.control import SandboxControl
from tests.api.conftest import meta_fixture as fixture
from tests.api.conftest import post_signed as post
from tests.stack import Stack, wait_until

WABA = "102290129340398"
DISPLAY = "15550783881"


@pytest.fixture
async def sandbox(stack: Stack) -> Any:
    control = SandboxControl(stack.sandbox.url)
    yield control
    await control.aclose()


async def number(
    api: httpx.AsyncClient,
    sandbox: SandboxControl,
    *,
    waba_id: str = WABA,
    display: str = DISPLAY,
    throughput_mps: int = 80,
) -> dict[str, Any]:
    """A sandbox number of a new portfolio (TIER_250), registered with its token and WABA
    only; returns the instance once its actor has read the number's facts."""
    pid = f"fx{uuid.uuid4().int % 10**10}"
    config = NumberConfig(
        phone_number_id=pid,
        token=f"tok-{pid}",
        business_id=f"biz-{pid}",
        display_phone_number=display,
        throughput_mps=throughput_mps,
        waba_id=waba_id,
    )
    await sandbox.add_number(config, "TIER_250")
    body = {
        "phone_number_id": pid,
        "access_token": config.token,
        "business_id": config.business_id,
        "waba_id": waba_id,
    }
    response = await api.post("/instances", json=body)
    assert response.status_code == 201, response.text
    instance_id = response.json()["id"]

    async def read() -> dict[str, Any] | None:
        found: dict[str, Any] = (await api.get(f"/instances/{instance_id}")).json()
        # Facts read by the coordinator at registration (no actor until work arrives).
        ready = (
            found["display_phone_number"] == display
            and (found.get("portfolio") or {}).get("limit_source") == "graph_api"
        )
        return found if ready else None

    found: dict[str, Any] = await wait_until(read, timeout_s=60)
    assert found["portfolio"]["limit_source"] == "graph_api"
    assert found["portfolio"]["tier"] == "TIER_250"
    return found


async def portfolio_of(api: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await api.get(f"/instances/{instance_id}")).json()["portfolio"]
    return result


@pytest.mark.parametrize(
    ("name", "entry", "tier"),
    [
        ("business_capability_update.json", "524126980791429", "TIER_2K"),
        ("business_capability_update_tier_string.json", WABA, "TIER_10K"),
        ("business_capability_update_legacy_unlimited.json", WABA, "TIER_UNLIMITED"),
    ],
)
async def test_business_capability_update_sets_the_portfolio_limit(
    api: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    sandbox: SandboxControl,
    name: str,
    entry: str,
    tier: str,
) -> None:
    instance = await number(api, sandbox, waba_id=entry, display=f"1555{uuid.uuid4().int % 10**7}")
    await post(anonymous, fixture(name))

    async def moved() -> dict[str, Any] | None:
        portfolio = await portfolio_of(api, instance["id"])
        return portfolio if portfolio["tier"] == tier else None

    portfolio = await wait_until(moved, timeout_s=30)
    assert portfolio["limit_source"] == "webhook"


async def test_throughput_upgrade_rereads_the_number(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, sandbox: SandboxControl
) -> None:
    instance = await number(api, sandbox)
    assert instance["throughput_mps"] == 80
    # Meta upgraded the number (its node now says HIGH); the webhook announces it.
    upgraded = NumberConfig(
        phone_number_id=instance["phone_number_id"],
        token=f"tok-{instance['phone_number_id']}",
        business_id=instance["business_id"],
        display_phone_number=DISPLAY,
        throughput_mps=1000,
        waba_id=WABA,
    )
    await sandbox.add_number(upgraded)
    await post(anonymous, fixture("phone_number_quality_update_throughput_upgrade.json"))

    async def faster() -> dict[str, Any] | None:
        found: dict[str, Any] = (await api.get(f"/instances/{instance['id']}")).json()
        # Re-read by the coordinator (the number has no actor: no work was routed to it).
        return found if found["throughput_mps"] == 1000 else None

    found = await wait_until(faster, timeout_s=30)
    # max_daily_conversations_per_business rides along: the portfolio's limit, by webhook
    # (or by the re-read, which the sandbox answers with the portfolio's own tier).
    assert found["portfolio"]["tier"] in ("TIER_UNLIMITED", "TIER_250")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("account_update_account_restriction.json", "RESTRICTED_BIZ_INITIATED_MESSAGING"),
        ("account_update_disabled_update.json", "waba_ban_state DISABLE"),
    ],
)
async def test_account_update_stops_the_accounts_numbers_until_reinstated(
    api: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    sandbox: SandboxControl,
    name: str,
    reason: str,
) -> None:
    instance = await number(api, sandbox)
    await post(anonymous, fixture(name))

    async def stopped() -> dict[str, Any] | None:
        found: dict[str, Any] = (await api.get(f"/instances/{instance['id']}")).json()
        state = (found.get("stats") or {}).get("state")
        halted = state in ("error", "stopped")  # no actor sends for it
        return found if found["status"] == "error" and halted else None

    found = await wait_until(stopped, timeout_s=60)
    assert reason in found["status_reason"]
    assert found["status_reason"].startswith("account_update")
    reinstate = fixture("account_update_disabled_update.json")
    reinstate["entry"][0]["changes"][0]["value"]["ban_info"]["waba_ban_state"] = "REINSTATE"
    await post(anonymous, reinstate)

    async def active() -> bool:
        found = (await api.get(f"/instances/{instance['id']}")).json()
        # Usable again: an actor starts for it once work is routed to it.
        return bool(found["status"] == "active")

    await wait_until(active, timeout_s=60)
