from __future__ import annotations

import asyncio
import uuid

import pytest

from dispatcher.errors import ConfigError, ServiceError
from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import connect, create_database, drop_database, redact, with_database
from dispatcher.store.migrate import migrate, migrations


async def test_migrations_apply_once_even_with_concurrent_starters(
    service_urls: ServiceUrls,
) -> None:
    name = f"dispatcher_mig_{uuid.uuid4().hex[:10]}"
    url = await create_database(service_urls.database_url, name)
    try:
        conns = [await connect(url) for _ in range(3)]
        try:
            results = await asyncio.gather(*(migrate(conn) for conn in conns))
            versions = [m.version for m in migrations()]
            assert sorted(results, key=len) == [[], [], versions]
            assert await migrate(conns[0]) == []
            recorded = await conns[0].fetch("SELECT version FROM dispatcher_migrations")
            assert [r["version"] for r in recorded] == versions
            tables = await conns[0].fetchval(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'whatsapp_%'"
            )
            # 0003: whatsapp_suppressions; 0006: the coordinator lease; 0007: queue markers;
            # 0016: per-variant counters and winners; 0018: the recipients' attempts and the
            # retry inbox; 0022: the templates known paused
            assert tables == 14
        finally:
            for conn in conns:
                await conn.close()
    finally:
        await drop_database(service_urls.database_url, name)


def test_migrations_are_numbered_sql_files_in_order() -> None:
    versions = [m.version for m in migrations()]
    assert versions == sorted(versions)
    assert versions[0].startswith("0001_")


async def test_unreachable_postgres_is_one_line_without_the_password() -> None:
    with pytest.raises(ServiceError) as caught:
        await Store.open("postgresql://user:s3cret@127.0.0.1:1/db")
    message = str(caught.value)
    assert caught.value.service == "postgres"
    assert "cannot connect" in message
    assert "s3cret" not in message
    assert "\n" not in message


async def test_wrong_database_and_missing_url_are_named(service_urls: ServiceUrls) -> None:
    with pytest.raises(ServiceError, match="does not exist"):
        await connect(with_database(service_urls.database_url, "no_such_db_here"))
    with pytest.raises(ConfigError) as caught:
        await Store.open("")
    assert caught.value.setting == "DISPATCHER_DATABASE_URL"


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
