"""Meta's message payloads: the template send body and the parsed answers.

Plain functions and slots dataclasses: this runs once per message, where pydantic validation
would cost more than the send itself. The edges (API input, webhook payloads) use pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher.errors import DispatcherError
from dispatcher.meta.error_codes import ErrorClass, ErrorRule, ErrorTable
from dispatcher.meta.render import check_limits, check_size, substitute

BSUID_RE = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
"""A business-scoped user id (2026): two-letter country code, a dot, letters and digits; or
a parent BSUID (``US.ENT.…``, one id across a business's linked portfolios). Both are sent as
``recipient`` (Meta, "Business-scoped user IDs":
https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/)."""
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")

JsonObject = dict[str, Any]
Variables = Mapping[str, str] | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class Template:
    """A message template as the campaign names it."""

    name: str
    language: str
    components: Sequence[JsonObject] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class SendOk:
    """Meta accepted the message."""

    wamid: str


class MetaError(DispatcherError):
    """A Graph API call failed; carries everything Meta said and the class of the failure.

    ``message`` and ``details`` are Meta's words; the access token never appears in them.
    """

    def __init__(
        self,
        rule: ErrorRule,
        *,
        code: int | None,
        message: str,
        http_status: int | None = None,
        subcode: int | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        label = f"(#{code})" if code is not None else f"(HTTP {http_status})"
        super().__init__(message if message.startswith(label) else f"{label} {message}")
        self.rule = rule
        self.code = code
        self.subcode = subcode
        self.message = message
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status

    @property
    def error_class(self) -> ErrorClass:
        return self.rule.error_class


SendResult = SendOk | MetaError


def recipient_field(recipient: str) -> tuple[str, str]:
    """``("to", phone)`` for an E.164 phone, ``("recipient", bsuid)`` for a BSUID."""
    if BSUID_RE.match(recipient):
        return "recipient", recipient
    return "to", recipient


def template_body(
    recipient: str,
    template: Template,
    variables: Variables = None,
    callback_data: str | None = None,
) -> bytes:
    """The JSON body of a template send (Meta, "Send message templates":
    https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates),
    its components filled by :func:`template_components`.

    Raises :class:`~dispatcher.meta.render.RenderLimitError` when the filled message breaks
    one of Meta's limits, or is larger than the dispatcher sends: such a message is never sent.
    """
    components = template_components(template, variables)
    key, value = recipient_field(recipient)
    payload: JsonObject = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        key: value,
        "type": "template",
        "template": {"name": template.name, "language": {"code": template.language}},
    }
    if components:
        payload["template"]["components"] = components
    if callback_data is not None:
        payload["biz_opaque_callback_data"] = callback_data
    return check_size(orjson.dumps(payload))


def template_components(template: Template, variables: Variables = None) -> list[JsonObject]:
    """The template's components filled with one recipient's ``variables``, checked against
    Meta's limits (:class:`~dispatcher.meta.render.RenderLimitError` when one is broken).

    ``variables`` as a list fill the body's text parameters in order (positional ``{{1}}``,
    ``{{2}}``...). As a mapping they fill a template in Meta's named-parameters format: each
    body text parameter carries ``parameter_name``; a campaign that wrote ``{{name}}``
    placeholders inside its own parameter texts gets them replaced instead, in one pass (see
    :mod:`dispatcher.meta.render`). Body parameters of other types (currency, date_time...)
    are kept either way.
    """
    components = _components(template.components, variables)
    check_limits(components)
    return components


BODY = "body"


def _components(components: Sequence[JsonObject], variables: Variables) -> list[JsonObject]:
    if not variables:
        return list(components)
    if isinstance(variables, Mapping):
        substituted: list[JsonObject] = substitute(list(components), variables)
        if _positional_body(substituted):
            return substituted
        components = substituted
        fill = _named
    else:
        fill = _positional
    out: list[JsonObject] = []
    filled = False
    for component in components:
        if not filled and _is_body(component):
            out.append({**component, "type": BODY, "parameters": fill(component, variables)})
            filled = True
        else:
            out.append(component)
    if not filled:
        out.append({"type": BODY, "parameters": fill({}, variables)})
    return out


def _is_body(component: Any) -> bool:
    return isinstance(component, dict) and str(component.get("type", "")).lower() == BODY


def _parameters(component: JsonObject) -> list[Any]:
    parameters = component.get("parameters")
    return list(parameters) if isinstance(parameters, list) else []


def _is_text(parameter: Any) -> bool:
    return isinstance(parameter, dict) and str(parameter.get("type", "")).lower() == "text"


def _positional(component: JsonObject, variables: Any) -> list[Any]:
    """Each text parameter takes the next value; other types stay where they are; values
    left over are appended as text."""
    values = iter([str(value) for value in variables])
    out: list[Any] = []
    for parameter in _parameters(component):
        if _is_text(parameter) and "parameter_name" not in parameter:
            value = next(values, None)
            out.append(parameter if value is None else {**parameter, "text": value})
        else:
            out.append(parameter)
    out.extend({"type": "text", "text": value} for value in values)
    return out


def _named(component: JsonObject, variables: Any) -> list[Any]:
    """Text parameters named by the campaign take their value; other types stay; every
    variable not named yet is appended as a ``parameter_name`` text parameter."""
    out: list[Any] = []
    named: set[str] = set()
    for parameter in _parameters(component):
        name = parameter.get("parameter_name") if isinstance(parameter, dict) else None
        if _is_text(parameter) and isinstance(name, str) and name in variables:
            out.append({**parameter, "text": str(variables[name])})
            named.add(name)
        else:
            out.append(parameter)
    out.extend(
        {"type": "text", "parameter_name": str(name), "text": str(value)}
        for name, value in variables.items()
        if name not in named
    )
    return out


def _positional_body(components: Sequence[JsonObject]) -> bool:
    """True when the campaign's body has unnamed text parameters: a positional template
    whose texts hold ``{{name}}`` placeholders, which substitution has filled."""
    return any(
        _is_text(parameter) and "parameter_name" not in parameter
        for component in components
        if _is_body(component)
        for parameter in _parameters(component)
    )


def parse_send_response(status: int, body: bytes, table: ErrorTable) -> SendResult:
    """A send's answer: the wamid, or a :class:`MetaError` (never an exception raised)."""
    data = _json_object(body)
    if 200 <= status < 300:
        try:
            wamid = data["messages"][0]["id"]
        except (KeyError, IndexError, TypeError):
            wamid = None
        if isinstance(wamid, str) and wamid:
            return SendOk(wamid)
        rule = table.classify(None, 502)
        return MetaError(
            rule, code=None, http_status=status, message="success without a message id"
        )
    return parse_error(status, data, table)


def parse_error(status: int, data: JsonObject | bytes, table: ErrorTable) -> MetaError:
    """A Graph API error body (``{"error": {...}}``) as a :class:`MetaError`."""
    if isinstance(data, bytes):
        data = _json_object(data)
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        rule = table.classify(None, status)
        return MetaError(
            rule, code=None, http_status=status, message=f"HTTP {status} without an error body"
        )
    code = _int_or_none(error.get("code"))
    subcode = _int_or_none(error.get("error_subcode"))
    error_data = error.get("error_data")
    raw_details = error_data.get("details") if isinstance(error_data, dict) else None
    details = str(raw_details) if raw_details is not None else None
    message = str(error.get("message") or "")
    return MetaError(
        table.classify(code, status, subcode=subcode, message=message, details=details),
        code=code,
        subcode=subcode,
        message=message,
        details=details,
        fbtrace_id=error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None,
        http_status=status,
    )


def _json_object(body: bytes) -> JsonObject:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
