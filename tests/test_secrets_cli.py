"""``dispatcher secrets``: rotating the key file's keyring under a live database, and the
one-line errors of a wrong or malformed key."""

from __future__ import annotations

import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dispatcher.cli import main
from dispatcher.config import Settings
from dispatcher.crypto import Keyring, SecretKeyError, encode_key, generate_key
from dispatcher.keyfile import key_file, load_keys
from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import create_database, drop_database

TOKEN = "EAAG-cli-rotation-token"


@pytest.fixture
async def deployment_env(
    service_urls: ServiceUrls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Settings]:
    """A database of its own with one registered number, and a key file under tmp_path."""
    name = f"dispatcher_cli_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", url)
    monkeypatch.setenv("DISPATCHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISPATCHER_SECRET_KEY", raising=False)
    settings = Settings()
    store = await Store.open(url, keyring=load_keys(settings).keyring, max_size=2)
    try:
        await store.instances.upsert("pn-cli", "biz-cli", TOKEN)
    finally:
        await store.close()
    yield settings
    await drop_database(service_urls.database_url, name)


async def _token(settings: Settings, keyring: Keyring) -> str | None:
    store = await Store.open(settings.database_url, keyring=keyring, max_size=1)
    try:
        instance = await store.instances.get_by_phone_number_id("pn-cli")
        assert instance is not None
        return await store.instances.instance_token(instance.id)
    finally:
        await store.close()


async def test_rotate_then_retire_through_the_key_file(
    deployment_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = deployment_env
    old = load_keys(settings).keyring
    path = key_file(settings)

    assert await _run(["secrets", "rotate-key"]) == 0
    rotated = load_keys(settings).keyring
    assert rotated.ids[1:] == old.ids
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert f"key {rotated.ids[0]} is now primary; 1 secrets sealed" in out
    assert encode_key(rotated.primary) not in out
    new_only = rotated.primary_only()
    # A process that started before the rotation (old key only) still reads the token.
    assert await _token(settings, old) == await _token(settings, new_only) == TOKEN

    assert await _run(["secrets", "retire-keys"]) == 0
    assert load_keys(settings).keyring.ids == new_only.ids
    assert await _token(settings, new_only) == TOKEN
    with pytest.raises(SecretKeyError):
        await _token(settings, old)

    assert await _run(["secrets", "status"]) == 0
    assert f"{new_only.ids[0]}: 1 secrets" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("wrong", "DISPATCHER_SECRET_KEY: the database's secrets are sealed under key(s) "),
        ("abc", "DISPATCHER_SECRET_KEY: a key is 2 bytes; expected 32 bytes"),
    ],
)
async def test_a_wrong_or_malformed_key_is_one_line_not_a_traceback(
    deployment_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str,
    expected: str,
) -> None:
    monkeypatch.setenv(
        "DISPATCHER_SECRET_KEY", encode_key(generate_key()) if key == "wrong" else key
    )
    assert await _run(["secrets", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {expected}"), err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


async def test_with_the_setting_a_new_key_must_be_given(
    deployment_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    current = load_keys(deployment_env).keyring
    monkeypatch.setenv("DISPATCHER_SECRET_KEY", encode_key(current.primary))
    assert await _run(["secrets", "rotate-key"]) == 2
    assert "--new-key-file" in capsys.readouterr().err

    new_key = deployment_env.data_dir / "new.key"
    new_key.write_text(encode_key(generate_key()))
    assert await _run(["secrets", "rotate-key", "--new-key-file", str(new_key)]) == 0
    out = capsys.readouterr().out
    assert "set DISPATCHER_SECRET_KEY on every process to the new key" in out
    assert await _token(deployment_env, current) == TOKEN


async def _run(argv: list[str]) -> int:
    """The CLI runs its own event loop: run it off this test's."""
    import asyncio

    return await asyncio.to_thread(main, argv)
