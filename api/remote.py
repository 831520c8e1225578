"""Calls to the coordinator actor from a handler: bounded in time, failures as 503."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.errors import ServiceError

CONTROL_TIMEOUT_S = 60.0
"""Lifecycle and registration: starting instance actors may take a while."""
STATS_TIMEOUT_S = 5.0


async def call(method: Any, *args: Any, timeout_s: float = CONTROL_TIMEOUT_S) -> Any:
    """``await coordinator.method.remote(*args)``, or :class:`ServiceError` after ``timeout_s``."""
    try:
        return await asyncio.wait_for(method.remote(*args), timeout_s)
    except TimeoutError:
        raise ServiceError("coordinator", f"no answer within {timeout_s:.0f}s") from None
