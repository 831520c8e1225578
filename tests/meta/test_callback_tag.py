"""Our tag in biz_opaque_callback_data: ours parse, nothing else does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.meta.callback_tag import CallbackTag

KEY = b"k" * 32
TAG = CallbackTag(KEY)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_every_id_round_trips(recipient_id):
    assert TAG.recipient_id(TAG.make(recipient_id)) == recipient_id


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_bare_number_or_another_deployments_tag_is_not_ours(recipient_id):
    assert TAG.recipient_id(str(recipient_id)) is None
    assert TAG.recipient_id(CallbackTag(b"x" * 32).make(recipient_id)) is None


def test_forged_and_odd_values_are_refused():
    good = TAG.make(1744434060)
    prefix, number, mac = good.split(".")
    forged = [
        f"{prefix}.1744434061.{mac}",  # the MAC of another id
        f"{prefix}.{number}.{'0' * len(mac)}",
        f"{prefix}.0{number}.{mac}",  # another spelling of the same id
        f"{prefix}.{number}.{mac.upper()}",
        f"x{good}",
        good + ".1",
        f"{prefix}.{2**63}.{mac}",
        "1744434060",
        "not-ours:campaign-42",
        "",
        None,
        1744434060,
        {"id": 1},
    ]
    assert all(TAG.recipient_id(value) is None for value in forged)


def test_the_key_is_never_shown():
    assert "k" * 16 not in repr(TAG)
