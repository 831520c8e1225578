"""A campaign's rate cap on a fake clock: the bound the README states, failover included."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.engine.rate_cap import CampaignRateCaps
from tests.clock import FakeClock

CAMPAIGN = uuid.uuid4()


def route(caps: CampaignRateCaps, per_minute: int, want: int) -> int:
    """What a routing round takes: up to its allowance, paid for."""
    allowance = caps.allowance(CAMPAIGN, per_minute)
    assert allowance is not None
    routed = min(want, allowance)
    caps.take(CAMPAIGN, routed)
    return routed


def test_uncapped_campaigns_have_no_allowance() -> None:
    assert CampaignRateCaps(2.0, FakeClock()).allowance(CAMPAIGN, None) is None


def test_a_new_cap_starts_empty_and_earns_its_rate() -> None:
    clock = FakeClock()
    caps = CampaignRateCaps(2.0, clock)
    assert caps.allowance(CAMPAIGN, 600) == 0  # 10/s, nothing at once
    assert caps.wait_s(CAMPAIGN) == 0.1
    clock.advance(1.0)
    assert route(caps, 600, 1_000) == 10
    assert caps.allowance(CAMPAIGN, 600) == 0


def test_tokens_held_are_at_most_batch_seconds_of_the_cap() -> None:
    clock = FakeClock()
    caps = CampaignRateCaps(2.0, clock)
    caps.allowance(CAMPAIGN, 600)
    clock.advance(3_600)
    assert caps.allowance(CAMPAIGN, 600) == 20


def test_a_slow_cap_still_routes_one_at_a_time() -> None:
    clock = FakeClock()
    caps = CampaignRateCaps(2.0, clock)
    caps.allowance(CAMPAIGN, 1)  # one a minute
    clock.advance(59.0)
    assert caps.allowance(CAMPAIGN, 1) == 0
    clock.advance(1.0)
    assert route(caps, 1, 5) == 1


def test_a_changed_cap_starts_a_new_bucket_and_forgotten_campaigns_go() -> None:
    clock = FakeClock()
    caps = CampaignRateCaps(2.0, clock)
    caps.allowance(CAMPAIGN, 600)
    clock.advance(2.0)
    assert caps.allowance(CAMPAIGN, 60) == 0  # new cap: empty again
    caps.keep([])
    assert caps.wait_s(CAMPAIGN) == 0.0


rounds = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=3.0), st.integers(0, 500)),
    min_size=1,
    max_size=200,
)


@given(per_minute=st.integers(1, 100_000), plan=rounds, failover_at=st.integers(0, 200))
def test_any_minute_routes_at_most_the_cap_plus_one_burst_even_across_a_failover(
    per_minute: int, plan: list[tuple[float, int]], failover_at: int
) -> None:
    """At round ``failover_at`` a new coordinator takes over with its own (empty) buckets."""
    clock = FakeClock()
    caps = CampaignRateCaps(2.0, clock)
    routed: list[tuple[float, int]] = []
    for i, (gap, want) in enumerate(plan):
        clock.advance(gap)
        if i == failover_at:
            caps = CampaignRateCaps(2.0, clock)
        routed.append((clock.now, route(caps, per_minute, want)))
    burst = max(1.0, per_minute / 60 * 2.0)
    for i, (start, _) in enumerate(routed):
        in_minute = sum(n for t, n in routed[i:] if t - start < 60.0)
        assert in_minute <= per_minute + burst + 1e-6
