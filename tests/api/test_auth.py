from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import PREFIX, assert_error
from tests.stack import API_TOKEN, VERIFY_TOKEN


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Basic {API_TOKEN}",
        f"Token {API_TOKEN}",
        "Bearer wrong",
        f"Bearer {API_TOKEN}x",
        f"Bearer {API_TOKEN[:-1]}",
    ],
)
async def test_protected_endpoints_need_the_bearer_token(
    anonymous: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("GET", "/instances"),
        ("POST", "/instances"),
        ("POST", "/campaigns"),
        ("GET", "/campaigns"),
        ("GET", "/queue/stats"),
        ("POST", "/queue/stats"),
        ("GET", "/campaigns/00000000-0000-0000-0000-000000000000"),
    ]:
        response = await anonymous.request(method, PREFIX + path, headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_the_scheme_is_case_insensitive(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get(
        PREFIX + "/instances", headers={"Authorization": f"bearer {API_TOKEN}"}
    )
    assert response.status_code == 200


async def test_webhook_health_and_schema_are_public(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).status_code == 200
    assert (await anonymous.get("/openapi.json")).status_code == 200
    handshake = await anonymous.get(
        PREFIX + "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
    )
    assert handshake.status_code == 200
    # Not the bearer token: the webhook is refused for its missing signature.
    assert_error(await anonymous.post(PREFIX + "/webhook", content=b"{}"), 401, "bad_signature")
