from __future__ import annotations

import logging

import pytest

from dispatcher.meta.error_codes import (
    ERROR_CODES,
    UNKNOWN_MAX_ATTEMPTS,
    ErrorClass,
    ErrorTable,
    Throttle,
)
from dispatcher.meta.messages import parse_error
from dispatcher.meta.tiers import MessagingTier

BAD_PARAMETER = [100, 131008, 131009, 132000, 132005, 132008, 132012]

# DESIGN.md, "Meta's limits" (from Meta's Error codes page and pywa's errors.py).
DESIGN = {
    ErrorClass.THROTTLE: [130429, 131056, 80007, 4, 131048],
    ErrorClass.TRANSIENT: [1, 2, 131000, 131016, 133004],
    ErrorClass.MAINTENANCE: [131057],
    ErrorClass.PERMANENT_MESSAGE: [
        131026,
        131047,
        131049,
        131051,
        131052,
        131053,
        131030,
        130472,
        130497,
        131062,
        130403,
        131021,
        131050,
        *BAD_PARAMETER,
    ],
    ErrorClass.PERMANENT_TEMPLATE: [132001, 132007, 132015, 132016, 131063],
    ErrorClass.PERMANENT_INSTANCE: [
        190,
        0,
        3,
        10,
        *range(200, 300),
        33,
        131031,
        368,
        133010,
        131005,
        131037,
        131042,
        131045,
    ],
    ErrorClass.PORTFOLIO_HOLD: [131064],
}


@pytest.mark.parametrize(
    ("code", "expected"),
    [(code, cls) for cls, codes in DESIGN.items() for code in codes],
)
def test_every_documented_code_has_its_class(code, expected):
    assert ErrorTable().classify(code).error_class is expected


def test_the_table_holds_exactly_the_documented_codes():
    assert set(ERROR_CODES) == {code for codes in DESIGN.values() for code in codes}


def test_100_with_subcode_33_stops_the_number_other_subcodes_do_not():
    table = ErrorTable()
    assert table.classify(100, 400, subcode=33).error_class is ErrorClass.PERMANENT_INSTANCE
    assert table.classify(100, 400).error_class is ErrorClass.PERMANENT_MESSAGE
    assert table.classify(100, 400, subcode=2494010).error_class is ErrorClass.PERMANENT_MESSAGE
    assert table.classify(131026, 400, subcode=33).error_class is ErrorClass.PERMANENT_MESSAGE


def test_a_parsed_error_body_is_classified_with_its_subcode():
    body = {"error": {"code": 100, "error_subcode": 33, "message": "Object does not exist"}}
    assert parse_error(400, body, ErrorTable()).error_class is ErrorClass.PERMANENT_INSTANCE


def test_bad_parameter_and_suppression_flags():
    assert {c for c, r in ERROR_CODES.items() if r.bad_parameter} == set(BAD_PARAMETER)
    assert {c for c, r in ERROR_CODES.items() if r.suppress} == {131050}


def test_unknown_codes_are_logged_with_meta_message_and_details(caplog):
    table = ErrorTable()
    with caplog.at_level(logging.WARNING, logger="dispatcher.meta.error_codes"):
        table.classify(555001, 400, message="Something new", details="what Meta said")
    assert "what Meta said" in caplog.text
    assert "Something new" in caplog.text


def test_throttles_say_which_limit():
    table = ErrorTable()
    assert table.classify(130429).throttle is Throttle.THROUGHPUT
    assert table.classify(131056).throttle is Throttle.PAIR
    assert table.classify(80007).throttle is Throttle.API_CALLS
    assert table.classify(131048).throttle is Throttle.SPAM
    assert all(
        (rule.throttle is None) == (rule.error_class is not ErrorClass.THROTTLE)
        for rule in ERROR_CODES.values()
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, ErrorClass.TRANSIENT),
        (503, ErrorClass.TRANSIENT),
        (429, ErrorClass.THROTTLE),
        (401, ErrorClass.PERMANENT_INSTANCE),
        (400, ErrorClass.PERMANENT_MESSAGE),
    ],
)
def test_http_status_classifies_when_there_is_no_code(status, expected):
    rule = ErrorTable().classify(None, status)
    assert rule.error_class is expected
    assert rule.known
    assert rule.max_attempts is None


def test_a_known_code_wins_over_the_http_status():
    assert ErrorTable().classify(131026, 500).error_class is ErrorClass.PERMANENT_MESSAGE


def test_unknown_codes_are_transient_with_few_retries_and_logged_once(caplog):
    table = ErrorTable()
    with caplog.at_level(logging.WARNING, logger="dispatcher.meta.error_codes"):
        first = table.classify(987654, 400)
        table.classify(987654, 400)
        table.classify(987655, 400)
    assert first.error_class is ErrorClass.TRANSIENT
    assert first.max_attempts == UNKNOWN_MAX_ATTEMPTS
    assert not first.known
    assert [r.getMessage().split()[4] for r in caplog.records] == ["code=987654", "code=987655"]


@pytest.mark.parametrize(
    ("raw", "tier", "limit"),
    [
        ("TIER_250", MessagingTier.TIER_250, 250),
        ("TIER_1K", MessagingTier.TIER_1K, 1_000),
        ("2K", MessagingTier.TIER_2K, 2_000),
        (10_000, MessagingTier.TIER_10K, 10_000),
        ("100,000", MessagingTier.TIER_100K, 100_000),
        ("unlimited", MessagingTier.TIER_UNLIMITED, None),
    ],
)
def test_tiers_parse_from_every_spelling_the_graph_api_uses(raw, tier, limit):
    parsed = MessagingTier.parse(raw)
    assert parsed is tier
    assert parsed.limit == limit


@pytest.mark.parametrize("raw", ["TIER_3", 7, None, ""])
def test_unknown_tiers_are_refused(raw):
    with pytest.raises(ValueError, match="messaging limit"):
        MessagingTier.parse(raw)
