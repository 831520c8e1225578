"""Deployment secrets kept in Postgres: made once at first use, shared by every process.

Stored sealed under the deployment's keyring (:mod:`dispatcher.crypto`), never in plain text.
"""

from __future__ import annotations

import secrets

import asyncpg

from dispatcher.crypto import Keyring
from dispatcher.meta.callback_tag import KEY_BYTES, CallbackTag
from dispatcher.store.sealing import secret_context

CALLBACK_KEY = "callback_tag_key"


class Secrets:
    """Named random keys; the first process to ask creates one, every later one reads it."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring) -> None:
        self._pool = pool
        self._keyring = keyring

    async def key(self, name: str, size: int = KEY_BYTES) -> bytes:
        # Insert-if-absent, then read: two processes racing both end with the winner's key.
        context = secret_context(name)
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO dispatcher_secrets (name, sealed) VALUES ($1, $2)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                self._keyring.seal(secrets.token_bytes(size), context),
            )
            row = await conn.fetchrow(
                "SELECT sealed, value FROM dispatcher_secrets WHERE name = $1", name
            )
        if row["sealed"] is None:  # written before 0011, not sealed yet
            return bytes(row["value"])
        return self._keyring.open(row["sealed"], context)

    async def callback_tag(self) -> CallbackTag:
        """The deployment's tag for ``biz_opaque_callback_data``."""
        return CallbackTag(await self.key(CALLBACK_KEY))
