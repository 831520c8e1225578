"""``POST /_sandbox/templates/status``: change a template's status as Meta would, and send the
``message_template_status_update`` webhook that announces it.

Meta's message_template_status_update webhook reference: ``event`` (APPROVED, PAUSED,
DISABLED, REJECTED, REINSTATED...), ``message_template_id``, ``message_template_name``,
``message_template_language``, ``reason``, and for pauses ``other_info`` (title, description);
one webhook per WhatsApp Business Account (``entry[].id``). A paused template answers 132015 and
a disabled one 132016 (Error codes page) until it is approved or reinstated again.
"""

from __future__ import annotations

import zlib
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatcher.sandbox.simulator import Simulator

Event = Literal["APPROVED", "PAUSED", "DISABLED", "REJECTED", "REINSTATED"]
_STATUS = {
    "APPROVED": "APPROVED",
    "REINSTATED": "APPROVED",
    "PAUSED": "PAUSED",
    "DISABLED": "DISABLED",
    "REJECTED": "DISABLED",
}


class TemplateStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    event: Event
    language: str | None = None
    """Default: the template's own."""
    reason: str = "NONE"


def routes(simulator: Simulator) -> list[Route]:
    async def template_status(request: Request) -> Response:
        try:
            given = TemplateStatus.model_validate_json(await request.body())
        except ValidationError as exc:
            return _json(400, {"error": {"code": "bad_request", "message": str(exc.errors()[0])}})
        templates = simulator.templates or {}
        template = templates.get(given.name)
        if template is None:
            return _json(400, {"error": {"code": "bad_request", "message": "unknown template"}})
        template.status = _STATUS[given.event]  # type: ignore[assignment]
        value: dict[str, object] = {
            "event": given.event,
            "message_template_id": zlib.crc32(given.name.encode()),
            "message_template_name": given.name,
            "message_template_language": given.language or template.language,
            "reason": given.reason,
            "message_template_category": template.category,
        }
        if given.event == "PAUSED":
            value["other_info"] = {
                "title": "FIRST_PAUSE",
                "description": "Your WhatsApp message template has been paused for 3 hours "
                "due to low quality.",
            }
        wabas = sorted({n.waba_id or n.business_id for n in simulator.numbers.values()})
        for waba in wabas:
            await simulator.webhooks.post_change(waba, "message_template_status_update", value)
        return _json(200, {"name": given.name, "status": template.status, "wabas": wabas})

    return [Route("/_sandbox/templates/status", template_status, methods=["POST"])]


def _json(status: int, payload: object) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")
