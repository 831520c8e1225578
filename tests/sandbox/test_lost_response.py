"""The sandbox's lost response: Meta took the message, the client sees only a 504 later."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from dispatcher.sandbox.config import demo_config
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess

BODY = {
    "messaging_product": "whatsapp",
    "to": "+5511900000001",
    "type": "template",
    "template": {"name": "hello_world", "language": {"code": "en_US"}},
    "biz_opaque_callback_data": "r-1",
}


@pytest.fixture(scope="module")
def sandbox_url() -> AsyncIterator[str]:
    with SandboxProcess(demo_config()) as process:
        yield process.url


async def test_an_accepted_send_whose_answer_is_lost_is_audited_as_accepted(
    sandbox_url: str,
) -> None:
    control = SandboxControl(sandbox_url)
    await control.reset()
    await control.faults(accept_timeout_ratio=1.0, timeout_s=0.5)
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as http:
        began = time.monotonic()
        answer = await http.post(
            "/v23.0/1001/messages",
            json=BODY,
            headers={"Authorization": "Bearer sandbox-token-1001"},
        )
        waited = time.monotonic() - began
        refused = await http.post(
            "/v23.0/1001/messages", json=BODY, headers={"Authorization": "Bearer wrong"}
        )
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == 2
    assert waited >= 0.5
    assert refused.status_code == 401  # only an accepted send loses its answer
    audit = await control.audit()
    assert audit["accepted"] == 1
    assert audit["unique_callback_data"] == 1
    assert audit["faults_injected"] == {"accept_timeout": 1}
    accepted = [r for r in await control.requests() if r["status"] == 200]
    assert [r["recipient"] for r in accepted] == [BODY["to"]]  # Meta took it
    await control.faults(clear=True)
    assert (await control.faults())["accept_timeout_ratio"] == 0.0
    await control.aclose()
