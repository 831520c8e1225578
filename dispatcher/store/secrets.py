"""Deployment secrets kept in Postgres: made once at first use, shared by every process."""

from __future__ import annotations

import secrets

import asyncpg

from dispatcher.meta.callback_tag import KEY_BYTES, CallbackTag

CALLBACK_KEY = "callback_tag_key"


class Secrets:
    """Named random keys; the first process to ask creates one, every later one reads it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def key(self, name: str, size: int = KEY_BYTES) -> bytes:
        # Insert-if-absent, then read: two processes racing both end with the winner's key.
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO dispatcher_secrets (name, value) VALUES ($1, $2)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                secrets.token_bytes(size),
            )
            value = await conn.fetchval(
                "SELECT value FROM dispatcher_secrets WHERE name = $1", name
            )
        return bytes(value)

    async def callback_tag(self) -> CallbackTag:
        """The deployment's tag for ``biz_opaque_callback_data``."""
        return CallbackTag(await self.key(CALLBACK_KEY))
