"""Our tag in biz_opaque_callback_data: ours parse, nothing else does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.meta.callback_tag import CallbackTag, Tagged

KEY = b"k" * 32
TAG = CallbackTag(KEY)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.integers(0, 2**31 - 1))
def test_every_id_and_attempt_round_trip(recipient_id, attempt):
    assert TAG.parse(TAG.make(recipient_id, attempt)) == Tagged(recipient_id, attempt)
    assert TAG.recipient_id(TAG.make(recipient_id, attempt)) == recipient_id


def test_each_attempt_has_its_own_tag():
    assert TAG.make(7, 0) != TAG.make(7, 1)
    assert TAG.make(7) == TAG.make(7, 0)


def test_a_first_format_tag_still_parses_without_an_attempt():
    """Messages sent before the attempt was added may be in flight for days: their statuses
    are still ours (the format as it was: wcd1.{id}.{mac})."""
    import hashlib
    import hmac

    mac = hmac.new(KEY, b"wcd1.1744434060", hashlib.sha256).hexdigest()[:16]
    assert TAG.parse(f"wcd1.1744434060.{mac}") == Tagged(1744434060, None)
    assert TAG.make(1744434060, None) == f"wcd1.1744434060.{mac}"


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_bare_number_or_another_deployments_tag_is_not_ours(recipient_id):
    assert TAG.recipient_id(str(recipient_id)) is None
    assert TAG.recipient_id(CallbackTag(b"x" * 32).make(recipient_id)) is None


def test_forged_and_odd_values_are_refused():
    good = TAG.make(1744434060, 2)
    prefix, number, attempt, mac = good.split(".")
    forged = [
        f"{prefix}.1744434061.{attempt}.{mac}",  # the MAC of another id
        f"{prefix}.{number}.1.{mac}",  # of another attempt: an old status passing as new
        f"{prefix}.{number}.{attempt}.{'0' * len(mac)}",
        f"{prefix}.0{number}.{attempt}.{mac}",  # another spelling of the same id
        f"{prefix}.{number}.02.{mac}",
        f"{prefix}.{number}.{attempt}.{mac.upper()}",
        f"wcd1.{number}.{mac}",  # the attempt dropped
        f"x{good}",
        good + ".1",
        f"{prefix}.{2**63}.{attempt}.{mac}",
        f"{prefix}.{number}.{2**31}.{mac}",
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
