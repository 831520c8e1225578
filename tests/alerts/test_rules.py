"""AlertRules: each condition alerts when it begins, not while it lasts."""

from __future__ import annotations

from typing import Any

from dispatcher.alerts.events import AlertKind, scrub
from dispatcher.alerts.rules import AlertRules, Snapshot


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
