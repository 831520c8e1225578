"""Template components as Meta's send takes them: every documented kind passes unchanged,
anything else is a ValidationError naming where, whatever its size or depth."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from dispatcher.meta.components import (
    MAX_BUTTON_INDEX,
    MAX_COMPONENTS,
    MAX_COMPONENTS_BYTES,
    MAX_PARAMETERS,
    Components,
    as_json,
)

COMPONENTS: TypeAdapter[Any] = TypeAdapter(Components)


def body(*parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "body", "parameters": list(parameters)}


def button(sub_type: str, index: int | str, *parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "button", "sub_type": sub_type, "index": index, "parameters": list(parameters)}


MEDIA_HEADER = {
    "type": "header",
    "parameters": [{"type": "image", "image": {"link": "https://x/a.png"}}],
}
DOCUMENTED: dict[str, list[dict[str, Any]]] = {
    "text body": [body({"type": "text", "text": "Olá {{name}}"})],
    "named parameter": [body({"type": "text", "parameter_name": "name", "text": "Ana"})],
    "currency and date_time": [
        body(
            {
                "type": "currency",
                "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990},
            },
            {
                "type": "date_time",
                "date_time": {"fallback_value": "February 25, 1977", "day_of_week": 5},
            },
        )
    ],
    "media headers": [
        MEDIA_HEADER,
        {
            "type": "header",
            "parameters": [{"type": "document", "document": {"id": "123", "filename": "a.pdf"}}],
        },
        {"type": "header", "parameters": [{"type": "video", "video": {"id": "456"}}]},
    ],
    "location header": [
        {
            "type": "header",
            "parameters": [
                {
                    "type": "location",
                    "location": {
                        "latitude": 37.48,
                        "longitude": -122.14,
                        "name": "HQ",
                        "address": "1 Way",
                    },
                }
            ],
        }
    ],
    "product header": [
        {
            "type": "header",
            "parameters": [
                {"type": "product", "product": {"catalog_id": "1", "product_retailer_id": "sku"}}
            ],
        }
    ],
    "quick replies": [
        button("quick_reply", "0", {"type": "payload", "payload": "STOP"}),
        button("quick_reply", 1, {"type": "payload", "payload": "MORE"}),
    ],
    "url button": [button("url", 0, {"type": "text", "text": "order/123"})],
    "copy code": [button("copy_code", 0, {"type": "coupon_code", "coupon_code": "SAVE25"})],
    "flow": [
        button(
            "flow",
            0,
            {
                "type": "action",
                "action": {"flow_token": "t", "flow_action_data": {"a": 1, "b": ["x", 2]}},
            },
        )
    ],
    "catalog": [
        button("catalog", 0, {"type": "action", "action": {"thumbnail_product_retailer_id": "sku"}})
    ],
    "multi-product": [
        button(
            "mpm",
            0,
            {
                "type": "action",
                "action": {
                    "thumbnail_product_retailer_id": "sku",
                    "sections": [{"title": "Top", "product_items": [{"product_retailer_id": "a"}]}],
                },
            },
        )
    ],
    "limited-time offer": [
        {
            "type": "limited_time_offer",
            "parameters": [
                {
                    "type": "limited_time_offer",
                    "limited_time_offer": {"expiration_time_ms": 1_800_000_000_000},
                }
            ],
        }
    ],
    "carousel": [
        body({"type": "text", "text": "bubble"}),
        {
            "type": "carousel",
            "cards": [
                {
                    "card_index": i,
                    "components": [
                        {
                            "type": "header",
                            "parameters": [{"type": "image", "image": {"id": str(i)}}],
                        },
                        button("quick_reply", 0, {"type": "payload", "payload": f"card-{i}"}),
                        button("url", 1, {"type": "text", "text": f"p/{i}"}),
                    ],
                }
                for i in range(10)
            ],
        },
    ],
}


@pytest.mark.parametrize("components", DOCUMENTED.values(), ids=DOCUMENTED.keys())
def test_every_documented_kind_passes_unchanged(components: list[dict[str, Any]]) -> None:
    assert as_json(COMPONENTS.validate_python(components)) == components


def test_types_match_any_case_and_are_kept_lower_case() -> None:
    given = [
        {"type": "BODY", "parameters": [{"type": "TEXT", "text": "x"}]},
        {
            "type": "Button",
            "sub_type": "QUICK_REPLY",
            "index": "0",
            "parameters": [{"type": "PAYLOAD", "payload": "p"}],
        },
    ]
    assert as_json(COMPONENTS.validate_python(given)) == [
        body({"type": "text", "text": "x"}),
        button("quick_reply", "0", {"type": "payload", "payload": "p"}),
    ]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "text", "text": "x"}
    for _ in range(depth):
        value = {"type": "body", "parameters": [value]}
    return value


INVALID: list[tuple[str, list[Any], str]] = [
    ("unknown component type", [{"type": "footer"}], "0.type"),
    ("button without index", [{"type": "button", "sub_type": "url"}], "0"),
    ("index on a body", [{"type": "body", "index": 0}], "0"),
    ("index past the last button", [button("url", MAX_BUTTON_INDEX + 1)], "0.index"),
    ("unknown sub_type", [button("teleport", 0)], "0.sub_type"),
    (
        "unknown parameter type",
        [body({"type": "sticker", "sticker": {"id": "1"}})],
        "0.parameters.0.type",
    ),
    ("parameter without its value", [body({"type": "text"})], "0.parameters.0"),
    (
        "parameter with another's value",
        [body({"type": "text", "text": "a", "payload": "b"})],
        "0.parameters.0",
    ),
    (
        "unknown parameter field",
        [body({"type": "text", "text": "a", "extra": 1})],
        "0.parameters.0.extra",
    ),
    (
        "media without id or link",
        [body({"type": "image", "image": {"caption": "x"}})],
        "0.parameters.0.image",
    ),
    (
        "nested object in a media",
        [body({"type": "image", "image": {"id": "1", "x": {"y": 1}}})],
        "0.parameters.0.image.x",
    ),
    (
        "amount past 64 bits",
        [
            body(
                {
                    "type": "currency",
                    "currency": {"fallback_value": "x", "code": "USD", "amount_1000": 2**64},
                }
            )
        ],
        "0.parameters.0.currency.amount_1000",
    ),
    (
        "latitude off the globe",
        [
            {
                "type": "header",
                "parameters": [{"type": "location", "location": {"latitude": 91, "longitude": 0}}],
            }
        ],
        "0.parameters.0.location.latitude",
    ),
    (
        "carousel inside a card",
        [{"type": "carousel", "cards": [{"card_index": 0, "components": [{"type": "carousel"}]}]}],
        "0.cards.0.components.0",
    ),
    ("cards outside a carousel", [{"type": "body", "cards": []}], "0"),
    ("a component nested 500 deep", [nested(500)], "0.parameters.0"),
    ("too many components", [body()] * (MAX_COMPONENTS + 1), ""),
    (
        "too many parameters",
        [body(*[{"type": "text", "text": "x"}] * (MAX_PARAMETERS + 1))],
        "0.parameters",
    ),
    ("too large serialized", [body(*[{"type": "text", "text": "x" * 30_000}] * 10)], ""),
    (
        "a text past Meta's longest",
        [body({"type": "text", "text": "x" * 32_769})],
        "0.parameters.0.text",
    ),
    ("not a list", {"type": "body"}, ""),
]


@pytest.mark.parametrize(("case", "components", "where"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_components_name_where(case: str, components: list[Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        COMPONENTS.validate_python(components)
    locations = {".".join(str(p) for p in error["loc"]) for error in caught.value.errors()}
    assert any(loc == where or loc.startswith(where + ".") or not where for loc in locations)
    if not where:
        assert "" in locations


def test_a_body_only_text_may_be_as_long_as_meta_allows() -> None:
    longest = [body({"type": "text", "text": "😀" * 32_768})]  # 128 KiB in UTF-8
    assert as_json(COMPONENTS.validate_python(longest)) == longest


def test_a_two_mebibyte_list_is_refused_at_its_length() -> None:
    huge = [body({"type": "text", "text": "x"})] * 40_000
    assert len(orjson.dumps(huge)) > 2 * 2**20
    with pytest.raises(ValidationError, match=f"at most {MAX_COMPONENTS} items"):
        COMPONENTS.validate_python(huge)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "sub_type",
                    "index",
                    "parameters",
                    "cards",
                    "card_index",
                    "components",
                    "text",
                    "image",
                    "id",
                    "link",
                    "action",
                    "sections",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=40,
)
TYPED = st.fixed_dictionaries(
    {"type": st.sampled_from(["body", "header", "button", "carousel", "BODY"])},
    optional={
        "sub_type": st.sampled_from(["url", "quick_reply", "x"]),
        "index": st.integers(-1, 12) | st.text(max_size=2),
        "parameters": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image", "payload"])},
                optional={"text": JSON, "image": JSON, "payload": JSON},
            ),
            max_size=3,
        ),
        "cards": JSON,
    },
)


@settings(max_examples=300)
@given(st.lists(TYPED | JSON, max_size=4) | JSON)
def test_any_json_is_valid_components_or_a_validation_error(value: Any) -> None:
    try:
        components = COMPONENTS.validate_python(value)
    except ValidationError:
        return
    stored = orjson.dumps(as_json(components))  # never past orjson's or jsonb's ranges
    assert len(stored) <= MAX_COMPONENTS_BYTES
