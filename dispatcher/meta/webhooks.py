"""Meta's status webhooks: ``entry[].changes[].value.statuses[]`` as the store's updates.

Matched by wamid, or by ``biz_opaque_callback_data`` (the recipient id the dispatcher put in
it), never by phone: a user may hide the phone behind a username (BSUID, 2026).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from dispatcher.store.models import RecipientStatus, StatusUpdate

_STATUSES = {
    "sent": RecipientStatus.SENT,
    "delivered": RecipientStatus.DELIVERED,
    "read": RecipientStatus.READ,
    "failed": RecipientStatus.FAILED,
}


def statuses(payload: Any) -> Iterator[StatusUpdate]:
    """Every message status in one webhook payload; anything else (messages, errors) skipped.

    Raises ``ValueError`` for a payload that is not Meta's shape at all.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise ValueError("not a WhatsApp webhook payload: no entry list")
    for entry in payload["entry"]:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value") or {}
            for raw in value.get("statuses") or []:
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
