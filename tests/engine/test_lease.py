"""The coordinator's lease on its own clock: a round that outlives it stops writing."""

from __future__ import annotations

from dispatcher.engine.lease import LeaseKeeper
from dispatcher.store import Store
from tests.clock import FakeClock


async def test_a_holder_stops_acting_once_its_last_renewal_is_older_than_the_lease(
    store: Store,
) -> None:
    await store.pool.execute("DELETE FROM whatsapp_coordinator_lease")
    clock = FakeClock()
    keeper = LeaseKeeper(store.leases, "lease-test", ttl_s=10.0, renew_s=2.0, clock=clock)
    assert await keeper.keep()
    clock.advance(9.0)
    assert keeper.valid()  # mid-round: still within the bound, no round trip needed
    clock.advance(1.5)
    # The round outlived the lease (a slow phase, a pause): a standby may hold it now.
    assert not keeper.valid()
    assert not keeper.active
    # The next round renews (nobody else took it) and acts again.
    assert await keeper.keep()
    assert keeper.valid()
    await keeper.release()


async def test_a_lease_lost_to_an_outage_is_not_a_lease_taken_by_another(store: Store) -> None:
    await store.pool.execute("DELETE FROM whatsapp_coordinator_lease")
    clock = FakeClock()
    keeper = LeaseKeeper(store.leases, "lease-a", ttl_s=10.0, renew_s=2.0, clock=clock)
    assert await keeper.keep()
    # Postgres away: renewals fail, the local bound runs out; nobody else could take it.
    await store.pool.execute(
        "UPDATE whatsapp_coordinator_lease SET expires_at = now() - interval '1 second'"
    )
    keeper._leases = _Unreachable()  # type: ignore[assignment]
    clock.advance(11.0)
    assert not await keeper.keep()
    assert not keeper.taken_by_other
    # Another coordinator took the expired lease: now it is taken.
    other = LeaseKeeper(store.leases, "lease-b", ttl_s=10.0, renew_s=2.0, clock=clock)
    assert await other.keep()
    keeper._leases = store.leases
    clock.advance(2.0)
    assert not await keeper.keep()
    assert keeper.taken_by_other
    await other.release()


class _Unreachable:
    async def acquire(self, holder: str, ttl_s: float) -> int | None:
        raise ConnectionRefusedError(111, "Connect call failed")
