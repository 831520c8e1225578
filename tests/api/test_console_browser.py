"""The console in a real headless Chromium (Debian's, driven by Playwright): sign in with the
token, watch a running campaign's progress move, pause it from the page; an old campaign still
to act on stays listed, read with two calls a second; a campaign in both listings shows once,
newest first by time, and a cut listing says so; the progress label reads on the bar whatever
its fill; an A/B campaign's variants are listed.

Without a chromium (or Playwright) these tests skip; with ``DISPATCHER_REQUIRE_BROWSER=1``
(CI sets it where it installed chromium) they fail instead, so a browser that went missing
cannot pass unnoticed."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from dispatcher.store import Store
from tests.api.conftest import create_campaign, phones, register
from tests.stack import API_TOKEN, Stack, wait_until

# Campaigns made straight in the store carry a template the API would accept: other tests of
# the session (the schemathesis fuzz) may reach them through the listing and append to them.
STORED_TEMPLATE = {"name": "console_test", "language": "en_US"}

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

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
REQUIRE_BROWSER = "DISPATCHER_REQUIRE_BROWSER"
NUMBER = "6002"
RATE_MPS = 200
RECIPIENTS = 20 * RATE_MPS
"""~20 s at the number's rate: long enough to see it move and to pause it mid-way."""


def no_browser(reason: str) -> None:
    """Skip, or fail where a browser is required (``DISPATCHER_REQUIRE_BROWSER=1``)."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_BROWSER}=1")
    pytest.skip(reason)


@pytest.fixture
async def page(request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh page of a headless Chromium on the console, not signed in. The browser is
    looked for before the stack starts: a missing one skips (or fails) at once."""
    if CHROMIUM is None:
        no_browser("no chromium on PATH (apt-get install chromium)")
    try:
        from playwright.async_api import Error, async_playwright
    except ImportError:
        no_browser("playwright is not installed")
    stack: Stack = request.getfixturevalue("stack")
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        except Error as exc:
            no_browser(f"chromium at {CHROMIUM} did not start: {str(exc)[:300]}")
        one = await browser.new_page(viewport={"width": 1440, "height": 900})
        await one.goto(stack.api.url + "/console")
        yield one
        await browser.close()


async def sign_in(page: Page) -> None:
    await page.fill("#token", API_TOKEN)
    await page.click("#token-form button[type=submit]")


@pytest.mark.timeout(120)
async def test_the_console_shows_a_campaign_move_and_pauses_it(
    stack: Stack, api: httpx.AsyncClient, page: Page
) -> None:
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
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.fill("#token", "not-the-token")
        await page.click("#token-form button[type=submit]")
        refused = page.locator("#login-error", has_text="refused")
        await refused.wait_for(timeout=10_000)
        assert await page.evaluate("sessionStorage.length") == 0
        await sign_in(page)
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
        progress = await page.locator(f"{row} [role=progressbar]").get_attribute("aria-valuenow")
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
    finally:
        await api.post(f"/campaigns/{campaign['id']}/cancel")


@pytest.mark.timeout(120)
async def test_a_campaign_to_act_on_stays_listed_behind_a_hundred_newer_ones(
    store: Store, api: httpx.AsyncClient, page: Page
) -> None:
    later = datetime(2099, 1, 1, tzinfo=UTC)
    old = await store.campaigns.create(
        "console-old-scheduled", STORED_TEMPLATE, [], scheduled_at=later
    )
    for i in range(101):  # newer, none to act on: the newest hundred leave the old one out
        await store.campaigns.create(f"console-draft-{i}", STORED_TEMPLATE, [])
    listings: list[float] = []
    page.on(
        "request",
        lambda request: listings.append(time.monotonic()) if "/campaigns?" in request.url else None,
    )
    try:
        await sign_in(page)
        await page.locator(f'tr[data-campaign-id="{old.id}"]').wait_for(timeout=15_000)
        drafts = page.locator("#campaigns td", has_text="console-draft-")
        assert await drafts.count() >= 99  # the newest others are there too
        assert await page.locator("#campaigns-more").is_hidden()  # every active one listed
        began = time.monotonic()
        await page.wait_for_timeout(4_000)
        calls = [at for at in listings if at >= began]
        assert len(calls) <= 2 * 5, calls  # the newest and the active ones: 2 a poll
    finally:
        await api.post(f"/campaigns/{old.id}/cancel")


