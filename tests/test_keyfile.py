"""The keyring's source: DISPATCHER_SECRET_KEY, or a private key file made once, atomically."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from dispatcher.config import Settings
from dispatcher.crypto import SETTING, Keyring, encode_key, generate_key
from dispatcher.errors import ConfigError
from dispatcher.keyfile import key_file, load_keys, replace


def _settings(tmp_path: Path, secret_key: str = "") -> Settings:
    return Settings(data_dir=tmp_path / "data", secret_key=SecretStr(secret_key))


def test_with_nothing_configured_a_private_key_file_is_made_once(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: the file must still be 0600
    try:
        first = load_keys(_settings(tmp_path))
    finally:
        os.umask(old_umask)
    path = key_file(_settings(tmp_path))
    assert first.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(_settings(tmp_path)).keyring.ids == first.keyring.ids
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left over


def test_starters_racing_all_end_with_the_one_key_written(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: load_keys(_settings(tmp_path)).keyring.ids, range(16)))
    assert len(ids) == 1


def test_the_setting_wins_over_the_key_file(tmp_path: Path) -> None:
    load_keys(_settings(tmp_path))
    configured = Keyring([generate_key(), generate_key()])
    text = ",".join(encode_key(k) for k in Keyring.parse(configured.encode())._keys)
    source = load_keys(_settings(tmp_path, text))
    assert source.path is None
    assert source.keyring.ids == configured.ids


def test_a_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = load_keys(_settings(tmp_path)).path
    assert path is not None
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"open to others \(mode 0644\): chmod 600"):
        load_keys(_settings(tmp_path))


def test_a_joining_process_never_makes_a_key_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_keys(_settings(tmp_path), create=False)
    assert caught.value.setting == SETTING
    assert not key_file(_settings(tmp_path)).exists()


def test_replacing_the_keyring_keeps_the_file_private(tmp_path: Path) -> None:
    source = load_keys(_settings(tmp_path))
    assert source.path is not None
    rotated = source.keyring.with_primary(generate_key())
    replace(source.path, rotated)
    assert stat.S_IMODE(source.path.stat().st_mode) == 0o600
    assert load_keys(_settings(tmp_path)).keyring.ids == rotated.ids
