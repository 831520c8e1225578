"""Webhooks that hold campaigns and suppress users (Meta's error classes, DESIGN.md).

- ``message_template_status_update`` (Meta's webhook reference for that field):
  ``PAUSED`` / ``DISABLED`` / ``REJECTED`` hold the running campaigns that send the template
  (``message_template_name`` + ``message_template_language``) through a number of the
  webhook's WABA (the entry id); ``APPROVED`` / ``REINSTATED`` release the campaigns held for
  it. A campaign with no number of known WABA matches by name and language alone.
- ``user_preferences`` (Business-scoped user IDs page, "user_preferences webhooks"): a
  ``marketing_messages`` ``stop`` suppresses the user (``wa_id`` as a phone, and the BSUID
  ``user_id``) for the business of the number it came to; ``resume`` lifts it.
- ``messages`` statuses ``failed`` with 131050 (Error codes page: the user stopped marketing
  messages; Meta reports it asynchronously): suppress that user too.

The business is the portfolio of the number named in ``value.metadata.phone_number_id``.
Every action is idempotent (Meta retries; the applier re-runs a handler after an outage).
"""

from __future__ import annotations

import logging
from typing import Any

from dispatcher.meta.messages import BSUID_RE
from dispatcher.meta.webhooks import Change
from dispatcher.store import Store

log = logging.getLogger(__name__)

HOLD_EVENTS = frozenset({"PAUSED", "DISABLED", "REJECTED"})
RELEASE_EVENTS = frozenset({"APPROVED", "REINSTATED"})
SUPPRESS_CODE = 131050
MARKETING = "marketing_messages"


class ErrorWebhooks:
    """The handlers; each takes one change."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def template_status(self, change: Change) -> None:
        value = change.value
        event = str(value.get("event") or "").upper()
        name = value.get("message_template_name")
        language = value.get("message_template_language")
        if not isinstance(name, str) or not name:
            return
        lang = language if isinstance(language, str) and language else None
        campaigns = self._store.campaigns
        if event in HOLD_EVENTS:
            why = _describe(value)
            held = await campaigns.hold_template(
                name, lang, f"template {name} {event}{why}", change.entry_id
            )
            if held:
                log.error("template %s (%s) %s: %d campaigns held", name, lang, event, len(held))
        elif event in RELEASE_EVENTS:
            released = await campaigns.release_template(name, lang, change.entry_id)
            if released:
                log.warning(
                    "template %s (%s) %s: %d campaigns released", name, lang, event, len(released)
                )

    async def user_preferences(self, change: Change) -> None:
        business_id = await self._business(change)
        if business_id is None:
            return
        for pref in change.value.get("user_preferences") or []:
            if not isinstance(pref, dict) or pref.get("category") != MARKETING:
                continue
            addresses = _addresses(pref.get("wa_id"), pref.get("user_id"))
            if not addresses:
                continue
            if pref.get("value") == "stop":
                reason = str(pref.get("detail") or "user stopped marketing messages")[:300]
                await self._store.suppressions.add(
                    business_id, addresses, reason, "user_preferences"
                )
            elif pref.get("value") == "resume":
                await self._store.suppressions.remove(business_id, addresses)

    async def failed_statuses(self, change: Change) -> None:
        statuses = change.value.get("statuses")
        if not isinstance(statuses, list):
            return
        found: list[tuple[list[str], str]] = []
        for status in statuses:
            if not isinstance(status, dict) or status.get("status") != "failed":
                continue
            for error in status.get("errors") or []:
                if isinstance(error, dict) and error.get("code") == SUPPRESS_CODE:
                    addresses = _addresses(
                        status.get("recipient_id"), status.get("recipient_user_id")
                    )
                    if addresses:
                        found.append((addresses, str(error.get("title") or "")[:300]))
        if not found:
            return
        business_id = await self._business(change)
        if business_id is None:
            return
        for addresses, reason in found:
            await self._store.suppressions.add(business_id, addresses, reason or "131050", "131050")

    async def _business(self, change: Change) -> str | None:
        metadata = change.value.get("metadata")
        phone_number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
        if not isinstance(phone_number_id, str):
            return None
        instance = await self._store.instances.get_by_phone_number_id(phone_number_id)
        if instance is None:
            log.warning("%s webhook for unknown number %s: ignored", change.field, phone_number_id)
            return None
        return instance.business_id


def _addresses(phone: Any, user_id: Any) -> list[str]:
    """The addresses recipients are stored under: ``+`` and the digits, and the BSUID."""
    found = []
    if isinstance(phone, str) and phone.lstrip("+").isdigit():
        found.append("+" + phone.lstrip("+"))
    if isinstance(user_id, str) and BSUID_RE.fullmatch(user_id):
        found.append(user_id)
    return found


def _describe(value: dict[str, Any]) -> str:
    reason = value.get("reason")
    info = value.get("other_info")
    title = info.get("title") if isinstance(info, dict) else None
    parts = [str(p) for p in (reason, title) if p and p != "NONE"]
    return f" ({', '.join(parts)})" if parts else ""