def shown_as(template: dict[str, Any], name: str, status: str, created: str, updated: str) -> Any:
    return {**template, "id": str(uuid.uuid4()), "name": name, "status": status,
            "created_at": created, "updated_at": updated}  # fmt: skip


@pytest.mark.timeout(120)
async def test_each_campaign_shows_once_newest_first_and_a_cut_listing_says_so(
    store: Store, api: httpx.AsyncClient, page: Page
) -> None:
    made = await store.campaigns.create("console-template", STORED_TEMPLATE, [])
    template = (await api.get(f"/campaigns/{made.id}")).json()
    # 08:00Z written with its offset: as text it sorts after 09:00Z.
    older = shown_as(template, "older", "running", "2026-01-01T10:00:00+02:00", "2026-01-01T10:00Z")
    newer = shown_as(template, "newer", "held", "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z")
    moved = shown_as(template, "moved", "running", "2026-01-01T07:00:00Z", "2026-01-01T10:00:00Z")
    ended = {**moved, "status": "completed", "updated_at": "2026-01-01T10:05:00Z"}
    draft = shown_as(template, "draft", "draft", "2026-01-01T06:00:00Z", "2026-01-01T06:00:00Z")

    async def listing(route: Any) -> None:
        if "status=" in route.request.url:  # every page full: more than the console reads
            body = {"items": [older, moved, newer], "next_after": newer["id"]}
        else:  # "moved" ended between the two calls
            body = {"items": [ended, draft], "next_after": None}
        await route.fulfill(json=body)

    await page.route("**/campaigns?*", listing)
    try:
        await sign_in(page)
        rows = page.locator("#campaigns tr[data-campaign-id]")
        await page.locator(f'tr[data-campaign-id="{draft["id"]}"]').wait_for(timeout=15_000)
        ids = await rows.evaluate_all("(rows) => rows.map((row) => row.dataset.campaignId)")
        assert ids == [newer["id"], older["id"], moved["id"], draft["id"]]
        status = page.locator(f'tr[data-campaign-id="{moved["id"]}"] td[data-field="status"]')
        assert "completed" in await status.inner_text()
        more = page.locator("#campaigns-more")
        assert await more.is_visible()
        assert "there are more" in await more.inner_text()
    finally:
        await api.post(f"/campaigns/{made.id}/cancel")


@pytest.mark.timeout(120)
async def test_a_campaign_row_shows_what_waits_for_its_window_and_its_retries(
    store: Store, api: httpx.AsyncClient, page: Page
) -> None:
    """The API's own answer for a campaign, with rows waiting for their window and for a
    retry and some expired (served to the page as the API would answer it)."""
    created = await store.campaigns.create("console-waiting", {}, [])
    shown = (await api.get(f"/campaigns/{created.id}")).json()
    shown.update(
        status="running",
        pending=8,
        waiting=5,
        next_window_at="2099-01-01T09:00:00Z",
        retry_waiting=3,
        total_expired=2,
    )

    async def answer(route: Any) -> None:
        await route.fulfill(json={"items": [shown], "next_after": None})

    await page.route("**/api/whatsapp/campaigns?**", answer)
    try:
        await sign_in(page)
        status = page.locator(f'tr[data-campaign-id="{created.id}"] td[data-field="status"]')
        await status.wait_for(timeout=15_000)
        notes = {
            note: await status.locator(f'[data-note="{note}"]').inner_text()
            for note in ("waiting", "retry_waiting", "expired")
        }
        assert notes["waiting"].startswith("5 waiting until ")
        assert "2099" in notes["waiting"]
        assert notes["retry_waiting"] == "3 waiting for a retry"
        assert notes["expired"] == "2 expired"
    finally:
        await api.post(f"/campaigns/{created.id}/cancel")


