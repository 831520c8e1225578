"""Real services for the suite: the configured URLs, or embedded servers started once per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from dispatcher.config import Settings, load_settings
from dispatcher.crypto import encode_key, generate_key
from dispatcher.queue.connection import connect_redis
from dispatcher.services import Services, ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import connect as db_connect
from dispatcher.store.db import create_database, drop_database
from dispatcher.store.migrate import migrate

# One keyring for the session (unless one is configured): every store the tests open, and
# the stack's actors, seal and open secrets with it; no key file is written anywhere.
os.environ.setdefault("DISPATCHER_SECRET_KEY", encode_key(generate_key()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that need Redis or Postgres are marked, so CI can rerun just them against the
    # machine's own servers (make test-system) after the full run on embedded ones.
    for item in items:
        if "service_urls" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = load_settings()
    data_dir = base.data_dir
    if not (base.redis_url and base.database_url):
        data_dir = Path(tmp_path_factory.mktemp("dispatcher-data"))
    return base.model_copy(update={"data_dir": data_dir})


@pytest.fixture(scope="session")
def service_urls(settings: Settings) -> Iterator[ServiceUrls]:
    with Services(settings) as urls:
        yield urls


# --- store and queue: a fresh database per session, a unique Redis key prefix per test ---


@pytest.fixture(scope="session")
async def database_url(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A migrated database of its own on the configured (or embedded) server, dropped after."""
    name = f"dispatcher_test_{uuid.uuid4().hex[:12]}"
    url = await create_database(service_urls.database_url, name)
    conn = await db_connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    await drop_database(service_urls.database_url, name)


@pytest.fixture(scope="session")
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url, max_size=8, run_migrations=False)
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
async def redis_client(service_urls: ServiceUrls) -> AsyncIterator[aioredis.Redis]:
    client = await connect_redis(service_urls.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """Keys of one test: the system Redis is shared, so each test works under its own prefix."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await redis_client.delete(*keys)


# --- the whole stack: Ray, coordinator, API, sandbox (see tests/stack.py) ---


@pytest.fixture(scope="session")
def stack(settings: Settings, database_url: str, service_urls: ServiceUrls) -> Iterator[Any]:
    from tests.stack import start_stack, stop_stack

    running = start_stack(settings, database_url, service_urls.redis_url)
    yield running
    stop_stack(running)
