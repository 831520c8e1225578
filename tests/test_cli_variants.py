"""``dispatcher campaign show`` of an A/B campaign: the per-variant table and the winner."""

from __future__ import annotations

import uuid

import httpx
import pytest

from dispatcher.ab.winner import Decision
from dispatcher.cli import main
from dispatcher.store import Store
from tests.api.conftest import PREFIX, create_campaign, phones, register
from tests.stack import API_TOKEN, Stack

VARIANTS = [
    {"template": {"name": "promo_a", "language": "en_US"}, "label": "short"},
    {"template": {"name": "promo_b", "language": "en_US"}, "label": "long"},
]
FIGURES = {
    "confidence": 0.95,
    "variants": [
        {"label": "short", "sent": 100, "read": 20, "read_rate": 0.2},
        {"label": "long", "sent": 100, "read": 45, "read_rate": 0.45},
    ],
}


async def test_show_prints_the_variants_and_the_winner(
    stack: Stack, store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=stack.api.url + PREFIX, headers=headers) as api:
        instance = await register(api)
        created = await create_campaign(
            api, [instance["id"]], phones(10), template=None, variants=VARIANTS
        )
    monkeypatch.setenv("DISPATCHER_API_TOKEN", API_TOKEN)
    assert main(["campaign", created["id"], "--api-url", stack.api.url]) == 0
    out = capsys.readouterr().out
    assert "Variants (read rate = read / sent; interval at 95%)" in out
    assert "promo_a" in out
    assert "promo_b" in out
    assert "winner: none (no automatic winner set)" in out

    await store.variants.record_winner(uuid.UUID(created["id"]), Decision(1, 3.2, 0.0007, FIGURES))
    assert main(["campaign", created["id"], "--api-url", stack.api.url]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps the winner's line
    assert "long (winner)" in out
    assert "winner: long, decided at " in out
    assert "(z 3.20, one-sided p 0.0007 at 95%) on short 20/100 = 20.0%, long 45/100 = 45.0%" in out
    assert main(["campaign", "show", created["id"], "--api-url", stack.api.url, "--json"]) == 0
    assert '"winner"' in capsys.readouterr().out
