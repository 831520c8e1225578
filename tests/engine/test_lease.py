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
