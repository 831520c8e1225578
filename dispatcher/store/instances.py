"""WhatsApp numbers ("instances"): registration, status, detected limits; tokens kept apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg

from dispatcher.crypto import Keyring
from dispatcher.errors import InstanceLimitError
from dispatcher.meta.tiers import MessagingTier
from dispatcher.store.models import Instance, InstanceStatus
from dispatcher.store.sealing import token_context

# pg_advisory_xact_lock key of registrations under a cap: one at a time counts and inserts.
REGISTER_LOCK = 0x696E7374_616E6365  # "instance"
# Room for this number: it is registered already (an update), or fewer than the cap are.
_ROOM = """
SELECT EXISTS (SELECT 1 FROM whatsapp_instances WHERE phone_number_id = $1)
       OR (SELECT count(*) FROM whatsapp_instances) < $2
"""

# Never the token: it lives sealed in whatsapp_instance_tokens and only instance_token() opens it.
_COLUMNS = (
    "id, phone_number_id, business_id, name, messaging_tier, detected_tier, tier_detected_at, "
    "throughput_mps, status, status_reason, created_at, updated_at, waba_id, display_phone_number, "
    "throughput_source"
)


def _tier(value: str | None) -> MessagingTier | None:
    return None if value is None else MessagingTier(value)


def _instance(row: Mapping[str, Any]) -> Instance:
    return Instance(
        id=row["id"],
        phone_number_id=row["phone_number_id"],
        business_id=row["business_id"],
        name=row["name"],
        messaging_tier=_tier(row["messaging_tier"]),
        detected_tier=_tier(row["detected_tier"]),
        tier_detected_at=row["tier_detected_at"],
        throughput_mps=row["throughput_mps"],
        status=InstanceStatus(row["status"]),
        status_reason=row["status_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        waba_id=row["waba_id"],
        display_phone_number=row["display_phone_number"],
        throughput_source=row["throughput_source"],
    )


class Instances:
    """The numbers the dispatcher sends from; their tokens sealed under ``keyring``."""

    def __init__(self, pool: asyncpg.Pool, keyring: Keyring) -> None:
        self._pool = pool
        self._keyring = keyring

    async def upsert(
        self,
        phone_number_id: str,
        business_id: str,
        access_token: str,
        *,
        name: str = "",
        messaging_tier: MessagingTier | None = None,
        throughput_mps: int | None = None,
        waba_id: str | None = None,
        max_instances: int | None = None,
    ) -> Instance:
        """Register a number, or update it (same ``phone_number_id``), in one transaction.

        Its portfolio row is created when new; the token is stored apart, sealed (it never
        reaches Postgres in plain text), and never returned. A new number is refused
        (:class:`InstanceLimitError`) when ``max_instances`` are registered already;
        registrations take turns on a lock, so none passes the cap.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            if max_instances is not None:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTER_LOCK)
                if not await conn.fetchval(_ROOM, phone_number_id, max_instances):
                    raise InstanceLimitError(phone_number_id, max_instances)
            row = await conn.fetchrow(
                f"""
                WITH portfolio AS (
                    INSERT INTO whatsapp_portfolios (business_id) VALUES ($2)
                    ON CONFLICT (business_id) DO NOTHING
                ), instance AS (
                    INSERT INTO whatsapp_instances
                        (phone_number_id, business_id, name, messaging_tier, throughput_mps,
                         waba_id, throughput_source)
                    VALUES ($1, $2, $3, $4, $5, $7,
                            CASE WHEN $5::integer IS NULL THEN NULL ELSE 'operator' END)
                    ON CONFLICT (phone_number_id) DO UPDATE
                    SET business_id = excluded.business_id,
                        name = excluded.name,
                        messaging_tier = coalesce(excluded.messaging_tier,
                                                  whatsapp_instances.messaging_tier),
                        throughput_mps = coalesce(excluded.throughput_mps,
                                                  whatsapp_instances.throughput_mps),
                        waba_id = coalesce(excluded.waba_id, whatsapp_instances.waba_id),
                        throughput_source = coalesce(excluded.throughput_source,
                                                     whatsapp_instances.throughput_source),
                        updated_at = now()
                    RETURNING {_COLUMNS}
                ), token AS (
                    INSERT INTO whatsapp_instance_tokens (instance_id, sealed_token)
                    SELECT id, $6 FROM instance
                    ON CONFLICT (instance_id) DO UPDATE
                    SET sealed_token = excluded.sealed_token, access_token = NULL
                )
                SELECT {_COLUMNS} FROM instance
                """,
                phone_number_id,
                business_id,
                name,
                None if messaging_tier is None else messaging_tier.value,
                throughput_mps,
                self._keyring.seal(access_token.encode(), token_context(phone_number_id)),
                waba_id,
            )
        return _instance(row)

    async def get(self, instance_id: UUID) -> Instance | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM whatsapp_instances WHERE id = $1", instance_id
        )
        return None if row is None else _instance(row)

    async def get_by_phone_number_id(self, phone_number_id: str) -> Instance | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM whatsapp_instances WHERE phone_number_id = $1",
            phone_number_id,
        )
        return None if row is None else _instance(row)

    async def all(
        self, *, business_id: str | None = None, status: InstanceStatus | None = None
    ) -> list[Instance]:
        """Every instance (optionally of one portfolio, or in one status), oldest first."""
        rows = await self._pool.fetch(
            f"""
            SELECT {_COLUMNS} FROM whatsapp_instances
            WHERE ($1::text IS NULL OR business_id = $1)
              AND ($2::whatsapp_instance_status IS NULL OR status = $2)
            ORDER BY created_at, id
            """,
            business_id,
            None if status is None else status.value,
        )
        return [_instance(row) for row in rows]

    async def by_waba_id(self, waba_id: str) -> list[Instance]:
        """The numbers of one WhatsApp Business Account (webhooks' ``entry[].id``)."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM whatsapp_instances WHERE waba_id = $1 ORDER BY created_at",
            waba_id,
        )
        return [_instance(row) for row in rows]

    async def by_display_phone_number(self, display_phone_number: str) -> list[Instance]:
        """The numbers shown as ``display_phone_number``. Stored and compared as digits: the
        Graph API writes ``+1 555-078-3881`` where webhooks write ``15550783881``."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM whatsapp_instances WHERE display_phone_number = $1 "
            "ORDER BY created_at",
            _digits(display_phone_number),
        )
        return [_instance(row) for row in rows]

    async def instance_token(self, instance_id: UUID) -> str | None:
        """The access token, for the instance actor's Graph API client only: never display it.

        :class:`~dispatcher.crypto.SecretKeyError` when the keyring cannot open it."""
        row = await self._pool.fetchrow(
            "SELECT i.phone_number_id, t.sealed_token, t.access_token"
            " FROM whatsapp_instance_tokens t JOIN whatsapp_instances i ON i.id = t.instance_id"
            " WHERE t.instance_id = $1",
            instance_id,
        )
        if row is None:
            return None
        if row["sealed_token"] is None:  # written before 0011, not sealed yet
            return str(row["access_token"])
        context = token_context(row["phone_number_id"])
        return self._keyring.open(row["sealed_token"], context).decode()

    async def set_status(
        self, instance_id: UUID, status: InstanceStatus, reason: str | None = None
    ) -> bool:
        """Active, paused, or error (with the reason); False when there is no such instance."""
        result = await self._pool.execute(
            "UPDATE whatsapp_instances SET status = $2, status_reason = $3, updated_at = now() "
            "WHERE id = $1",
            instance_id,
            status.value,
            reason,
        )
        return bool(result == "UPDATE 1")

    async def record_detection(
        self,
        instance_id: UUID,
        *,
        tier: MessagingTier | None = None,
        throughput_mps: int | None = None,
        display_phone_number: str | None = None,
    ) -> bool:
        """What the Graph API reported for the number (tier, ``throughput``, display number).

        A value left None is kept as it was. False when there is no such instance.
        """
        result = await self._pool.execute(
            """
            UPDATE whatsapp_instances
            SET detected_tier = coalesce($2, detected_tier),
                tier_detected_at = CASE WHEN $2::text IS NULL THEN tier_detected_at ELSE now() END,
                throughput_mps = CASE WHEN throughput_source = 'operator' THEN throughput_mps
                                      ELSE coalesce($3, throughput_mps) END,
                throughput_source = CASE WHEN throughput_source = 'operator' OR $3 IS NULL
                                         THEN throughput_source ELSE 'graph_api' END,
                display_phone_number = coalesce($4, display_phone_number),
                updated_at = now()
            WHERE id = $1
            """,
            instance_id,
            None if tier is None else tier.value,
            throughput_mps,
            None if display_phone_number is None else _digits(display_phone_number) or None,
        )
        return bool(result == "UPDATE 1")


def _digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())
