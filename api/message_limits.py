"""Recipients whose message would break Meta's limits, refused when they come in.

The sender checks every message again before it goes out (a recipient over a limit then
fails alone, never sent): this is the early answer, a 422 naming the recipient, for what
the variables alone already decide. The whole body's byte size is left to the sender: it
depends on the callback tag, and is far above what these limits let through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from api.errors import ApiError
from api.schemas import RecipientIn
from dispatcher.engine.batch import template_from_json
from dispatcher.meta.messages import Template, Variables, template_components
from dispatcher.meta.render import MAX_MESSAGE_BYTES, RenderLimitError


def message_problem(template: Template, variables: Variables) -> str | None:
    """Why a recipient with these ``variables`` cannot be sent ``template``, or None."""
    try:
        template_components(template, variables)
    except RenderLimitError as exc:
        return str(exc)
    return None


def check_campaign(
    template_json: dict[str, Any],
    recipients: Sequence[RecipientIn],
    at: tuple[str, ...] = (),
) -> None:
    """422 for a template larger than any message sent, or the first inline recipient whose
    message breaks a limit (``recipients.N.variables``); ``at``: where the template is
    (an A/B variant's: ``variants.N``)."""
    size = len(orjson.dumps(template_json.get("components") or []))
    if size > MAX_MESSAGE_BYTES:
        too_large = RenderLimitError(
            "the components", size, MAX_MESSAGE_BYTES, "bytes", "the dispatcher's"
        )
        raise _invalid([*at, "template", "components"], str(too_large))
    template = template_from_json(template_json)
    for index, recipient in enumerate(recipients):
        problem = message_problem(template, recipient.variables)
        if problem is not None:
            raise _invalid(["recipients", str(index), "variables"], problem)


def _invalid(loc: list[str], problem: str) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        f"{'.'.join(loc)}: {problem}",
        [{"loc": loc, "msg": problem, "type": "message_limit"}],
    )
