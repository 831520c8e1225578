"""The ``messages`` field beyond statuses: errors not tied to a message, inbound messages.

Statuses are written in bulk by the applier (:mod:`dispatcher.engine.webhooks`); this
handler acts on ``value.errors[]``: an asynchronous throttle (130429 and the like, Meta's
"Status messages" webhook reference and Error codes page:
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes) cuts that
number's send rate as the same error on a send would. Inbound ``value.messages[]`` are not
this system's job: acknowledged (200) and dropped, never stored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dispatcher.meta.error_codes import ErrorClass, ErrorTable
from dispatcher.meta.webhooks import Change, change_errors
from dispatcher.store import Store

if TYPE_CHECKING:
    from dispatcher.engine.coordinator import InstanceFleet

log = logging.getLogger(__name__)

_ERRORS = ErrorTable()


async def on_messages(store: Store, fleet: InstanceFleet, change: Change) -> None:
    """Throttle the number named by ``value.metadata.phone_number_id`` for each throttle
    error in ``value.errors[]``; anything else in the change is left to the applier."""
    for error in change_errors(change):
        rule = _ERRORS.classify(error.code, None)
        if rule.error_class is not ErrorClass.THROTTLE or rule.throttle is None:
            log.warning(
                "webhook error %s (%s) on number %s: %s",
                error.code,
                error.title,
                error.phone_number_id,
                error.details,
            )
            continue
        if error.phone_number_id is None:
            continue
        instance = await store.instances.get_by_phone_number_id(error.phone_number_id)
        if instance is None:
            continue  # another app's number on the same WABA
        cut = await fleet.throttle(instance.id, rule.throttle)
        log.warning(
            "webhook error %s on number %s: rate %s",
            error.code,
            error.phone_number_id,
            "cut" if cut else "not cut (no actor)",
        )
