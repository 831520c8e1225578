"""Keeping the portfolio contacts table to the messaging-limit window.

The database records a contact each time Meta first accepts a message to a recipient
(``store/portfolios.py``); nothing else removes them. The coordinator prunes those past the
gate's window (24 h plus the gate's margin, the window a gate is rebuilt from) in bounded
batches, a few per round, so the table holds about a day of recipients, not every one ever.
"""

from __future__ import annotations

import logging

from dispatcher.engine.config import EngineConfig
from dispatcher.policies.messaging_limit import DAY_S
from dispatcher.store import Store

log = logging.getLogger(__name__)


async def prune_contacts(store: Store, config: EngineConfig) -> int:
    """Delete contacts past the window, ``contacts_prune_batch`` per statement, at most
    ``contacts_prune_max_batches`` statements; how many were deleted."""
    window_s = DAY_S + config.gate_margin_s
    pruned = 0
    for _ in range(config.contacts_prune_max_batches):
        deleted = await store.portfolios.prune_contacts(window_s, config.contacts_prune_batch)
        pruned += deleted
        if deleted < config.contacts_prune_batch:
            break
    if pruned:
        log.info("%d portfolio contacts past the %.0f s window pruned", pruned, window_s)
    return pruned
