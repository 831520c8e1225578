"""The API over real HTTP against the whole stack (Ray, coordinator, sandbox, Postgres, Redis).

Tests share the session's stack, so each makes its own instances and campaigns (unique names)
and never depends on another's state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dispatcher.meta.callback_tag import CallbackTag
from dispatcher.meta.signature import sign
from dispatcher.store import Store
from tests.phones import block, phone
from tests.stack import API_TOKEN, APP_SECRET, Stack

PREFIX = "/api/whatsapp"
TEMPLATE = {"name": "hello_world", "language": "en_US", "components": []}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client on ``/api/whatsapp``."""
    async with httpx.AsyncClient(
        base_url=stack.api.url + PREFIX,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture
async def tag(store: Store) -> CallbackTag:
    """The deployment's callback tag: what our sends carry in biz_opaque_callback_data."""
    return await store.secrets.callback_tag()


@pytest.fixture
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials, at the server's root."""
    async with httpx.AsyncClient(base_url=stack.api.url, timeout=30) as client:
        yield client


async def register(
    api: httpx.AsyncClient, *, business_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A number the sandbox does not know: its sends fail for good (error 100), which is all
    an API test needs; ``throughput_mps`` is given so nothing is detected."""
    body = {
        "phone_number_id": unique("api"),
        "access_token": unique("token"),
        "business_id": business_id or unique("biz"),
        "throughput_mps": 1000,
        **fields,
    }
    response = await api.post("/instances", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="session")
async def idle_instance(stack: Stack) -> str:
    """One instance for the tests that create campaigns and never send them."""
    async with httpx.AsyncClient(
        base_url=stack.api.url + PREFIX, headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as client:
        return str((await register(client))["id"])


async def create_campaign(
    api: httpx.AsyncClient, instance_ids: list[str], recipients: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body = {
        "name": unique("campaign"),
        "instance_ids": instance_ids,
        "template": TEMPLATE,
        "recipients": recipients,
        **extra,
    }
    response = await api.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def phones(count: int, start: int = 0) -> list[dict[str, Any]]:
    base = block()
    return [{"phone": phone(base, start + i)} for i in range(count)]


def signed(payload: Any, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    return body, {"X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"}


FIXTURES = Path(__file__).parents[1] / "meta" / "fixtures"
"""Meta's documented webhook payloads (tests/meta/fixtures/README.md names each source)."""


def meta_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / name).read_bytes())
    return data


async def post_signed(anonymous: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    """POST a payload to the live webhook, signed as Meta signs it; it must get 200."""
    content, headers = signed(payload)
    response = await anonymous.post(PREFIX + "/webhook", content=content, headers=headers)
    assert response.status_code == 200, response.text


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The contract's error shape, with the expected status (and code)."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
