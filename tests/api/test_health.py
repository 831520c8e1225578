from __future__ import annotations

import httpx

from tests.api.conftest import assert_error


async def test_healthz_is_public(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_postgres_redis_ray_and_the_webhook_secrets(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "redis": "ok", "ray": "ok", "webhook": "ok"},
    }


async def test_unknown_paths_and_methods_answer_json_errors(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/nowhere"), 404, "not_found")
    response = await api.delete("/instances")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]
