"""When an alert's condition is raised again, against the local receiver on a fake clock: a
lasting condition the services never got is raised again (backing off, never slower than
one per window); one a slow service may have taken, at most once per window; one a service
refused for good, or that we failed to format, never while it lasts; none at shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from dispatcher.alerts import sender as sender_module
from dispatcher.alerts.events import Alert, AlertKind
from dispatcher.alerts.rules import AlertRules, Snapshot
from dispatcher.alerts.sender import AlertSender, rearm_delay_s
from tests.alerts.receiver import Receiver, closed_port, receiver
from tests.alerts.test_sender import config
from tests.clock import FakeClock
from tests.engine.fakes import wait_for

PILING = Snapshot(dead_letters=150)
"""A condition that lasts: more dead letters than the threshold (100)."""
WINDOW_S = 600.0


async def no_sleep(_: float) -> None:
    return None


async def watch(
    sender: AlertSender, rules: AlertRules, snapshot: Snapshot, clock: FakeClock, seconds: float
) -> list[float]:
    """What the watch does every 10 fake seconds for ``seconds``: re-arm what the sender
    handed back, submit what began, let the sender finish. The times (from the start) at
    which an alert was submitted."""
    start, submitted = clock.now, []
    for _ in range(int(seconds // 10)):
        for alert in sender.take_rearmed():
            rules.rearm(alert)
        for alert in rules.changes(snapshot):
            if sender.submit(alert):
                submitted.append(clock.now - start)
        await sender.drain()
        clock.advance(10)
    return submitted


async def lasting(recorder: Receiver, seconds: float, **tunables: Any) -> list[float]:
    """A condition that lasts ``seconds`` (fake), alerted to ``recorder``: when it was raised."""
    clock = FakeClock()
    sender = AlertSender(config(recorder, **tunables), clock=clock, sleep=no_sleep)
    sender.start()
    try:
        return await watch(sender, AlertRules(), PILING, clock, seconds)
    finally:
        await sender.aclose()


async def test_a_slow_service_that_takes_the_post_gets_it_once_per_window() -> None:
    async with receiver() as recorder:
        recorder.slow_s = 0.5  # it records the post, then answers after our timeout
        raised = await lasting(recorder, 2.5 * WINDOW_S, request_timeout_s=0.2, max_attempts=3)
    assert raised == [0, WINDOW_S, 2 * WINDOW_S]  # not retried, not re-armed within a window
    assert recorder.attempts == {"slack": 3, "discord": 3}
    assert len(recorder.posts["slack"]) == len(recorder.posts["discord"]) == 3


@pytest.mark.parametrize("status", [410, 403])
async def test_a_revoked_webhook_is_not_hammered(status: int) -> None:
    async with receiver() as recorder:
        recorder.script = {"slack": [(status, {})] * 50, "discord": [(status, {})] * 50}
        raised = await lasting(recorder, 3 * WINDOW_S)
    assert raised == [0]
    assert recorder.attempts == {"slack": 1, "discord": 1}


async def test_an_alert_that_fails_to_format_is_not_raised_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(alert: Alert) -> dict[str, Any]:
        raise ValueError(f"cannot format {alert.key}")

    monkeypatch.setitem(sender_module.FORMATS, "slack", broken)
    monkeypatch.setitem(sender_module.FORMATS, "discord", broken)
    async with receiver() as recorder:
        raised = await lasting(recorder, 2 * WINDOW_S)
    assert raised == [0]
    assert recorder.attempts == {"slack": 0, "discord": 0}


async def test_a_refused_connection_is_raised_again_while_the_condition_lasts() -> None:
    clock = FakeClock()
    rules = AlertRules()
    sender = AlertSender(
        config(None, closed_port(), max_attempts=2, rearm_after_s=60), clock=clock, sleep=no_sleep
    )
    sender.start()
    raised = await watch(sender, rules, PILING, clock, 3_000)
    # 60 s after the first give-up, doubling, then once per window.
    assert raised == [0, 60, 180, 420, 900, 1500, 2100, 2700]
    assert sender.failed == 2 * len(raised)
    assert await watch(sender, rules, Snapshot(dead_letters=0), clock, 3 * WINDOW_S) == []
    await sender.aclose()


def test_the_rearm_delay_doubles_up_to_the_window() -> None:
    delays = [rearm_delay_s(n, 60, WINDOW_S) for n in range(1, 7)]
    assert delays == [60, 120, 240, 480, 600, 600]


async def test_an_alert_cut_by_shutdown_is_not_rearmed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    async with receiver() as recorder:
        recorder.slow_s = 1.0
        sender = AlertSender(config(recorder), clock=clock)
        sender.start()
        assert sender.submit(Alert.of(AlertKind.CAMPAIGN_FAILED, "c1", "Failed", "x"))
        await wait_for(lambda: recorder.attempts["slack"] == 1)
        await sender.aclose()  # cancels the post in flight
        await asyncio.wait_for(sender.drain(), 1)  # nothing left waiting
    clock.advance(3 * WINDOW_S)
    assert sender.take_rearmed() == []
    assert "raised again" not in caplog.text