def luminance(css: str) -> float:
    """WCAG relative luminance of an ``rgb(r, g, b)`` / ``rgba(...)`` computed colour."""
    channels = [float(c) / 255 for c in css[css.index("(") + 1 : -1].split(",")[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Builds a bar as console.js does, then reads the label's colour and the background under
# its left, middle and right (the fill's where it reaches, else the bar's track).
UNDER_LABEL = """(percent) => {
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = percent + "%";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = "1,234 / 2,468";
  bar.append(fill, label);
  document.body.prepend(bar);
  const box = label.getBoundingClientRect();
  const y = box.top + box.height / 2;
  const under = [box.left + 2, box.left + box.width / 2, box.right - 2].map((x) => {
    const stack = document.elementsFromPoint(x, y);
    const behind = stack.find((node) => node === fill || node === bar);
    return getComputedStyle(behind).backgroundColor;
  });
  const color = getComputedStyle(label).color;
  bar.remove();
  return { color, under };
}"""


async def test_the_progress_label_reads_on_an_empty_half_and_full_bar(page: Page) -> None:
    for percent in (0, 50, 100):
        seen: dict[str, Any] = await page.evaluate(UNDER_LABEL, percent)
        for background in seen["under"]:
            ratio = contrast(seen["color"], background)
            assert ratio >= 4.5, (percent, seen["color"], background, round(ratio, 2))


async def _count(cell: Locator) -> int:
    return int((await cell.inner_text()).replace(",", "") or 0)


def test_a_missing_browser_fails_where_one_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match="no chromium, and DISPATCHER_REQUIRE"):
        no_browser("no chromium")
    monkeypatch.delenv(REQUIRE_BROWSER)
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        no_browser("no chromium")


AB_VARIANTS = [
    {"template": {"name": "promo_a", "language": "en_US"}, "label": "short"},
    {"template": {"name": "promo_b", "language": "en_US"}, "weight": 3, "label": "long"},
]


@pytest.mark.timeout(120)
async def test_an_ab_campaigns_variants_are_listed_one_row_each(
    api: httpx.AsyncClient, idle_instance: str, page: Page
) -> None:
    campaign = await create_campaign(
        api,
        [idle_instance],
        phones(30),
        template=None,
        variants=AB_VARIANTS,
        auto_winner={"min_sends_per_variant": 100},
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page)
    for index, (label, template, weight) in enumerate(
        (("short", "promo_a", "1"), ("long", "promo_b", "3"))
    ):
        row = page.locator(f'#variants tr[data-key="{campaign["id"]}/{index}"]')
        await row.wait_for(timeout=15_000)
        shown = {
            field: await row.locator(f'td[data-field="{field}"]').inner_text()
            for field in ("variant", "template", "weight", "sent", "read_rate", "winner")
        }
        assert shown == {
            "variant": label,
            "template": template,
            "weight": weight,
            "sent": "0",
            "read_rate": "\u2013",  # an en dash: no rate before any send
            "winner": "deciding",
        }
    assert errors == []


@pytest.mark.timeout(120)
async def test_one_failed_variants_report_marks_its_campaign_and_keeps_the_others(
    api: httpx.AsyncClient, idle_instance: str, page: Page
) -> None:
    kept, broken = [
        await create_campaign(api, [idle_instance], phones(10), template=None, variants=AB_VARIANTS)
        for _ in range(2)
    ]

    async def refuse(route: Any) -> None:
        await route.fulfill(status=503, content_type="application/json", body='{"error": "x"}')

    await page.route(f"**/campaigns/{broken['id']}/variants", refuse)
    await sign_in(page)
    row = page.locator(f'#variants tr[data-key="{kept["id"]}/1"]')
    await row.wait_for(timeout=15_000)
    assert await row.locator('td[data-field="variant"]').inner_text() == "long"
    failed = page.locator(f'#variants tr[data-key="{broken["id"]}/unavailable"]')
    await failed.wait_for(timeout=15_000)
    assert await failed.locator('td[data-field="variant"]').inner_text() == "unavailable"
    assert "variants not loaded" in await failed.locator('td[data-field="template"]').inner_text()
