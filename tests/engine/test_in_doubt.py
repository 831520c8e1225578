"""The bound after which an in-doubt send stops waiting for its webhook (engine/in_doubt.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.engine.in_doubt import InDoubtBound

BOUND = InDoubtBound(min_wait_s=60.0, webhook_margin_s=30.0, max_wait_s=900.0)
NOW = 1_800_000_000.0


def test_without_webhook_progress_only_the_maximum_ends_the_wait() -> None:
    assert BOUND.due_before(NOW, None) == NOW - 900.0
    # Webhooks stuck far behind: same.
    assert BOUND.due_before(NOW, NOW - 5000.0) == NOW - 900.0


def test_webhooks_past_the_send_plus_margin_end_it_after_the_minimum() -> None:
    sent_at = NOW - 100.0
    # Statuses applied up to 20 s after the send: not enough (margin 30 s).
    assert not sent_at < BOUND.due_before(NOW, sent_at + 20.0)
    # Up to 40 s after it: due.
    assert sent_at < BOUND.due_before(NOW, sent_at + 40.0)
    # A very recent send waits at least min_wait_s even if webhooks are far ahead.
    recent = NOW - 10.0
    assert not recent < BOUND.due_before(NOW, NOW + 3600.0)


@given(
    now=st.floats(1e9, 3e9),
    watermark=st.one_of(st.none(), st.floats(0, 4e9)),
)
def test_never_before_the_minimum_never_after_the_maximum(
    now: float, watermark: float | None
) -> None:
    due = BOUND.due_before(now, watermark)
    assert due <= now - BOUND.min_wait_s
    assert due >= now - BOUND.max_wait_s
