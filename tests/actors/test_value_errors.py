"""An error not tied to a message (``value.errors[]``, an asynchronous 130429) slows the
number it names down, as the same error on a send would."""

from __future__ import annotations

import uuid

from dispatcher.engine.pacing import PacingConfig
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store import Store
from tests.actors.test_campaign import register_all, run_campaign
from tests.stack import Stack, wait_until


async def _rate(stack: Stack, instance_id: uuid.UUID, below: float = float("inf")) -> float | None:
    stats = await stack.coordinator.instance_stats.remote(str(instance_id))
    rate = stats.get("current_rate_mps") if isinstance(stats, dict) else None
    return float(rate) if isinstance(rate, int | float) and 0 < rate < below else None


async def test_an_asynchronous_130429_cuts_that_numbers_rate_only(
    stack: Stack, store: Store
) -> None:
    control = SandboxControl(stack.sandbox.url)
    await control.reset()
    cut, other = await register_all(store, stack, ["6001", "6002"])
    for number, prefix in ((cut, 31), (other, 32)):  # work for each: their actors run
        await run_campaign(store, stack, [number], 20, prefix)
    before = await wait_until(lambda: _rate(stack, cut), timeout_s=60)
    other_before = await wait_until(lambda: _rate(stack, other), timeout_s=60)
    await control.value_errors("6001", 130429)
    after = await wait_until(lambda: _rate(stack, cut, below=before), timeout_s=30)
    # The adaptive rate's cut (a tenth), read once the pacer applied it.
    assert after <= before * (PacingConfig().adaptive.decrease_factor + 0.02)
    assert await _rate(stack, other) == other_before
    await control.aclose()
