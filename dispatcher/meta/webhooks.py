"""Meta's webhook payloads: ``entry[].changes[]`` as typed changes, statuses as store updates.

A payload carries one or more entries (``entry[].id`` is the WhatsApp Business Account id),
each with changes named by ``field``. Statuses (``field: messages``) are matched by wamid, or
by ``biz_opaque_callback_data`` when it is our tag (:mod:`dispatcher.meta.callback_tag`),
never by phone: a user may hide the phone behind a username (BSUID, 2026), and another
sender on the same number puts its own data there. The 2026 shapes are read too: statuses
with ``contacts`` and ``recipient_user_id`` and no ``recipient_id`` (Meta, "Business-scoped
user IDs": https://developers.facebook.com/docs/whatsapp/cloud-api/business-scoped-user-ids),
and ``value.errors[]`` not tied to a message (Meta, "Status messages" webhook reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/reference/messages/status).
The other fields (operational webhooks) are handed to the handlers in
:mod:`dispatcher.engine.webhook_handlers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatcher.meta.callback_tag import CallbackTag
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


@dataclass(frozen=True, slots=True)
class ChangeError:
    """One ``value.errors[]`` item of a ``messages`` change: an error not tied to a message
    (an asynchronous 130429, ...), about the number ``phone_number_id``."""

    code: int | None
    title: str
    details: str | None
    phone_number_id: str | None


def statuses(payload: Any, tag: CallbackTag) -> Iterator[StatusUpdate]:
    """Every message status in one webhook payload; anything else skipped.

    Raises ``ValueError`` for a payload that is not Meta's shape at all.
    """
    for change in changes(payload):
        if change.field == MESSAGES_FIELD:
            yield from change_statuses(change, tag)


def change_statuses(change: Change, tag: CallbackTag) -> Iterator[StatusUpdate]:
    """The statuses of one ``messages`` change (``value.statuses[]``)."""
    raw_statuses = change.value.get("statuses")
    if not isinstance(raw_statuses, list):
        return
    for raw in raw_statuses:
        update = _status(raw, tag)
        if update is not None:
            yield update


def phone_number_id(change: Change) -> str | None:
    """``value.metadata.phone_number_id``: the number a ``messages`` change is about."""
    metadata = change.value.get("metadata")
    value = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def change_errors(change: Change) -> Iterator[ChangeError]:
    """The ``value.errors[]`` of one ``messages`` change (no statuses with them)."""
    raw_errors = change.value.get("errors")
    if not isinstance(raw_errors, list):
        return
    number = phone_number_id(change)
    for raw in raw_errors:
        if isinstance(raw, dict):
            code, title, details = _error(raw)
            yield ChangeError(code, title, details, number)


def _error(raw: dict[str, Any]) -> tuple[int | None, str, str | None]:
    """``code``, ``title`` (else ``message``) and ``error_data.details`` of one error."""
    code = raw.get("code")
    title = _text(raw.get("title") or raw.get("message") or "")
    error_data = raw.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        title,
        _text(details) if details is not None else None,
    )


def _text(value: Any) -> str:
    return str(value).replace("\x00", "")[:500]  # Postgres text takes no NUL


def _status(raw: Any, tag: CallbackTag) -> StatusUpdate | None:
    if not isinstance(raw, dict):
        return None
    status = _STATUSES.get(str(raw.get("status")))
    if status is None:
        return None  # "deleted", "warning", ...: not a delivery status
    wamid = raw.get("id") if isinstance(raw.get("id"), str) and "\x00" not in raw["id"] else None
    tagged = tag.parse(raw.get("biz_opaque_callback_data"))
    recipient_id = None if tagged is None else tagged.recipient_id
    if wamid is None and recipient_id is None:
        return None
    error_code = error_message = error_details = None
    errors = raw.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        error_code, error_message, error_details = _error(errors[0])
    return StatusUpdate(
        status=status,
        at=_timestamp(raw.get("timestamp")),
        wamid=wamid,
        recipient_id=recipient_id,
        error_code=error_code,
        error_message=error_message,
        error_details=error_details,
        # Our tag only (None for anything else: another sender's data, a bare number that
        # may equal one of our ids, a forged tag): its recipient and attempt.
        attempt=None if tagged is None else tagged.attempt,
    )


def _timestamp(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)
