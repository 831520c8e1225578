"""The deployment's secrets: one key for every process, the same after a restart."""

from __future__ import annotations

import asyncio
import uuid

from dispatcher.store import Store
from dispatcher.store.secrets import Secrets


async def test_every_process_gets_the_same_key_even_when_racing(store: Store) -> None:
    name = f"test-key-{uuid.uuid4().hex[:8]}"
    # Each on its own connection of the pool, at once, as several processes starting.
    keys = await asyncio.gather(*(Secrets(store.pool, store.keyring).key(name) for _ in range(6)))
    assert len(set(keys)) == 1
    assert len(keys[0]) == 32
    assert await Secrets(store.pool, store.keyring).key(f"{name}-other") != keys[0]


async def test_a_restarted_process_accepts_the_tags_made_before(store: Store) -> None:
    before = await store.secrets.callback_tag()
    after = await Secrets(store.pool, store.keyring).callback_tag()  # a new process: nothing cached
    assert after.recipient_id(before.make(42)) == 42
    assert "key" not in repr(after).replace("key hidden", "")
