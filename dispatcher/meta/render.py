"""A template's components filled with one recipient's variables, within Meta's limits.

Substitution is ONE pass: every ``{{name}}`` of the campaign's template is replaced by its
value, and the values are never read again, so a placeholder inside a value stays literal
text. (Replacing one variable after another expanded a value's placeholders again: three
1 KB variables built a 42 MB body, four built gigabytes.) What the variables add is counted
before it is built, and the filled parameters are checked against Meta's limits: a message
that breaks one raises :class:`RenderLimitError`, naming where and by how much.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import DispatcherError

JsonObject = dict[str, Any]

HEADER_TEXT_MAX_CHARS = 60
"""A text header's parameter. Meta, Cloud API reference, Messages, "parameter object"
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#parameter-object):
"For the header component: 60 characters"; the template's own text header is at most 60
characters as well (Meta, "Template components":
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/components)."""
BODY_TEXT_MAX_CHARS = 1_024
"""A body text parameter when the message includes other components. Same page (parameter
object): "For the body component: 1024 characters if other component types are included"."""
BODY_ONLY_TEXT_MAX_CHARS = 32_768
"""A body text parameter when the body is the only component included. Same page: "32768
characters if body is the only component type included" (whatsapp-api-js, which checks the
same rule, cites it: https://whatsappapijs.web.app/classes/messages.BodyParameter.html)."""
MAX_MESSAGE_BYTES = 256 * 1024
"""One recipient's whole send body. Not a Meta figure: a bound on what a message may cost in
memory (an instance holds a batch of them), far above anything Meta's per-field limits let
through: its longest text, a body-only parameter of 32,768 characters, is at most 128 KiB in
UTF-8. The variables are counted against it before anything is built."""

PLACEHOLDER_RE = re.compile(r"\{\{([^{}]{1,128})\}\}")
"""``{{name}}`` as the campaign writes it (names up to 128 characters, as the API takes)."""
BODY = "body"
HEADER = "header"


class RenderLimitError(DispatcherError):
    """One recipient's message breaks a limit: ``where`` (e.g. ``body text parameter 2``)
    is ``length`` long, more than ``limit``. Nothing of it may be sent."""

    def __init__(
        self, where: str, length: int, limit: int, unit: str = "characters", whose: str = "Meta's"
    ) -> None:
        super().__init__(f"{where} is {length:,} {unit}, more than {whose} limit of {limit:,}")
        self.where = where
        self.length = length
        self.limit = limit
        self.unit = unit


@dataclass(slots=True)
class _Budget:
    """Characters the variables may still add to one message."""

    left: int

    def spend(self, chars: int) -> None:
        self.left -= chars
        if self.left < 0:
            # Every character added lands in the send body (at least a byte each): past the
            # budget the body is certainly too large, so it is never built.
            raise RenderLimitError(
                "the text the variables add to the message",
                MAX_MESSAGE_BYTES - self.left,
                MAX_MESSAGE_BYTES,
                whose="the dispatcher's",
            )


def substitute(value: Any, variables: Mapping[str, Any]) -> Any:
    """``value`` (a template's JSON) with every ``{{name}}`` of ``variables`` replaced, in one
    pass: a value's own placeholders stay literal. Unknown names stay as they were. Parts
    without a placeholder are shared, not copied (a large template costs no copy per
    recipient). Raises :class:`RenderLimitError` once the values would add more than
    :data:`MAX_MESSAGE_BYTES` characters, before they are added."""
    return _substitute(value, variables, _Budget(MAX_MESSAGE_BYTES))


def _substitute(value: Any, variables: Mapping[str, Any], budget: _Budget) -> Any:
    if isinstance(value, str):
        if "{{" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            found = variables.get(match.group(1))
            if found is None:
                return match.group(0)
            text = str(found)
            budget.spend(len(text))
            return text

        return PLACEHOLDER_RE.sub(replace, value)
    if isinstance(value, dict):
        changed: dict[Any, Any] | None = None
        for key, item in value.items():
            new = _substitute(item, variables, budget)
            if new is not item:
                changed = changed if changed is not None else dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = [_substitute(item, variables, budget) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def check_limits(components: Sequence[Any]) -> None:
    """Raise :class:`RenderLimitError` for the first text parameter longer than Meta takes."""
    kinds = {_kind(c) for c in components}
    body_limit = BODY_ONLY_TEXT_MAX_CHARS if kinds == {BODY} else BODY_TEXT_MAX_CHARS
    for component in components:
        kind = _kind(component)
        if kind == HEADER:
            _check_texts(component, "header", HEADER_TEXT_MAX_CHARS)
        elif kind == BODY:
            _check_texts(component, "body", body_limit)


def check_size(body: bytes) -> bytes:
    """``body`` itself, when within :data:`MAX_MESSAGE_BYTES`."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise RenderLimitError(
            "the message", len(body), MAX_MESSAGE_BYTES, "bytes", whose="the dispatcher's"
        )
    return body


def _kind(component: Any) -> str:
    return str(component.get("type", "")).lower() if isinstance(component, dict) else ""


def _check_texts(component: JsonObject, kind: str, limit: int) -> None:
    parameters = component.get("parameters")
    if not isinstance(parameters, list):
        return
    for number, parameter in enumerate(parameters, start=1):
        if not isinstance(parameter, dict) or str(parameter.get("type", "")).lower() != "text":
            continue
        text = parameter.get("text")
        if isinstance(text, str) and len(text) > limit:
            name = parameter.get("parameter_name")
            label = f"{kind} text parameter {name if isinstance(name, str) else number}"
            raise RenderLimitError(label, len(text), limit)
