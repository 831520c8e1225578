"""The operations shared by the API and the SDK that need no services."""

from __future__ import annotations

import math

from dispatcher.operations import Action, allowed_from, queue_stats_view
from dispatcher.store.models import CampaignStatus as S


def test_lifecycle_actions() -> None:
    assert allowed_from(Action.SEND) == {S.DRAFT, S.SCHEDULED}
    assert allowed_from(Action.PAUSE) == {S.RUNNING, S.SCHEDULED}
    assert allowed_from(Action.RESUME) == {S.PAUSED, S.HELD}
    assert allowed_from(Action.CANCEL) == {S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED, S.HELD}


def test_stats_view_is_json_safe_and_keyed_by_instance() -> None:
    raw = {
        "queues": {"campaigns": {"pending": 1, "processing": 0, "dlq": 0, "instances": {}}},
        "instances": {"rate": math.inf, "errors_by_code": {130429: 2}},
        "portfolios": {"biz": {"daily_limit": None}},
        "routed_batches": 3,
    }
    view = queue_stats_view(raw, "abc")
    assert view["instances"] == {"abc": {"rate": None, "errors_by_code": {"130429": 2}}}
    assert view["webhooks"] == {"pending": 0, "processing": 0, "dlq": 0, "instances": {}}
    assert view["routing"]["routed_batches"] == 3
    assert queue_stats_view({"instances": {}}, "abc")["instances"] == {}
