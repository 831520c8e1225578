"""``/console``: the page and its assets are public; every data call it makes is not."""

from __future__ import annotations

import httpx

from api import console
from tests.api.conftest import PREFIX, assert_error
from tests.stack import API_TOKEN


async def test_the_page_is_served_without_the_token(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form id="token-form"' in page.text
    assert 'src="/console/console.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "form-action 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = await anonymous.get("/console/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text
    style = await anonymous.get("/console/console.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert API_TOKEN not in page.text + script.text


async def test_the_script_writes_no_html(anonymous: httpx.AsyncClient) -> None:
    script = (await anonymous.get("/console/console.js")).text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    # The token goes in a header, never in a URL or a cookie.
    assert "Authorization: `Bearer ${sessionStorage.getItem(KEY)}`" in script
    assert "document.cookie" not in script


async def test_the_data_it_reads_still_needs_the_token(anonymous: httpx.AsyncClient) -> None:
    for path in ("/campaigns?limit=100", "/queue/stats", "/instances"):
        assert_error(await anonymous.get(PREFIX + path), 401, "unauthorized")
        allowed = await anonymous.get(
            PREFIX + path, headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert allowed.status_code == 200, allowed.text
    clear = {"action": "clear", "queue": "webhooks"}
    assert_error(await anonymous.post(PREFIX + "/queue/stats", json=clear), 401, "unauthorized")


async def test_only_the_page_and_its_assets_are_public(anonymous: httpx.AsyncClient) -> None:
    assert {"/console", "/console/console.js", "/console/console.css"} == console.PATHS
    assert (await anonymous.get("/console/other")).status_code == 401
    assert (await anonymous.post("/console")).status_code == 405
