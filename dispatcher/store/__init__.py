"""Postgres, the system of record: instances, portfolios, campaigns, recipients, statuses.

``Store.open(url)`` connects a pool, applies the migrations and hands out one repository per
concept; every repository method is one round trip, whatever the number of rows. Secrets
(access tokens, deployment keys) are sealed under the deployment's keyring.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from dispatcher.crypto import Keyring
from dispatcher.store.attempts import Attempts
from dispatcher.store.campaigns import Campaigns
from dispatcher.store.db import create_pool
from dispatcher.store.fencing import CoordinatorLeases, Epochs, InDoubtRows
from dispatcher.store.holds import PortfolioHolds
from dispatcher.store.instances import Instances
from dispatcher.store.migrate import migrate
from dispatcher.store.outcomes import Outcomes
from dispatcher.store.portfolios import Portfolios
from dispatcher.store.recipients import Recipients
from dispatcher.store.recovery import Recovery
from dispatcher.store.sealing import check_keyring, seal_plain_rows
from dispatcher.store.secrets import Secrets
from dispatcher.store.suppressions import Suppressions
from dispatcher.store.variants import Variants
from dispatcher.store.windows import Windows


@dataclass(frozen=True, slots=True)
class Store:
    """The repositories over one pool."""

    pool: asyncpg.Pool
    keyring: Keyring
    instances: Instances
    portfolios: Portfolios
    campaigns: Campaigns
    recipients: Recipients
    outcomes: Outcomes
    suppressions: Suppressions
    epochs: Epochs
    leases: CoordinatorLeases
    in_doubt: InDoubtRows
    secrets: Secrets
    holds: PortfolioHolds
    recovery: Recovery
    windows: Windows
    attempts: Attempts
    variants: Variants

    @classmethod
    def over(cls, pool: asyncpg.Pool, keyring: Keyring) -> Store:
        """Repositories over an existing pool (already migrated)."""
        return cls(
            pool=pool,
            keyring=keyring,
            instances=Instances(pool, keyring),
            portfolios=Portfolios(pool),
            campaigns=Campaigns(pool),
            recipients=Recipients(pool),
            outcomes=Outcomes(pool),
            suppressions=Suppressions(pool),
            epochs=Epochs(pool),
            leases=CoordinatorLeases(pool),
            in_doubt=InDoubtRows(pool),
            secrets=Secrets(pool, keyring),
            holds=PortfolioHolds(pool),
            recovery=Recovery(pool),
            windows=Windows(pool),
            attempts=Attempts(pool),
            variants=Variants(pool),
        )

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        keyring: Keyring | None = None,
        min_size: int = 1,
        max_size: int = 10,
        run_migrations: bool = True,
    ) -> Store:
        """Connect (a one-line ``ServiceError`` when Postgres is unreachable) and migrate.

        ``keyring``: the deployment's (default: the configured one, ``DISPATCHER_SECRET_KEY``
        or the key file). Migrating also seals secrets left in plain text by older versions,
        and checks that the keyring opens the stored ones (a one-line ``SecretKeyError``)."""
        if keyring is None:
            from dispatcher.config import load_settings
            from dispatcher.keyfile import load_keyring

            keyring = load_keyring(load_settings())
        pool = await create_pool(url, min_size=min_size, max_size=max_size)
        if run_migrations:
            try:
                async with pool.acquire() as conn:
                    await migrate(conn)
                    await check_keyring(conn, keyring)
                    await seal_plain_rows(conn, keyring)
            except BaseException:
                await pool.close()
                raise
        return cls.over(pool, keyring)

    async def close(self) -> None:
        await self.pool.close()


__all__ = ["Store"]
