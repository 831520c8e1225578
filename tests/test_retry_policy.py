"""A campaign's retry policy (dispatcher/retry_policy.py): the default, validation, decide()."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dispatcher.engine.retry import Action, RetryState
from dispatcher.engine.retry import RetryPolicy as InSendPolicy
from dispatcher.engine.retry import decide as decide_in_send
from dispatcher.meta.error_codes import ERROR_CODES, SERVER_ERROR, ErrorClass
from dispatcher.meta.messages import MetaError
from dispatcher.policies.backoff import Backoff
from dispatcher.retry_policy import (
    DAY_S,
    DEFAULT_POLICY,
    RETRY_LATER_CODES,
    Failure,
    RetryPolicy,
    decide,
)
from dispatcher.store.models import IN_DOUBT_FAILURE

ENGAGEMENT = Failure(131049, exhausted=False)
UNDELIVERABLE = Failure(131026, exhausted=False)
EXHAUSTED = Failure(131000, exhausted=True)


def test_the_default_retries_131049_once_after_24_hours() -> None:
    assert DAY_S == 24 * 3600
    assert decide(DEFAULT_POLICY, ENGAGEMENT, 0) == 24 * 3600
    assert decide(DEFAULT_POLICY, ENGAGEMENT, 1) is None


def test_the_default_retries_transient_exhaustion_after_minutes_twice() -> None:
    assert decide(DEFAULT_POLICY, EXHAUSTED, 0) == 300
    assert decide(DEFAULT_POLICY, EXHAUSTED, 1) == 300
    assert decide(DEFAULT_POLICY, EXHAUSTED, 2) is None


@pytest.mark.parametrize(
    "code",
    sorted(
        code
        for code, rule in ERROR_CODES.items()
        if rule.error_class is ErrorClass.PERMANENT_MESSAGE and code not in RETRY_LATER_CODES
    ),
)
def test_the_default_never_retries_a_permanent_code(code: int) -> None:
    assert decide(DEFAULT_POLICY, Failure(code, exhausted=False), 0) is None


def test_failures_the_dispatcher_decided_itself_are_never_retried() -> None:
    in_doubt = Failure.of(None, "in doubt: the send's outcome is unknown and no webhook came")
    unsendable = Failure.of(None, "not sent: the message breaks a limit (see error_details)")
    assert not in_doubt.exhausted
    assert not unsendable.exhausted
    assert decide(DEFAULT_POLICY, in_doubt, 0) is None
    assert decide(DEFAULT_POLICY, unsendable, 0) is None


@pytest.mark.parametrize("code", [None, 130429, 131049, 131000])
def test_a_failure_in_doubt_is_final_whatever_code_it_kept_and_the_policy_names(
    code: int | None,
) -> None:
    """The in-doubt policy failed it: Meta may have taken the message, a resend may be a
    second one (README: in-doubt failures are never retried)."""
    policy = RetryPolicy.model_validate(
        {
            "rules": [
                {"codes": [130429, 131049, 131000], "after_s": 60},
                {"on": "transient_exhausted", "after_s": 60},
            ]
        }
    )
    failure = Failure.of(code, IN_DOUBT_FAILURE)
    assert failure.in_doubt
    assert decide(policy, failure, 0) is None
    assert decide(policy, Failure.of(code, "throttled"), 0) == (None if code is None else 60)


@given(attempts=st.integers(0, 10), seed=st.integers(0, 2**32))
def test_a_dead_letter_of_the_in_send_decision_reads_as_exhausted(attempts: int, seed: int) -> None:
    """The in-send decision's dead letters are what ``transient_exhausted`` retries."""
    policy = InSendPolicy(Backoff(0.2, 1.0, max_attempts=3, rng=random.Random(seed)))
    decision = decide_in_send(SERVER_ERROR, RetryState(attempts, 0), policy)
    if decision.action is Action.DEAD_LETTER:
        stored = f"{decision.why}: {MetaError(SERVER_ERROR, code=None, message='HTTP 503')}"
        assert Failure.of(None, stored).exhausted


def test_a_policy_sets_its_own_delay_and_rounds() -> None:
    policy = RetryPolicy.model_validate(
        {"rules": [{"codes": [131049], "after_s": 3, "max_rounds": 3}]}
    )
    assert [decide(policy, ENGAGEMENT, n) for n in range(4)] == [3, 3, 3, None]
    assert decide(policy, EXHAUSTED, 0) is None  # no rule for it
    assert decide(RetryPolicy(rules=[]), ENGAGEMENT, 0) is None


def test_the_first_matching_rule_decides() -> None:
    policy = RetryPolicy.model_validate(
        {
            "rules": [
                {"codes": [131000], "after_s": 10, "max_rounds": 1},
                {"on": "transient_exhausted", "after_s": 60, "max_rounds": 2},
            ]
        }
    )
    assert decide(policy, EXHAUSTED, 0) == 10
    assert decide(policy, EXHAUSTED, 1) is None
    assert decide(policy, Failure(None, exhausted=True), 1) == 60


@pytest.mark.parametrize(
    ("policy", "where", "says"),
    [
        ({"rules": [{"codes": [131026], "after_s": 60}]}, ("rules", 0, "codes"), "permanent"),
        ({"rules": [{"codes": [131050], "after_s": 60}]}, ("rules", 0, "codes"), "never"),
        ({"rules": [{"codes": [132001], "after_s": 60}]}, ("rules", 0, "codes"), "permanent"),
        ({"rules": [{"codes": [190], "after_s": 60}]}, ("rules", 0, "codes"), "permanent"),
        ({"rules": [{"codes": [131049], "after_s": 0}]}, ("rules", 0, "after_s"), "greater"),
        ({"rules": [{"codes": [131049], "after_s": 1e9}]}, ("rules", 0, "after_s"), "less"),
        (
            {"rules": [{"codes": [131049], "after_s": 9, "max_rounds": 0}]},
            ("rules", 0, "max_rounds"),
            "greater",
        ),
        ({"rules": [{"after_s": 9}]}, ("rules", 0), "exactly one"),
        (
            {"rules": [{"codes": [131049], "on": "transient_exhausted", "after_s": 9}]},
            (
                "rules",
                0,
            ),
            "exactly one",
        ),
        ({"rules": [{"on": "whatever", "after_s": 9}]}, ("rules", 0, "on"), "transient"),
        (
            {"rules": [{"codes": [131049], "after_s": 9}, {"codes": [131049], "after_s": 5}]},
            ("rules",),
            "repeats",
        ),
        ({"rules": [{"codes": [131049], "after_s": 9, "typo": 1}]}, ("rules", 0, "typo"), ""),
    ],
)
def test_invalid_settings_name_the_field(policy: dict, where: tuple, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RetryPolicy.model_validate(policy)
    error = raised.value.errors()[0]
    assert error["loc"] == where
    assert says in error["msg"]


@given(
    code=st.sampled_from(sorted(ERROR_CODES)),
    exhausted=st.booleans(),
    retries=st.integers(0, 20),
)
def test_the_default_retries_only_what_it_names_and_never_past_its_rounds(
    code: int, exhausted: bool, retries: int
) -> None:
    delay = decide(DEFAULT_POLICY, Failure(code, exhausted), retries)
    if delay is None:
        return
    assert code in RETRY_LATER_CODES or exhausted
    assert retries < 2
    assert delay in (300, DAY_S)
