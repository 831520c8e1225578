"""A/B variants at the API: invalid settings are a 422 naming the field; a campaign's
variants, counters and winner are shown by ``GET /campaigns/{id}/variants``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import TEMPLATE, assert_error, create_campaign, phones, unique

A = {"name": "promo_a", "language": "en_US", "components": []}
B = {"name": "promo_b", "language": "pt_BR"}
TWO = [{"template": A}, {"template": B, "weight": 3, "label": "bold"}]


def _body(idle_instance: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("ab"), "instance_ids": [idle_instance], **fields}
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"template": TEMPLATE, "variants": TWO}, "template"),
        ({}, "template"),
        ({"variants": TWO[:1]}, "variants"),
        ({"variants": [{"template": A, "label": f"v{i}"} for i in range(11)]}, "variants"),
        ({"variants": [{"template": A, "weight": 0}, TWO[1]]}, "variants.0.weight"),
        ({"variants": [{"template": A, "weight": -1}, TWO[1]]}, "variants.0.weight"),
        (
            {"variants": [{"template": {"name": "Bad Name", "language": "en"}}, TWO[1]]},
            "variants.0.template.name",
        ),
        ({"variants": [{"template": A, "label": "x"}, {"template": B, "label": "x"}]}, "variants"),
        ({"variants": [{"template": A, "colour": "red"}, TWO[1]]}, "variants.0.colour"),
        ({"template": TEMPLATE, "auto_winner": {"min_sends_per_variant": 10}}, "auto_winner"),
        ({"template": TEMPLATE, "confidence": 0.9}, "confidence"),
        ({"variants": TWO, "confidence": 1.0}, "confidence"),
        (
            {"variants": TWO, "auto_winner": {"min_sends_per_variant": 0}},
            "auto_winner.min_sends_per_variant",
        ),
        ({"variants": TWO, "auto_winner": {"confidence": 0.2}}, "auto_winner.confidence"),
        ({"variants": TWO, "auto_winner": {"max_looks": 21}}, "auto_winner.max_looks"),
        ({"variants": TWO, "auto_winner": {"read_after_s": -1}}, "auto_winner.read_after_s"),
    ],
)
async def test_invalid_settings_are_a_422_naming_the_field(
    api: httpx.AsyncClient, idle_instance: str, fields: dict[str, Any], where: str
) -> None:
    response = await api.post("/campaigns", json=_body(idle_instance, **fields))
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith(f"{where}:"), error["message"]
    assert ".".join(error["details"][0]["loc"]) == where


async def test_a_campaign_of_variants_shows_them_with_zero_counters(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await create_campaign(
        api,
        [idle_instance],
        phones(40),
        template=None,
        variants=TWO,
        auto_winner={"min_sends_per_variant": 50},
    )
    assert campaign["template"]["name"] == "promo_a"  # the first variant's
    assert [v["label"] for v in campaign["ab_test"]["variants"]] == ["A", "bold"]
    shown = (await api.get(f"/campaigns/{campaign['id']}/variants")).json()
    assert shown["confidence"] == 0.95
    assert shown["auto_winner"] == {
        "min_sends_per_variant": 50,
        "confidence": 0.95,
        "max_looks": 5,
        "read_after_s": 3_600.0,
    }
    assert shown["winner"] is None
    lines = shown["variants"]
    assert [(v["variant"], v["label"], v["weight"]) for v in lines] == [
        (0, "A", 1.0),
        (1, "bold", 3.0),
    ]
    assert [(v["sent"], v["delivered"], v["read"], v["failed"]) for v in lines] == [
        (0, 0, 0, 0)
    ] * 2
    assert [(v["read_rate"], v["read_rate_low"], v["read_rate_high"]) for v in lines] == [
        (None, 0.0, 1.0)
    ] * 2


async def test_a_campaign_of_one_template_has_no_variants(
    api: httpx.AsyncClient, idle_instance: str
) -> None:
    campaign = await create_campaign(api, [idle_instance], phones(2))
    assert campaign["ab_test"] is None
    assert_error(await api.get(f"/campaigns/{campaign['id']}/variants"), 404, "not_found")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(await api.get(f"/campaigns/{missing}/variants"), 404, "not_found")
