"""Meta's webhook payloads: ``entry[].changes[]`` as typed changes, statuses as store updates.

A payload carries one or more entries (``entry[].id`` is the WhatsApp Business Account id),
each with changes named by ``field``. Statuses (``field: messages``) are matched by wamid, or
by ``biz_opaque_callback_data`` (the recipient id the dispatcher put in it), never by phone:
a user may hide the phone behind a username (BSUID, 2026). The other fields (operational
webhooks) are handed to the handlers in :mod:`dispatcher.engine.webhook_handlers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatcher.store.models import RecipientStatus, StatusUpdate

_STATUSES = {
    "sent": RecipientStatus.SENT,
    "delivered": RecipientStatus.DELIVERED,
    "read": RecipientStatus.READ,
    "failed": RecipientStatus.FAILED,
}

MESSAGES_FIELD = "messages"


@dataclass(frozen=True, slots=True)
class Change:
    """One ``entry[].changes[]`` item: its ``field``, its ``value`` and the entry's id."""

    field: str
    value: dict[str, Any]
    entry_id: str | None
    """``entry[].id``: the WhatsApp Business Account (or, for some fields, business) id."""


def changes(payload: Any) -> Iterator[Change]:
    """Every change in one webhook payload, in order; items of the wrong shape skipped.

    Raises ``ValueError`` for a payload that is not Meta's shape at all.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise ValueError("not a WhatsApp webhook payload: no entry list")
    for entry in payload["entry"]:
        if not isinstance(entry, dict):
            continue
        entry_id = entry.get("id")
        for change in entry.get("changes") or []:
            if not isinstance(change, dict):
                continue
            field, value = change.get("field"), change.get("value")
            if isinstance(field, str) and isinstance(value, dict):
                yield Change(field, value, str(entry_id) if entry_id is not None else None)


def statuses(payload: Any) -> Iterator[StatusUpdate]:
    """Every message status in one webhook payload; anything else skipped.

    Raises ``ValueError`` for a payload that is not Meta's shape at all.
    """
    for change in changes(payload):
        if change.field == MESSAGES_FIELD:
            yield from change_statuses(change)


def change_statuses(change: Change) -> Iterator[StatusUpdate]:
    """The statuses of one ``messages`` change (``value.statuses[]``)."""
    raw_statuses = change.value.get("statuses")
    if not isinstance(raw_statuses, list):
        return
    for raw in raw_statuses:
        update = _status(raw)
        if update is not None:
            yield update


def _status(raw: Any) -> StatusUpdate | None:
    if not isinstance(raw, dict):
        return None
    status = _STATUSES.get(str(raw.get("status")))
    if status is None:
        return None  # "deleted", "warning", ...: not a delivery status
    wamid = raw.get("id") if isinstance(raw.get("id"), str) and "\x00" not in raw["id"] else None
    callback = raw.get("biz_opaque_callback_data")
    recipient_id = _recipient_id(callback)
    if wamid is None and recipient_id is None:
        return None
    error_code = error_message = None
    errors = raw.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        error_code = code if isinstance(code, int) else None
        message = str(errors[0].get("title") or errors[0].get("message") or "")
        error_message = message.replace("\x00", "")[:500]  # Postgres text takes no NUL
    return StatusUpdate(
        status=status,
        at=_timestamp(raw.get("timestamp")),
        wamid=wamid,
        recipient_id=recipient_id,
        error_code=error_code,
        error_message=error_message,
    )


def _recipient_id(callback: Any) -> int | None:
    """The id the dispatcher put in ``biz_opaque_callback_data``; None for anything that
    cannot be one (another system's data, or digits past a bigint: they would fail the bulk
    write of every status in the batch)."""
    if not isinstance(callback, str) or not (callback.isascii() and callback.isdigit()):
        return None
    value = int(callback)
    return value if value < 2**63 else None


def _timestamp(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)
