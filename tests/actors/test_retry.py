"""End to end over real HTTP: Meta fails a message with 131049 by webhook (the user's marketing
limit); the campaign's retry policy sends it again after its delay, through the normal path,
and the recipient's attempts show both codes."""

from __future__ import annotations

import json

import httpx
import pytest

from dispatcher.cli import main
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from tests.actors.test_campaign import TEMPLATE, register_all
from tests.stack import API_TOKEN, Stack, sandbox_config, wait_until

LIMITED = "+584120000049"
COOL_DOWN_S = 3.0
"""The sandbox delivers to LIMITED this long after its first 131049 (Meta: hours)."""
AFTER_S = 4.0
"""The campaign's delay before the retry: past the cool-down, so the retry goes through."""


async def test_a_131049_is_retried_after_the_policy_delay_and_both_attempts_show(
    stack: Stack,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = sandbox_config(str(stack.sandbox.config.webhook.url))
    config.engagement_limited = [LIMITED]
    config.engagement_cooldown_s = COOL_DOWN_S
    control = SandboxControl(stack.sandbox.url)
    await control.reset(config)
    ids = await register_all(store, stack, ["6002"])
    policy = {"rules": [{"codes": [131049], "after_s": AFTER_S, "max_rounds": 2}]}
    async with httpx.AsyncClient(
        base_url=stack.api.url + "/api/whatsapp",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    ) as api:
        try:
            created = await api.post(
                "/campaigns",
                json={
                    "name": "retry-131049",
                    "instance_ids": [str(i) for i in ids],
                    "template": TEMPLATE,
                    "recipients": [
                        {"phone": LIMITED},
                        *({"phone": f"+58414{i:07d}"} for i in range(10)),
                    ],
                    "retry_policy": policy,
                },
            )
            assert created.status_code == 201, created.text
            campaign_id = created.json()["id"]
            assert created.json()["retry_policy"]["rules"][0]["after_s"] == AFTER_S
            assert (await api.post(f"/campaigns/{campaign_id}/send")).status_code == 200

            async def waiting() -> dict | None:
                shown = (await api.get(f"/campaigns/{campaign_id}")).json()
                return shown if shown["retry_waiting"] == 1 else None

            # The first attempt failed by webhook: it waits for its retry, the campaign runs.
            during = await wait_until(waiting, timeout_s=60, every_s=0.1)
            assert during["status"] == "running"
            assert (during["pending"], during["total_failed"]) == (1, 0)

            async def completed() -> dict | None:
                shown = (await api.get(f"/campaigns/{campaign_id}")).json()
                return shown if shown["status"] == "completed" else None

            done = await wait_until(completed, timeout_s=90)
            assert (done["total_recipients"], done["total_sent"], done["total_failed"]) == (
                11,
                11,
                0,
            )
            assert (done["pending"], done["retry_waiting"]) == (0, 0)

            listed = (
                await api.get(f"/campaigns/{campaign_id}/recipients", params={"limit": 1})
            ).json()
            recipient_id = listed["items"][0]["id"]
            assert listed["items"][0]["phone"] == LIMITED
            shown = await api.get(
                f"/campaigns/{campaign_id}/attempts", params={"recipient_id": recipient_id}
            )
            assert shown.status_code == 200, shown.text
            attempts = shown.json()["attempts"]
            assert [(a["attempt"], a["error_code"]) for a in attempts] == [(1, 131049), (2, None)]
            assert attempts[0]["status"] == "failed"
            assert attempts[0]["retry_at"] is not None
            assert attempts[1]["status"] in ("sent", "delivered", "read")
            assert attempts[0]["wamid"] != attempts[1]["wamid"]
            # The CLI shows the same attempts.
            monkeypatch.setenv("DISPATCHER_API_TOKEN", API_TOKEN)
            capsys.readouterr()
            argv = ["campaign", "attempts", campaign_id, "--recipient", str(recipient_id)]
            assert main([*argv, "--api-url", stack.api.url, "--json"]) == 0
            shown_by_cli = json.loads(capsys.readouterr().out)["attempts"]
            # (the current attempt's status may have moved on meanwhile: delivered, read)
            stable = ("attempt", "wamid", "error_code", "error_message", "retry_at")
            assert [{k: a[k] for k in stable} for a in shown_by_cli] == [
                {k: a[k] for k in stable} for a in attempts
            ]
            assert main([*argv, "--api-url", stack.api.url]) == 0
            assert "131049" in capsys.readouterr().out

            # The sandbox saw the recipient twice, the second time after the policy's delay;
            # every other recipient once, and no limit broken.
            reached = [r for r in await control.requests() if r["recipient"] == LIMITED]
            assert [r["status"] for r in reached] == [200, 200]
            gap_s = reached[1]["t"] - reached[0]["t"]
            assert gap_s >= AFTER_S, gap_s
            audit = await control.audit()
            assert audit["accepted"] == 12
            assert audit["engagement_failures"] == 1
            assert (audit["pair_violations"], audit["tier_violations"]) == (0, 0)
            # One callback tag per recipient and attempt: the retry, an intended second
            # send, is no duplicate; a second send of the same attempt would be.
            assert audit["duplicate_sends"] == 0
            assert audit["unique_callback_data"] == 12
        finally:
            await control.reset()
            await control.aclose()


async def test_a_policy_that_retries_a_permanent_code_is_refused_naming_the_field(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(
        base_url=stack.api.url + "/api/whatsapp",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    ) as api:
        refused = await api.post(
            "/campaigns",
            json={
                "name": "retry-refused",
                "instance_ids": ["00000000-0000-0000-0000-000000000001"],
                "template": TEMPLATE,
                "retry_policy": {"rules": [{"codes": [131026], "after_s": 60}]},
            },
        )
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "retry_policy.rules.0.codes" in error["message"]
    assert "131026 is permanent" in error["message"]
