"""One-pass substitution and Meta's limits on a filled template."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.meta.messages import Template, template_body, template_components
from dispatcher.meta.render import (
    BODY_ONLY_TEXT_MAX_CHARS,
    BODY_TEXT_MAX_CHARS,
    HEADER_TEXT_MAX_CHARS,
    MAX_MESSAGE_BYTES,
    RenderLimitError,
    substitute,
)


def _body_only(text: str) -> Template:
    return Template("t", "en", ({"type": "body", "parameters": [{"type": "text", "text": text}]},))


def _with_header(header: str, body: str) -> Template:
    return Template(
        "t",
        "en",
        (
            {"type": "header", "parameters": [{"type": "text", "text": header}]},
            {"type": "body", "parameters": [{"type": "text", "text": body}]},
        ),
    )


def _texts(template: Template, variables: object) -> list[str]:
    return [
        p["text"]
        for c in template_components(template, variables)  # type: ignore[arg-type]
        for p in c["parameters"]
    ]


def test_nested_placeholders_in_three_1kb_values_are_rendered_once() -> None:
    # Each value is 1 KB of the next one's placeholders: substituted one after another,
    # this built a 42 MB body; in one pass each value lands once, as it is.
    a = "{{b}}" * 200 + "a" * 24
    b = "{{c}}" * 200 + "b" * 24
    c = "{{a}}" * 200 + "c" * 24
    variables = {"a": a, "b": b, "c": c}
    [text] = _texts(_body_only("{{a}}{{b}}{{c}}"), variables)
    assert text == a + b + c
    assert len(text) == len(a) + len(b) + len(c) == 3 * 1024
    body = template_body("+5511999990001", _body_only("{{a}}{{b}}{{c}}"), variables, "r-1")
    assert len(body) < 4 * 1024


def test_a_value_holding_a_placeholder_stays_literal() -> None:
    assert _texts(_body_only("Hi {{1}}"), {"1": "{{2}}", "2": "x"}) == ["Hi {{2}}"]
    # Positional variables fill parameters as they are, never read for placeholders.
    assert _texts(Template("t", "en"), ["{{1}}", "{{2}}"]) == ["{{1}}", "{{2}}"]


def test_unknown_placeholders_stay_and_parts_without_any_are_shared() -> None:
    header = {"type": "header", "parameters": [{"type": "image", "image": {"link": "x"}}]}
    components = [header, {"type": "body", "parameters": [{"type": "text", "text": "{{n}} {{m}}"}]}]
    filled = substitute(components, {"n": "Ana"})
    assert filled[1]["parameters"][0]["text"] == "Ana {{m}}"
    assert filled[0] is header  # no copy of what has no placeholder
    assert components[1]["parameters"][0]["text"] == "{{n}} {{m}}"  # the template untouched


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "1"]), st.text(alphabet="{}abc1", max_size=30), max_size=4
    ),
    st.text(alphabet="{}abc1 ", max_size=40),
)
def test_one_pass_output_is_the_template_with_each_placeholder_replaced_once(
    variables: dict[str, str], text: str
) -> None:
    out = substitute(text, variables)
    # Never longer than the template plus one copy of a value per placeholder occurrence.
    occurrences = {name: text.count("{{" + name + "}}") for name in variables}
    assert len(out) <= len(text) + sum(len(v) * occurrences[n] for n, v in variables.items())


def test_a_header_parameter_over_60_characters_is_refused() -> None:
    fits = _with_header("{{h}}", "x")
    assert _texts(fits, {"h": "h" * HEADER_TEXT_MAX_CHARS})[0] == "h" * HEADER_TEXT_MAX_CHARS
    with pytest.raises(RenderLimitError) as raised:
        template_components(fits, {"h": "h" * (HEADER_TEXT_MAX_CHARS + 1)})
    assert raised.value.where == "header text parameter 1"
    assert (raised.value.length, raised.value.limit) == (61, 60)


def test_a_body_parameter_limit_depends_on_the_other_components() -> None:
    long = "b" * (BODY_TEXT_MAX_CHARS + 1)
    with pytest.raises(RenderLimitError, match="body text parameter 1 is 1,025 characters"):
        template_components(_with_header("Hi", "{{b}}"), {"b": long})
    assert _texts(_body_only("{{b}}"), {"b": long}) == [long]  # the body alone: 32,768
    with pytest.raises(RenderLimitError) as raised:
        template_components(Template("t", "en"), ["x" * (BODY_ONLY_TEXT_MAX_CHARS + 1)])
    assert raised.value.limit == BODY_ONLY_TEXT_MAX_CHARS


def test_named_parameters_are_named_in_the_refusal() -> None:
    template = Template(
        "t",
        "en",
        (
            {"type": "HEADER", "parameters": [{"type": "text", "text": "Hi"}]},
            {"type": "BODY", "parameters": [{"type": "text", "parameter_name": "first_name"}]},
        ),
    )
    with pytest.raises(RenderLimitError, match="body text parameter first_name"):
        template_components(template, {"first_name": "A" * 2000})


def test_values_that_would_grow_past_the_message_bound_are_refused_before_building() -> None:
    # 300 placeholders of one 1,000-character value: 300,000 characters to add.
    template = Template(
        "t", "en", ({"type": "button", "parameters": [{"type": "text", "text": "{{v}}" * 300}]},)
    )
    with pytest.raises(RenderLimitError, match="the dispatcher's limit of 262,144") as raised:
        template_body("+5511999990001", template, {"v": "v" * 1000})
    assert raised.value.limit == MAX_MESSAGE_BYTES


def test_a_body_larger_than_the_bound_is_refused() -> None:
    big = Template(
        "t",
        "en",
        (
            {
                "type": "button",
                "parameters": [{"type": "payload", "payload": "p" * MAX_MESSAGE_BYTES}],
            },
        ),
    )
    with pytest.raises(RenderLimitError, match="the message is") as raised:
        template_body("+5511999990001", big)
    assert raised.value.unit == "bytes"


def test_a_message_within_every_limit_renders_as_before() -> None:
    template = _with_header("{{h}}", "Olá {{name}}, {{offer}}")
    body = orjson.loads(
        template_body("+5511999990001", template, {"h": "Oi", "name": "Ana", "offer": "10%"})
    )
    header, main = body["template"]["components"]
    assert header["parameters"][0]["text"] == "Oi"
    assert main["parameters"][0]["text"] == "Olá Ana, 10%"
