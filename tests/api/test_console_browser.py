"""The console in a real headless Chromium (Debian's, driven by Playwright): sign in with the
token, watch a running campaign's progress move, pause it from the page."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.api.conftest import create_campaign, phones, register
from tests.stack import API_TOKEN, Stack, wait_until

if TYPE_CHECKING:
    from playwright.async_api import Locator

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# As root, on a machine without network: no sandbox, no background connections.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NUMBER = "6002"
RATE_MPS = 200
RECIPIENTS = 20 * RATE_MPS
"""~20 s at the number's rate: long enough to see it move and to pause it mid-way."""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
@pytest.mark.timeout(120)
async def test_the_console_shows_a_campaign_move_and_pauses_it(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    instance = await register(
        api,
        phone_number_id=NUMBER,
        access_token=stack.numbers[NUMBER],
        business_id="biz-large",
        throughput_mps=RATE_MPS,
    )
    campaign = await create_campaign(api, [instance["id"]], phones(RECIPIENTS))
    assert (await api.post(f"/campaigns/{campaign['id']}/send")).status_code == 200
    row = f'tr[data-campaign-id="{campaign["id"]}"]'
    try:
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(stack.api.url + "/console")
            await page.fill("#token", "not-the-token")
            await page.click("#token-form button[type=submit]")
            refused = page.locator("#login-error", has_text="refused")
            await refused.wait_for(timeout=10_000)
            assert await page.evaluate("sessionStorage.length") == 0
            await page.fill("#token", API_TOKEN)
            await page.click("#token-form button[type=submit]")
            assert API_TOKEN not in page.url
            assert await page.evaluate("sessionStorage.length") == 1

            sent = page.locator(f'{row} td[data-field="sent"]')
            await sent.wait_for(timeout=15_000)
            first = await _count(sent)
            deadline = time.monotonic() + 20
            second = first
            while second == first and time.monotonic() < deadline:
                await page.wait_for_timeout(500)
                second = await _count(sent)
            assert second > first, "the campaign's progress did not move on the page"
            rate = await page.locator(f'{row} td[data-field="rate"]').inner_text()
            eta = await page.locator(f'{row} td[data-field="eta"]').inner_text()
            assert rate.endswith("/s")
            assert float(rate.removesuffix("/s")) > 0, rate
            assert eta != "\u2013", eta  # an en dash: no ETA
            progress = await page.locator(f"{row} [role=progressbar]").get_attribute(
                "aria-valuenow"
            )
            assert progress is not None
            await page.locator(f'{row} button[data-action="pause"]').click()

            async def paused() -> bool:
                shown = (await api.get(f"/campaigns/{campaign['id']}")).json()
                return bool(shown["status"] == "paused")

            await wait_until(paused, timeout_s=15)
            await page.locator(f'{row} td[data-field="status"]', has_text="paused").wait_for()
            await page.locator("#instances td", has_text=NUMBER).first.wait_for()
            await page.locator("#portfolios td", has_text="biz-large").first.wait_for()
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / f"console-{int(time.time())}.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"console screenshot: {shot} (sent {first} -> {second}, {rate}, ETA {eta})")
            assert errors == []
            await browser.close()
    finally:
        await api.post(f"/campaigns/{campaign['id']}/cancel")


async def _count(cell: Locator) -> int:
    return int((await cell.inner_text()).replace(",", "") or 0)
