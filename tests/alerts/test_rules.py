"""AlertRules: each condition alerts when it begins, not while it lasts."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx

from dispatcher.alerts.events import Alert, AlertKind, scrub
from dispatcher.alerts.formats import slack_payload
from dispatcher.alerts.rules import AlertRules, Snapshot
from dispatcher.alerts.sender import MaskWebhookUrls
from dispatcher.store.attempts import REOPENED_FOR_RETRY
from dispatcher.store.models import CampaignStatus
from tests.alerts.test_sender import NOW, campaign


def stats(breaker: str = "closed", spam: int = 0, state: str = "running") -> dict[str, Any]:
    return {
        "phone_number_id": "pn-1",
        "state": state,
        "breaker": {"state": breaker},
        "errors_by_code": {"131048": spam} if spam else {},
    }


def kinds(rules: AlertRules, **snapshot: Any) -> list[AlertKind]:
    return [alert.kind for alert in rules.changes(Snapshot(**snapshot))]


def test_conditions_alert_on_their_rising_edge_only() -> None:
    rules = AlertRules(dead_letters_threshold=10)
    assert kinds(rules, instance_stats={"i": stats()}, dead_letters=10) == []
    assert kinds(rules, instance_stats={"i": stats("open", 1)}, dead_letters=11) == [
        AlertKind.SPAM_THROTTLE,
        AlertKind.BREAKER_OPEN,
        AlertKind.DEAD_LETTERS,
    ]
    assert kinds(rules, instance_stats={"i": stats("open", 1)}, dead_letters=50) == []
    assert kinds(rules, instance_stats={"i": stats("half_open", 2)}, dead_letters=3) == [
        AlertKind.SPAM_THROTTLE  # another 131048
    ]
    assert kinds(rules, instance_stats={"i": stats("open", 2)}, dead_letters=11) == [
        AlertKind.BREAKER_OPEN,
        AlertKind.DEAD_LETTERS,
    ]
    assert kinds(rules, instance_stats={"i": stats(state="error")}) == [AlertKind.NUMBER_STOPPED]
    assert kinds(rules, instance_stats={"i": stats(state="error")}) == []


def test_portfolio_conditions_alert_once_while_they_last() -> None:
    rules = AlertRules()
    held = {"b": {"held": True, "limit_source": "unreadable"}}
    assert kinds(rules, portfolios=held) == [AlertKind.PORTFOLIO_HOLD, AlertKind.LIMIT_UNREADABLE]
    assert kinds(rules, portfolios=held) == []
    assert kinds(rules, portfolios={"b": {"held": False, "limit_source": "operator"}}) == []
    assert kinds(rules, portfolios=held) == [AlertKind.PORTFOLIO_HOLD, AlertKind.LIMIT_UNREADABLE]


def test_scrub_masks_tokens_and_url_credentials() -> None:
    text = scrub("190: EAAGm0PX4ZBpsBAKtoken123 at https://u:pw@h.example/p?access_token=abc ok")
    assert text == "190: *** at https://u:***@h.example/p?access_token=*** ok"


def test_slack_text_is_escaped_like_its_blocks() -> None:
    alert = Alert.of(
        AlertKind.CAMPAIGN_COMPLETED,
        "c1",
        "Campaign <!channel> completed",
        "<https://evil.example|Rotate your token> & more",
    )
    payload = slack_payload(alert)
    for text in (payload["text"], payload["blocks"][0]["text"]["text"]):
        assert "<!channel>" not in text
        assert "<https://" not in text
        assert "&lt;!channel&gt;" in text


def test_webhook_urls_are_masked_as_httpx_prints_them() -> None:
    configured = "https://Hooks.Slack.com:443/services/T000/B000/secretpart"
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", ""), None
    )
    record.args = ("POST", str(httpx.URL(configured)))
    MaskWebhookUrls({"slack": configured}).filter(record)
    assert "secretpart" not in record.getMessage()
    assert "<slack webhook>" in record.getMessage()


def test_a_campaign_reopened_for_a_retry_completes_again_not_twice_the_same() -> None:
    """A 131049 reported hours after completion runs it again for the retry: its second
    completion is announced as the retries' end, not as a repeat of the first."""
    first = campaign(CampaignStatus.COMPLETED)
    rules = AlertRules()
    (done,) = rules.changes(Snapshot(finished_campaigns=[first]))
    assert done.title == "Campaign c-completed completed"
    assert rules.changes(Snapshot(finished_campaigns=[first])) == []
    later = replace(first, status_reason=REOPENED_FOR_RETRY, finished_at=NOW + timedelta(days=1))
    (again,) = rules.changes(Snapshot(finished_campaigns=[later]))
    assert again.kind is AlertKind.CAMPAIGN_COMPLETED
    assert again.title == "Campaign c-completed completed again"
    assert "retries" in again.text
