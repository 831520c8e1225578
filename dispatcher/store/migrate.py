"""Schema migrations: numbered ``.sql`` files applied in order, each once, under a lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# pg_advisory_lock key: concurrent starters queue behind one another instead of racing.
LOCK_KEY = 0x64697370_61746368  # "dispatch"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS dispatcher_migrations (
    version     text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    """The file name without ``.sql``, e.g. ``0001_schema``; files sort by it."""
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    folder = resources.files("dispatcher.store") / "migrations"
    found = [
        Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found, key=lambda m: m.version)


async def migrate(conn: asyncpg.Connection, available: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction; returns their versions.

    Idempotent (a second call applies nothing) and safe to call from many starters at once:
    they serialise on an advisory lock held for the whole run.
    """
    pending_all = migrations() if available is None else available
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        done = {
            row["version"] for row in await conn.fetch("SELECT version FROM dispatcher_migrations")
        }
        applied: list[str] = []
        for migration in pending_all:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO dispatcher_migrations (version) VALUES ($1)", migration.version
                )
            log.info("migration %s applied", migration.version)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
