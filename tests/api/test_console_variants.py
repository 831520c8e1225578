"""The console's A/B table in a real headless Chromium: an A/B campaign's variants appear,
one row each, with their template, weight and counters."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import create_campaign, phones
from tests.api.test_console_browser import CHROMIUM, open_console
from tests.stack import API_TOKEN, Stack

pytestmark = pytest.mark.browser

VARIANTS = [
    {"template": {"name": "promo_a", "language": "en_US"}, "label": "short"},
    {"template": {"name": "promo_b", "language": "en_US"}, "weight": 3, "label": "long"},
]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
@pytest.mark.timeout(120)
async def test_the_console_lists_an_ab_campaigns_variants(
    stack: Stack, api: httpx.AsyncClient, idle_instance: str
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    campaign = await create_campaign(
        api,
        [idle_instance],
        phones(30),
        template=None,
        variants=VARIANTS,
        auto_winner={"min_sends_per_variant": 100},
    )
    async with playwright_api.async_playwright() as playwright:
        browser, page, errors = await open_console(playwright, stack.api.url)
        await page.fill("#token", API_TOKEN)
        await page.click("#token-form button[type=submit]")
        for index, label, template, weight in (
            (0, "short", "promo_a", "1"),
            (1, "long", "promo_b", "3"),
        ):
            row = page.locator(f'#variants tr[data-key="{campaign["id"]}/{index}"]')
            await row.wait_for(timeout=15_000)
            assert await row.locator('td[data-field="variant"]').inner_text() == label
            assert await row.locator('td[data-field="template"]').inner_text() == template
            assert await row.locator('td[data-field="weight"]').inner_text() == weight
            assert await row.locator('td[data-field="sent"]').inner_text() == "0"
            assert await row.locator('td[data-field="read_rate"]').inner_text() == "\u2013"
            assert await row.locator('td[data-field="winner"]').inner_text() == "deciding"
        assert errors == []
        await browser.close()
