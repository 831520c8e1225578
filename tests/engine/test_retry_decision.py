"""The retry decision (dispatcher/engine/retry.py): properties over every rule of the table."""

from __future__ import annotations

import random
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.engine.first_sends import FirstSendsConfig, FirstSendsWatch
from dispatcher.engine.retry import Action, RetryPolicy, RetryState, decide
from dispatcher.meta.error_codes import (
    ERROR_CODES,
    NETWORK_ERROR,
    UNKNOWN_MAX_ATTEMPTS,
    ErrorClass,
    ErrorTable,
    Throttle,
)
from dispatcher.policies.backoff import Backoff

RULES = [*ERROR_CODES.values(), NETWORK_ERROR, ErrorTable().classify(999_999_1, 400)]

rules = st.sampled_from(RULES)
states = st.builds(
    RetryState,
    attempts=st.integers(0, 20),
    throttled=st.integers(0, 60),
    previous_delay_s=st.none() | st.floats(0.1, 60),
)
policies = st.builds(
    RetryPolicy,
    backoff=st.builds(
        Backoff,
        base_s=st.just(0.2),
        cap_s=st.floats(0.2, 30),
        max_attempts=st.integers(1, 10),
        rng=st.integers(0, 2**32).map(random.Random),
    ),
    max_throttle_retries=st.integers(1, 60),
    maintenance_pause_s=st.floats(1, 120),
)


@given(rules, states, policies, st.floats(0, 300))
def test_each_class_has_its_action(rule, state, policy, pair_wait):
    decision = decide(rule, state, policy, pair_wait_s=pair_wait)
    expected = {
        ErrorClass.THROTTLE: {Action.RETRY_NOW, Action.RETRY_AFTER, Action.DEAD_LETTER},
        ErrorClass.TRANSIENT: {Action.RETRY_AFTER, Action.DEAD_LETTER},
        ErrorClass.MAINTENANCE: {Action.PAUSE_NUMBER},
        ErrorClass.PERMANENT_MESSAGE: {Action.FAIL},
        ErrorClass.PERMANENT_TEMPLATE: {Action.HOLD_CAMPAIGN},
        ErrorClass.PERMANENT_INSTANCE: {Action.HALT_INSTANCE},
        ErrorClass.PORTFOLIO_HOLD: {Action.HALT_INSTANCE},
    }[rule.error_class]
    assert decision.action in expected


@given(rules, states, policies)
def test_only_sends_meta_judged_use_an_attempt(rule, state, policy):
    """Throttles, maintenance, holds and instance stops use no attempt; the rest use one."""
    decision = decide(rule, state, policy)
    uses = rule.error_class in (ErrorClass.TRANSIENT, ErrorClass.PERMANENT_MESSAGE)
    assert decision.attempts == state.attempts + (1 if uses else 0)
    assert decision.throttled == state.throttled + (rule.error_class is ErrorClass.THROTTLE)


@given(rules, states, policies)
def test_retries_are_bounded(rule, state, policy):
    decision = decide(rule, state, policy)
    if decision.action is Action.RETRY_AFTER and rule.error_class is ErrorClass.TRANSIENT:
        cap = min(rule.max_attempts or policy.backoff.max_attempts, policy.backoff.max_attempts)
        assert decision.attempts < cap
        assert decision.delay_s is not None
        assert policy.backoff.base_s <= decision.delay_s <= policy.backoff.cap_s
    if rule.error_class is ErrorClass.THROTTLE and decision.action is not Action.DEAD_LETTER:
        assert decision.throttled <= policy.max_throttle_retries


@given(st.integers(0, 20), policies)
def test_unknown_codes_get_few_attempts(attempts, policy):
    rule = ErrorTable().classify(424242, 400)
    decision = decide(rule, RetryState(attempts, 0), policy)
    if attempts + 1 >= UNKNOWN_MAX_ATTEMPTS:
        assert decision.action is Action.DEAD_LETTER


@given(states, policies, st.floats(0, 300))
def test_pair_throttle_waits_the_pair_and_throughput_retries_at_once(state, policy, wait):
    pair = decide(ERROR_CODES[131056], state, policy, pair_wait_s=wait)
    rate = decide(ERROR_CODES[130429], state, policy, pair_wait_s=wait)
    if state.throttled + 1 <= policy.max_throttle_retries:
        assert pair.action is Action.RETRY_AFTER
        assert pair.delay_s == wait
        assert rate.action is Action.RETRY_NOW
    assert ERROR_CODES[131056].throttle is Throttle.PAIR


@given(states, policies)
def test_maintenance_pauses_the_number_for_the_configured_time(state, policy):
    decision = decide(ERROR_CODES[131057], state, policy)
    assert decision.action is Action.PAUSE_NUMBER
    assert decision.delay_s == policy.maintenance_pause_s


@given(st.lists(st.booleans(), max_size=60))
def test_first_sends_hold_exactly_when_most_of_the_first_window_are_bad(results):
    config = FirstSendsConfig(window=20, bad_ratio=0.8)
    watch = FirstSendsWatch(config)
    campaign = uuid4()
    holds = [i for i, bad in enumerate(results) if watch.record(campaign, bad)]
    first = results[: config.window]
    assert len(holds) <= 1
    if sum(first) >= 16:
        assert holds
        assert sum(results[: holds[0] + 1]) == 16
    else:
        assert not holds
