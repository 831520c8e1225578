"""What a Ray client is told about a deployment: no password, no keyring; a joining driver
completes it with its own credentials."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from dispatcher.config import Settings
from dispatcher.crypto import SETTING, Keyring, encode_key
from dispatcher.deployment import Deployment
from dispatcher.errors import ConfigError
from dispatcher.services import ServiceUrls
from dispatcher.urls import without_password

KEYRING = Keyring.generate()
FULL = Deployment(
    database_url="postgresql://app:db-s3cret@db.example:5432/app?sslmode=require",
    redis_url="redis://:redis-s3cret@cache.example:6379/0",
    graph_url="https://graph.facebook.com",
    api_version="v25.0",
    keyring=KEYRING,
)


def test_the_public_deployment_has_no_password_and_no_keyring() -> None:
    public = FULL.public()
    assert public.database_url == "postgresql://app@db.example:5432/app?sslmode=require"
    assert public.redis_url == "redis://cache.example:6379/0"
    assert public.keyring is None
    shown = str(pickle.dumps(public)) + repr(public)
    for secret in ("db-s3cret", "redis-s3cret", encode_key(KEYRING.primary)):
        assert secret not in shown
    assert public.graph_url == FULL.graph_url


def test_the_full_deployment_never_shows_its_secrets_in_its_repr() -> None:
    shown = repr(FULL)
    assert "db-s3cret" not in shown
    assert "redis-s3cret" not in shown
    assert KEYRING.ids[0] in shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql://postgres@/postgres?host=/tmp/pg",
        ),
        ("postgresql://u@h/db?password=p&sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("redis://127.0.0.1:6379/15", "redis://127.0.0.1:6379/15"),
        ("http://[::1", ""),
    ],
)
def test_without_password(url: str, expected: str) -> None:
    assert without_password(url) == expected


def test_a_joining_driver_brings_its_own_credentials_and_key(tmp_path: Path) -> None:
    public = FULL.public()
    mine = Settings(
        database_url="postgresql://app:local-pw@db.example:5432/app",
        redis_url="",
        data_dir=tmp_path,
        secret_key=SecretStr(KEYRING.encode()),
    )
    joined = public.joined(mine)
    assert joined.database_url == mine.database_url
    assert joined.redis_url == public.redis_url
    assert joined.keyring is not None
    assert joined.keyring.ids == KEYRING.ids

    bare = public.joined(
        Settings(database_url="", data_dir=tmp_path, secret_key=SecretStr(KEYRING.encode()))
    )
    assert bare.database_url == public.database_url  # PGPASSWORD, .pgpass or trust auth
    with pytest.raises(ConfigError) as caught:
        public.joined(Settings(data_dir=tmp_path, secret_key=SecretStr("")))
    assert caught.value.setting == SETTING
    assert list(tmp_path.iterdir()) == []  # no key of its own made up


def test_alert_webhooks_reach_the_coordinator_but_never_a_public_deployment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack = "https://hooks.slack.com/services/T0/B0/slack-s3cret"
    discord = "https://discord.com/api/webhooks/1/discord-s3cret"
    monkeypatch.setenv("DISPATCHER_SLACK_WEBHOOK_URL", slack)
    monkeypatch.setenv("DISPATCHER_DISCORD_WEBHOOK_URL", discord)
    monkeypatch.setenv("DISPATCHER_ALERT_DEAD_LETTERS_THRESHOLD", "7")
    settings = Settings(secret_key=SecretStr(encode_key(KEYRING.primary)))
    assert "s3cret" not in repr(settings)
    full = Deployment.from_settings(settings, _urls(), keyring=KEYRING)
    shipped = pickle.loads(pickle.dumps(full))  # noqa: S301 (as Ray ships it to the coordinator)
    assert shipped.alerts.targets == {"slack": slack, "discord": discord}
    assert shipped.alerts.dead_letters_threshold == 7
    public = full.public()
    assert public.alerts.targets == {}
    assert "s3cret" not in str(pickle.dumps(public)) + repr(public) + repr(full)


def _urls() -> ServiceUrls:
    return ServiceUrls(database_url=FULL.database_url, redis_url=FULL.redis_url)


def test_the_metrics_label_names_the_database_never_its_credentials() -> None:
    assert FULL.label == "db.example:5432/app"
    assert FULL.public().label == FULL.label
    embedded = replace(FULL, database_url="postgresql://postgres:@/postgres?host=/tmp/pg&port=5")
    assert embedded.label == "local/postgres"
    assert replace(FULL, name="eu-prod").label == "eu-prod"
    settings = Settings(deployment_name="eu-prod", database_url=FULL.database_url)
    assert Deployment.from_settings(settings, _urls(), keyring=KEYRING).label == "eu-prod"
