"""Every sealed secret of the store at once: sealing old plain rows, checking a keyring
against the database, and re-sealing everything under another keyring (key rotation).

The secrets are the instances' access tokens (``whatsapp_instance_tokens``) and the
deployment's keys (``dispatcher_secrets``). Each is sealed with its own context, so a box
opens only in the row it was made for.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import asyncpg

from dispatcher.crypto import Keyring, SecretKeyError, box_key_ids

log = logging.getLogger(__name__)


def token_context(phone_number_id: str) -> str:
    return f"instance-token:{phone_number_id}"


def secret_context(name: str) -> str:
    return f"secret:{name}"


def _select(token_filter: str, secret_filter: str) -> str:
    """Every secret as (kind, row key, what its context names, sealed, plain): both tables.
    Called with this module's own constant filters only."""
    return f"""
    SELECT 'token' AS kind, t.instance_id::text AS key, i.phone_number_id AS context_key,
           t.sealed_token AS sealed, convert_to(t.access_token, 'UTF8') AS plain
    FROM whatsapp_instance_tokens t JOIN whatsapp_instances i ON i.id = t.instance_id
    {token_filter}
    UNION ALL
    SELECT 'secret', name, name, sealed, value FROM dispatcher_secrets
    {secret_filter}
    """  # noqa: S608


_ALL = _select("", "")
_PLAIN = _select("WHERE t.access_token IS NOT NULL", "WHERE value IS NOT NULL")
_SEALED = _select("WHERE t.sealed_token IS NOT NULL", "WHERE sealed IS NOT NULL")
_UPDATE = {
    "token": "UPDATE whatsapp_instance_tokens SET sealed_token = $2, access_token = NULL "
    "WHERE instance_id = $1::uuid",
    "secret": "UPDATE dispatcher_secrets SET sealed = $2, value = NULL WHERE name = $1",
}
# No writer may add or change a secret while they are re-sealed (readers go on).
_LOCK = "LOCK TABLE whatsapp_instance_tokens, dispatcher_secrets IN SHARE ROW EXCLUSIVE MODE"

_ANY_PLAIN = (
    "SELECT EXISTS (SELECT 1 FROM whatsapp_instance_tokens WHERE access_token IS NOT NULL)"
    " OR EXISTS (SELECT 1 FROM dispatcher_secrets WHERE value IS NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class _Row:
    kind: str
    key: str
    context: str
    sealed: bytes | None
    plain: bytes | None


def _rows(records: list[asyncpg.Record]) -> list[_Row]:
    return [
        _Row(
            kind=r["kind"],
            key=r["key"],
            context=(token_context if r["kind"] == "token" else secret_context)(r["context_key"]),
            sealed=None if r["sealed"] is None else bytes(r["sealed"]),
            plain=None if r["plain"] is None else bytes(r["plain"]),
        )
        for r in records
    ]


async def _reseal(
    conn: asyncpg.Connection, rows: list[_Row], opener: Keyring, sealer: Keyring
) -> None:
    updates: dict[str, list[tuple[str, bytes]]] = {"token": [], "secret": []}
    for row in rows:
        plain = row.plain if row.sealed is None else opener.open(row.sealed, row.context)
        if plain is None:  # excluded by the CHECK constraints of 0011: one form per row
            raise SecretKeyError(f"{row.context} is neither sealed nor plain")
        updates[row.kind].append((row.key, sealer.seal(plain, row.context)))
    for kind, args in updates.items():
        if args:
            await conn.executemany(_UPDATE[kind], args)


async def seal_plain_rows(conn: asyncpg.Connection, keyring: Keyring) -> int:
    """Seal the secrets still stored in plain text (written before 0011); how many.

    Then rewrite both tables, so the plain values leave their files; the write-ahead log
    keeps them until its segments are recycled (see the README)."""
    if not await conn.fetchval(_ANY_PLAIN):
        return 0  # every start asks; only an upgrade takes the lock
    async with conn.transaction():
        await conn.execute(_LOCK)
        records = await conn.fetch(_PLAIN)
        rows = _rows(records)
        await _reseal(conn, rows, keyring, keyring)
    if rows:
        await conn.execute("VACUUM FULL whatsapp_instance_tokens, dispatcher_secrets")
        log.info("sealed %d secrets stored in plain text under key %s", len(rows), keyring.ids[0])
    return len(rows)


async def check_keyring(conn: asyncpg.Connection, keyring: Keyring) -> None:
    """A one-line :class:`SecretKeyError` when the store holds secrets sealed under keys
    this keyring lacks: a process started with the wrong key fails at start, not later."""
    records = await conn.fetch(_SEALED)
    for row in _rows(records):
        if row.sealed is not None and not keyring.can_open(row.sealed, row.context):
            found = ", ".join(box_key_ids(row.sealed, row.context))
            raise SecretKeyError(
                f"the database's secrets are sealed under key(s) {found}; this keyring has "
                f"{', '.join(keyring.ids)}: set the deployment's key"
            )


async def reseal_all(pool: asyncpg.Pool, opener: Keyring, sealer: Keyring) -> int:
    """Open every secret with ``opener`` and seal it again under ``sealer``, in one
    transaction: all or nothing. Returns how many; a secret ``opener`` cannot open aborts
    it with :class:`SecretKeyError`, nothing changed."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK)
        rows = _rows(await conn.fetch(_ALL))
        await _reseal(conn, rows, opener, sealer)
    log.info("re-sealed %d secrets under key(s) %s", len(rows), ", ".join(sealer.ids))
    return len(rows)


async def key_use(pool: asyncpg.Pool) -> dict[str, int]:
    """How many secrets each key id can open (``plain`` for unsealed ones)."""
    counts: Counter[str] = Counter()
    for row in _rows(await pool.fetch(_ALL)):
        if row.sealed is None:
            counts["plain"] += 1
        else:
            counts.update(box_key_ids(row.sealed, row.context))
    return dict(counts)
