"""A registered access token is nowhere but sealed: not in Postgres's files (a server of this
module's own, checkpointed and read byte by byte), not in any API answer, not in what a Ray
client can ask the coordinator, not in the logs. Secrets of an older version are sealed on
upgrade and leave the table files."""

from __future__ import annotations

import asyncio
import logging
import pickle
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from dispatcher.config import Settings
from dispatcher.crypto import encode_key
from dispatcher.keyfile import load_keyring
from dispatcher.services import EmbeddedPostgres, ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import connect, create_database
from dispatcher.store.migrate import migrate, migrations
from dispatcher.urls import without_password
from tests.api.conftest import PREFIX, unique
from tests.stack import API_TOKEN, Stack, start_stack, stop_stack, wait_until


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL whose data directory this module may read whole. (Not in pytest's
    tmp_path: the server's own system user cannot enter it.)"""
    directory = Path(tempfile.mkdtemp(prefix="secrets-pg-"))
    server = EmbeddedPostgres(directory / "pg")
    server.ensure_running()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _with_password(url: str, password: str) -> str:
    """The embedded server trusts its socket: a password in the URL is carried, not checked."""
    assert url.startswith("postgresql://postgres:@"), url
    return url.replace("postgres:@", f"postgres:{password}@", 1)


async def _files_holding(directory: Path, url: str, needles: list[bytes]) -> dict[bytes, list[str]]:
    """Which files of the data directory hold each needle, once everything is on disk."""
    conn = await connect(url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()

    def scan() -> dict[bytes, list[str]]:
        found: dict[bytes, list[str]] = {needle: [] for needle in needles}
        for path in directory.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                for needle in needles:
                    if needle in data:
                        found[needle].append(str(path.relative_to(directory)))
        return found

    return await asyncio.to_thread(scan)


@pytest.fixture(scope="module")
def own_stack(
    own_postgres: EmbeddedPostgres, settings: Settings, service_urls: ServiceUrls
) -> Iterator[tuple[Stack, str]]:
    url = own_postgres.url()
    assert url is not None
    password = f"pw-{uuid.uuid4().hex}"
    stack = start_stack(settings, _with_password(url, password), service_urls.redis_url)
    try:
        yield stack, password
    finally:
        stop_stack(stack)


@pytest.fixture
async def api(own_stack: tuple[Stack, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=own_stack[0].api.url + PREFIX,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    ) as client:
        yield client


def _ray_logs() -> str:
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    return "\n".join(
        p.read_text(errors="replace")
        for p in logs.rglob("*")
        if p.is_file() and p.suffix in {".out", ".err", ".log"}
    )


async def test_a_registered_token_is_nowhere_in_postgres_files_answers_or_logs(
    own_stack: tuple[Stack, str],
    own_postgres: EmbeddedPostgres,
    api: httpx.AsyncClient,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stack, password = own_stack
    real_token = stack.numbers["6001"]  # the sandbox accepts it: the actor must open it
    long_token = f"EAAG{uuid.uuid4().hex}{uuid.uuid4().hex}"
    marker = unique("at-rest-marker")  # stored in plain text: proves the scan sees rows
    answers: list[str] = []

    registered = await api.post(
        "/instances",
        json={
            "phone_number_id": "6001",
            "access_token": real_token,
            "business_id": "biz-large",
            "name": marker,
        },
    )
    other = await api.post(
        "/instances",
        json={
            "phone_number_id": unique("9"),
            "access_token": long_token,
            "business_id": unique("biz"),
            "throughput_mps": 1000,
        },
    )
    assert registered.status_code == other.status_code == 201, registered.text
    answers += [registered.text, other.text]
    instance_id = registered.json()["id"]

    async def detected() -> dict[str, Any] | None:
        shown = await api.get(f"/instances/{instance_id}")
        answers.append(shown.text)
        body: dict[str, Any] = shown.json()
        # Only a Graph API call made with the right token reads the number's facts.
        read = body["display_phone_number"] and body["throughput_mps"] == 80
        return body if read else None

    await wait_until(detected, timeout_s=90)
    for path in ("/instances", "/queue/stats"):
        answers.append((await api.get(path)).text)

    public = ray.get(stack.coordinator.deployment.remote())
    stats = ray.get(stack.coordinator.stats.remote())
    assert public.keyring is None
    assert public.database_url == without_password(stack.deployment.database_url)
    assert password in stack.deployment.database_url  # the actors do have it
    shown_to_ray = [repr(public), str(pickle.dumps(public)), repr(stats), repr(stack.deployment)]

    keyring = load_keyring(settings)
    key_text = encode_key(keyring.primary)
    for token in (real_token, long_token):
        for text in (*answers, *shown_to_ray, caplog.text, _ray_logs()):
            assert token not in text
    for text in (*shown_to_ray, caplog.text):
        assert password not in text
        assert key_text not in text

    url = own_postgres.url()
    assert url is not None
    found = await _files_holding(
        own_postgres.directory,
        url,
        [
            real_token.encode(),
            long_token.encode(),
            keyring.primary,
            key_text.encode(),
            marker.encode(),
        ],
    )
    assert found.pop(marker.encode()), "the scan must see what is stored in plain text"
    assert found == {needle: [] for needle in found}


async def test_plain_tokens_of_an_older_version_leave_the_table_files(
    own_postgres: EmbeddedPostgres, settings: Settings
) -> None:
    server_url = own_postgres.url()
    assert server_url is not None
    url = await create_database(server_url, f"legacy_{uuid.uuid4().hex[:8]}")
    token = f"EAAG-legacy-{uuid.uuid4().hex}"
    marker = unique("legacy-marker")
    conn = await connect(url)
    try:
        await migrate(conn, [m for m in migrations() if m.version < "0011"])
        instance_id = await conn.fetchval(
            "WITH p AS (INSERT INTO whatsapp_portfolios (business_id) VALUES ('biz-old'))"
            " INSERT INTO whatsapp_instances (phone_number_id, business_id, name)"
            " VALUES ('pn-old', 'biz-old', $1) RETURNING id",
            marker,
        )
        await conn.execute(
            "INSERT INTO whatsapp_instance_tokens VALUES ($1, $2)", instance_id, token
        )
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    before = await _files_holding(own_postgres.directory, url, [token.encode()])
    assert any(not f.startswith("pg_wal") for f in before[token.encode()])

    store = await Store.open(url, keyring=load_keyring(settings), max_size=1)
    try:
        assert await store.instances.instance_token(instance_id) == token
    finally:
        await store.close()
    after = await _files_holding(own_postgres.directory, url, [token.encode(), marker.encode()])
    assert after[marker.encode()]
    # The write-ahead log keeps the old records until its segments are recycled (README).
    assert [f for f in after[token.encode()] if not f.startswith("pg_wal")] == []
