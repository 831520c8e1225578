"""AlertSender against a local receiver: each kind posts once per service in the service's
shape; repeats within the window are suppressed; 5xx and 429 are retried; a dead receiver
costs log lines, never an exception; no post or log line carries a secret."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from dispatcher.alerts.config import AlertConfig
from dispatcher.alerts.events import Alert, AlertKind
from dispatcher.alerts.rules import AlertRules, Snapshot
from dispatcher.alerts.sender import AlertSender
from dispatcher.store.models import Campaign, CampaignStatus, Instance, InstanceStatus
from tests.alerts.receiver import SECRET_PATH, Receiver, closed_port, receiver
from tests.clock import FakeClock

TOKEN = "EAAGsecrettokenvalue0123456789abcdef"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def config(recorder: Receiver | None, port: int | None = None, **tunables: Any) -> AlertConfig:
    def url(service: str) -> SecretStr:
        if recorder is not None:
            return SecretStr(recorder.url(service))
        return SecretStr(f"http://127.0.0.1:{port}/{service}/{SECRET_PATH}")

    return AlertConfig(
        slack_url=url("slack"), discord_url=url("discord"), backoff_s=0.01, **tunables
    )


def campaign(status: CampaignStatus, reason: str | None = None) -> Campaign:
    return Campaign(
        id=uuid.uuid4(), name=f"c-{status.value}", status=status, status_reason=reason,
        template={}, instance_ids=[], scheduled_at=None, total_recipients=10, total_sent=9,
        total_delivered=8, total_read=1, total_failed=1, total_duplicates=0, pending=0,
        queued=0, sending=0, created_at=NOW, updated_at=NOW, started_at=NOW, finished_at=NOW,
        hold_kind="template" if status is CampaignStatus.HELD else None,
    )  # fmt: skip


def number(reason: str) -> Instance:
    return Instance(
        id=uuid.uuid4(), phone_number_id="pn-stopped", business_id="biz-1", name="n",
        messaging_tier=None, detected_tier=None, tier_detected_at=None, throughput_mps=80,
        status=InstanceStatus.ERROR, status_reason=reason, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def every_kind() -> list[Alert]:
    """One snapshot in which every kind of condition begins."""
    stats = {
        "inst-1": {
            "phone_number_id": "pn-1",
            "state": "running",
            "breaker": {"state": "open", "window_failures": 12, "retry_after_s": 30},
            "errors_by_code": {"131048": 3},
        }
    }
    snapshot = Snapshot(
        instance_stats=stats,
        # A reason that quotes a token and a URL with credentials: neither may be posted.
        stopped_numbers=[
            number(f"190 token {TOKEN} rejected at https://u:pw@graph.example/x?access_token=z")
        ],
        portfolios={
            "biz-held": {"held": True, "hold_reason": "131064 on number pn-1"},
            "biz-unread": {"limit_source": "unreadable", "daily_limit": 250, "limit_error": "100"},
        },
        held_campaigns=[campaign(CampaignStatus.HELD, "template paused (132015)")],
        finished_campaigns=[campaign(CampaignStatus.COMPLETED), campaign(CampaignStatus.FAILED)],
        dead_letters=101,
    )
    alerts = AlertRules(dead_letters_threshold=100).changes(snapshot)
    assert sorted(a.kind for a in alerts) == sorted(AlertKind)
    return alerts


def check_slack(body: dict[str, Any]) -> None:
    assert set(body) == {"text", "blocks"}
    assert body["text"]
    for block in body["blocks"]:
        assert block["type"] == "section"
        texts = [block["text"]] if "text" in block else block["fields"]
        assert 1 <= len(texts) <= 10
        for text in texts:
            assert text["type"] == "mrkdwn"
            assert text["text"]


def check_discord(body: dict[str, Any]) -> None:
    assert set(body) == {"content", "embeds", "allowed_mentions"}
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert set(embed) == {"title", "description", "color", "fields"}
    assert isinstance(embed["color"], int)
    assert embed["title"]
    assert embed["description"]
    for item in embed["fields"]:
        assert set(item) == {"name", "value", "inline"}
        assert item["name"]
        assert item["value"]


async def test_each_kind_posts_once_to_each_service_in_its_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with receiver() as recorder:
        sender = AlertSender(config(recorder))
        sender.start()
        alerts = every_kind()
        assert all(sender.submit(alert) for alert in alerts)
        await sender.drain()
        await sender.aclose()
    assert len(recorder.posts["slack"]) == len(recorder.posts["discord"]) == len(AlertKind)
    for body in recorder.posts["slack"]:
        check_slack(body)
    for body in recorder.posts["discord"]:
        check_discord(body)
    titles = sorted(b["embeds"][0]["title"] for b in recorder.posts["discord"])
    assert titles == sorted(a.title for a in alerts)
    stopped = next(b for b in recorder.posts["slack"] if "pn-stopped" in b["text"])
    assert "190 token" in stopped["text"]  # the reason is there, scrubbed
    raw = recorder.raw()
    for secret in (TOKEN, "pw@", "access_token=z", SECRET_PATH):
        assert secret not in raw
        assert secret not in caplog.text


async def test_a_repeat_within_the_window_is_suppressed_then_sent_after_it() -> None:
    clock = FakeClock()
    alert = Alert.of(AlertKind.BREAKER_OPEN, "inst-1", "Breaker open", "pn-1")
    async with receiver() as recorder:
        sender = AlertSender(config(recorder), clock=clock)
        sender.start()
        assert sender.submit(alert)
        clock.advance(599)
        assert not sender.submit(alert)  # same key, 599 s later
        assert sender.submit(Alert.of(AlertKind.BREAKER_OPEN, "inst-2", "Breaker open", "x"))
        clock.advance(1)
        assert sender.submit(alert)  # 600 s: again
        await sender.drain()
        await sender.aclose()
    assert sender.suppressed == 1
    assert [b["text"] for b in recorder.posts["slack"]] == [
        "Breaker open: pn-1",
        "Breaker open: x",
        "Breaker open: pn-1",
    ]
    assert len(recorder.posts["discord"]) == 3


async def test_a_500_then_200_is_retried_and_delivered() -> None:
    async with receiver() as recorder:
        recorder.script["slack"] = [(500, {}), (502, {})]
        recorder.script["discord"] = [(500, {})]
        sender = AlertSender(config(recorder))
        sender.start()
        sender.submit(Alert.of(AlertKind.CAMPAIGN_COMPLETED, "c1", "Campaign done", "all sent"))
        await sender.drain()
        await sender.aclose()
    assert recorder.attempts == {"slack": 3, "discord": 2}
    assert len(recorder.posts["slack"]) == len(recorder.posts["discord"]) == 1
    assert (sender.posted, sender.failed) == (2, 0)


async def test_a_429_waits_as_long_as_it_asks() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with receiver() as recorder:
        recorder.script["slack"] = [(429, {"Retry-After": "7"})]
        recorder.script["discord"] = [(429, {})]  # Discord's JSON retry_after: 0.01
        sender = AlertSender(config(recorder), sleep=sleep)
        sender.start()
        sender.submit(Alert.of(AlertKind.SPAM_THROTTLE, "i", "Spam", "131048"))
        await sender.drain()
        await sender.aclose()
    assert waits == [7.0, 0.01]
    assert len(recorder.posts["slack"]) == len(recorder.posts["discord"]) == 1


async def test_a_4xx_other_than_429_is_not_retried() -> None:
    async with receiver() as recorder:
        recorder.script["slack"] = [(404, {})]
        sender = AlertSender(config(recorder))
        sender.start()
        sender.submit(Alert.of(AlertKind.DEAD_LETTERS, "campaigns", "DLQ", "101"))
        await sender.drain()
        await sender.aclose()
    assert recorder.attempts["slack"] == 1
    assert recorder.posts["slack"] == []
    assert (sender.posted, sender.failed) == (1, 1)


async def test_a_dead_receiver_costs_log_lines_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = AlertSender(config(None, closed_port(), max_attempts=3))
    sender.start()
    assert sender.submit(Alert.of(AlertKind.NUMBER_STOPPED, "i", "Number stopped", "190"))
    await sender.drain()  # returns: the alert was given up, nothing raised
    await sender.aclose()
    assert (sender.posted, sender.failed) == (0, 2)
    assert "not posted to slack: ConnectError" in caplog.text
    assert SECRET_PATH not in caplog.text
    assert "127.0.0.1" not in caplog.text


async def test_a_full_queue_drops_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    sender = AlertSender(config(None, closed_port(), queue_size=2))  # not started: nothing drains
    accepted = [
        sender.submit(Alert.of(AlertKind.CAMPAIGN_FAILED, f"c{i}", "Failed", "x")) for i in range(3)
    ]
    assert accepted == [True, True, False]
    assert sender.dropped == 1
    assert "alert queue full (2): campaign_failed:c2 dropped" in caplog.text


async def test_an_alert_the_full_queue_dropped_is_raised_again_while_it_lasts() -> None:
    clock = FakeClock()
    rules = AlertRules()
    held = Snapshot(portfolios={"biz-a": {"held": True}, "biz-b": {"held": True}})
    async with receiver() as recorder:
        sender = AlertSender(config(recorder, queue_size=1), clock=clock)
        first = rules.changes(held)
        assert [sender.submit(alert) for alert in first] == [True, False]  # not started yet
        sender.start()
        await sender.drain()
        # What the watch does at its next check: the dropped one's condition is new again.
        for alert in sender.take_rearmed():
            rules.rearm(alert)
        again = rules.changes(held)
        assert [alert.subject for alert in again] == ["biz-b"]
        assert sender.submit(again[0])  # not held back by a window it never used
        await sender.drain()
        assert rules.changes(held) == []  # delivered: edge-triggered again
        assert sender.take_rearmed() == []
        await sender.aclose()
    titles = [body["embeds"][0]["title"] for body in recorder.posts["discord"]]
    assert titles == ["Portfolio biz-a held by Meta", "Portfolio biz-b held by Meta"]


async def test_an_alert_no_service_took_is_raised_again_after_the_rearm_delay() -> None:
    clock = FakeClock()
    rules = AlertRules(dead_letters_threshold=100)
    piling = Snapshot(dead_letters=150)
    async with receiver() as recorder:
        recorder.script["slack"] = [(500, {}), (503, {})]
        recorder.script["discord"] = [(404, {})]
        sender = AlertSender(config(recorder, max_attempts=2, rearm_after_s=60), clock=clock)
        sender.start()
        [alert] = rules.changes(piling)
        assert sender.submit(alert)
        await sender.drain()
        assert sender.posted == 0
        assert sender.take_rearmed() == []  # not at once: the receivers just failed
        clock.advance(60)
        for due in sender.take_rearmed():
            rules.rearm(due)
        [again] = rules.changes(piling)
        assert sender.submit(again)  # the give-up let go of its window
        await sender.drain()
        await sender.aclose()
    assert again.key == alert.key
    assert len(recorder.posts["slack"]) == len(recorder.posts["discord"]) == 1
    assert recorder.attempts == {"slack": 3, "discord": 2}


async def test_an_alert_one_service_took_is_not_raised_again() -> None:
    clock = FakeClock()
    async with receiver() as recorder:
        recorder.script["discord"] = [(404, {})]
        sender = AlertSender(config(recorder, rearm_after_s=0), clock=clock)
        sender.start()
        alert = Alert.of(AlertKind.CAMPAIGN_FAILED, "c1", "Failed", "x")
        assert sender.submit(alert)
        await sender.drain()
        await sender.aclose()
    assert sender.take_rearmed() == []
    assert not sender.submit(alert)  # within its window
    assert len(recorder.posts["slack"]) == 1


def test_no_target_no_alert() -> None:
    sender = AlertSender(AlertConfig(slack_url=SecretStr(""), discord_url=None))
    assert not sender.enabled
    assert not sender.submit(Alert.of(AlertKind.CAMPAIGN_FAILED, "c", "Failed", "x"))
    assert "hunter2" not in repr(config(None, 1))
    assert config(None, 1).public().targets == {}
