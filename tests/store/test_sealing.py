"""Secrets at rest in a database of each test's own: sealed on write, sealed on upgrade,
re-sealed on rotation, and a wrong key refused at start with one line."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from dispatcher.crypto import Keyring, SecretKeyError, box_key_ids, generate_key
from dispatcher.services import ServiceUrls
from dispatcher.store import Store
from dispatcher.store.db import connect, create_database, drop_database
from dispatcher.store.migrate import migrate, migrations
from dispatcher.store.sealing import key_use, reseal_all, token_context

OLD = Keyring([generate_key()])
NEW = Keyring([generate_key()])


@pytest.fixture
async def fresh_url(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """An empty database: rotation re-seals every secret of its database."""
    name = f"dispatcher_seal_{uuid.uuid4().hex[:12]}"
    yield await create_database(service_urls.database_url, name)
    await drop_database(service_urls.database_url, name)


async def _raw_token_row(store: Store, instance_id: uuid.UUID) -> tuple[str | None, bytes]:
    row = await store.pool.fetchrow(
        "SELECT access_token, sealed_token FROM whatsapp_instance_tokens WHERE instance_id = $1",
        instance_id,
    )
    return row["access_token"], bytes(row["sealed_token"])


async def test_a_registered_token_is_stored_sealed_under_the_keyring(fresh_url: str) -> None:
    store = await Store.open(fresh_url, keyring=OLD, max_size=2)
    try:
        instance = await store.instances.upsert("pn-seal", "biz-seal", "EAAG-sealed-token-1")
        plain, box = await _raw_token_row(store, instance.id)
        assert plain is None
        assert b"EAAG-sealed-token-1" not in box
        assert box_key_ids(box) == [OLD.ids[0]]
        assert await store.instances.instance_token(instance.id) == "EAAG-sealed-token-1"
        # Re-registering replaces the box; the callback key is sealed too.
        await store.instances.upsert("pn-seal", "biz-seal", "EAAG-sealed-token-2")
        assert await store.instances.instance_token(instance.id) == "EAAG-sealed-token-2"
        await store.secrets.callback_tag()
        assert await key_use(store.pool) == {OLD.ids[0]: 2}
    finally:
        await store.close()


async def test_plain_rows_of_an_older_version_are_sealed_at_first_start(fresh_url: str) -> None:
    conn = await connect(fresh_url)
    try:
        await migrate(conn, [m for m in migrations() if m.version < "0011"])
        instance_id = await conn.fetchval(
            "WITH p AS (INSERT INTO whatsapp_portfolios (business_id) VALUES ('biz-old'))"
            " INSERT INTO whatsapp_instances (phone_number_id, business_id)"
            " VALUES ('pn-old', 'biz-old') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO whatsapp_instance_tokens VALUES ($1, 'EAAG-legacy-token')", instance_id
        )
        await conn.execute(
            "INSERT INTO dispatcher_secrets (name, value) VALUES ('callback_tag_key', $1)",
            b"k" * 32,
        )
    finally:
        await conn.close()

    store = await Store.open(fresh_url, keyring=OLD, max_size=2)
    try:
        plain, box = await _raw_token_row(store, instance_id)
        assert plain is None
        assert box_key_ids(box) == [OLD.ids[0]]
        assert await store.instances.instance_token(instance_id) == "EAAG-legacy-token"
        assert await store.secrets.key("callback_tag_key") == b"k" * 32
        assert (
            await store.pool.fetchval(
                "SELECT count(*) FROM dispatcher_secrets WHERE value IS NOT NULL"
            )
            == 0
        )
        assert await key_use(store.pool) == {OLD.ids[0]: 2}
    finally:
        await store.close()


async def test_a_wrong_key_fails_at_start_with_one_line(fresh_url: str) -> None:
    store = await Store.open(fresh_url, keyring=OLD, max_size=2)
    await store.instances.upsert("pn-wrong", "biz-wrong", "EAAG-wrong-key-token")
    await store.close()
    with pytest.raises(SecretKeyError) as caught:
        await Store.open(fresh_url, keyring=NEW, max_size=2)
    message = str(caught.value)
    assert message == (
        f"DISPATCHER_SECRET_KEY: the database's secrets are sealed under key(s) {OLD.ids[0]}; "
        f"this keyring has {NEW.ids[0]}: set the deployment's key"
    )


async def test_rotation_keeps_old_readers_working_and_retiring_ends_the_old_key(
    fresh_url: str,
) -> None:
    store = await Store.open(fresh_url, keyring=OLD, max_size=2)
    try:
        instance = await store.instances.upsert("pn-rot", "biz-rot", "EAAG-rotated-token")
        callback_key = await store.secrets.key("callback_tag_key")
        _, before = await _raw_token_row(store, instance.id)
        rotated = OLD.with_primary(NEW.primary)

        assert await reseal_all(store.pool, rotated, rotated) == 2
        _, during = await _raw_token_row(store, instance.id)
        assert box_key_ids(during) == [NEW.ids[0], OLD.ids[0]]
        context = token_context("pn-rot")
        # A process still on the old key, and one already on the new one, both read it.
        assert OLD.open(during, context) == NEW.open(during, context) == b"EAAG-rotated-token"
        assert await key_use(store.pool) == {NEW.ids[0]: 2, OLD.ids[0]: 2}

        assert await reseal_all(store.pool, rotated, rotated.primary_only()) == 2
        _, after = await _raw_token_row(store, instance.id)
        assert box_key_ids(after) == [NEW.ids[0]]
        assert NEW.open(after, context) == b"EAAG-rotated-token"
        for box in (before, after):
            with pytest.raises(SecretKeyError):
                (NEW if box is before else OLD).open(box, context)
    finally:
        await store.close()
    reopened = await Store.open(fresh_url, keyring=NEW, max_size=2)
    try:
        assert await reopened.instances.instance_token(instance.id) == "EAAG-rotated-token"
        assert await reopened.secrets.key("callback_tag_key") == callback_key
    finally:
        await reopened.close()
    with pytest.raises(SecretKeyError):
        await Store.open(fresh_url, keyring=OLD, max_size=2)


async def test_a_secret_the_opener_cannot_open_aborts_the_whole_rotation(fresh_url: str) -> None:
    store = await Store.open(fresh_url, keyring=OLD, max_size=2)
    try:
        first = await store.instances.upsert("pn-a", "biz-x", "EAAG-token-a")
        stranger = await Store.open(fresh_url, keyring=NEW, max_size=1, run_migrations=False)
        try:
            await stranger.instances.upsert("pn-b", "biz-x", "EAAG-token-b")
        finally:
            await stranger.close()
        _, before = await _raw_token_row(store, first.id)
        rotated = OLD.with_primary(generate_key())
        with pytest.raises(SecretKeyError, match="instance-token:pn-b"):
            await reseal_all(store.pool, rotated, rotated)
        _, after = await _raw_token_row(store, first.id)
        assert after == before  # nothing changed
    finally:
        await store.close()
