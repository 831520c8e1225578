"""URLs as shown in logs, errors and terminals: no password, token or secret survives."""

from __future__ import annotations

import pytest

from dispatcher.config import Settings
from dispatcher.deployment import Deployment
from dispatcher.services import ServiceUrls
from dispatcher.urls import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "postgresql://u@h/d?password=pw&sslmode=require",
            "postgresql://u@h/d?password=***&sslmode=require",
        ),
        (
            "postgresql://u@/d?host=/run/pg&sslpassword=pw",
            "postgresql://u@/d?host=/run/pg&sslpassword=***",
        ),
        (
            "https://graph.facebook.com/v25.0/1?access_token=EAAB&fields=id",
            "https://graph.facebook.com/v25.0/1?access_token=***&fields=id",
        ),
        (
            "http://h/webhook?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=c",
            "http://h/webhook?hub.mode=subscribe&hub.verify_token=***&hub.challenge=c",
        ),
        (
            "http://h/cb?token=t&client_secret=s&app%5Fsecret=s2&API_KEY=k",
            "http://h/cb?token=***&client_secret=***&app%5Fsecret=***&API_KEY=***",
        ),
        ("http://u:pw@h/?password=pw2", "http://u:***@h/?password=***"),
    ],
)
def test_credentials_are_masked(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@h/d", "redis://127.0.0.1:6379/15", "http://h/p?fields=throughput&x=1", ""],
)
def test_urls_without_credentials_are_unchanged(url: str) -> None:
    assert redact(url) == url


def test_an_unparsable_url_is_not_echoed() -> None:
    assert redact("http://[pw") == "<unparsable URL>"


def test_reprs_of_what_holds_service_urls_are_redacted() -> None:
    database, redis = "postgresql://u:pw1@h/d?password=pw2", "redis://:pw3@h:6379/0"
    shown = [
        repr(Settings(database_url=database, redis_url=redis)),
        repr(ServiceUrls(database_url=database, redis_url=redis)),
        repr(Deployment(database, redis, "http://graph", "v25.0")),
    ]
    for text in shown:
        assert "pw" not in text.replace("password", ""), text
        assert "redis://:***@h:6379/0" in text
