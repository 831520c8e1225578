"""The chaos verdict, from what the sandbox saw: pure, no processes."""

from __future__ import annotations

from tests.chaos.campaign import refusals_after_marks
from tests.chaos.report import judge

ADDRESSES = ["+5531900000001", "+5531900000002", "+5531900000003"]
CLEAN = {"duplicate_sends": 0, "throughput_violations": 0, "pair_violations": 0}


def accepted(*addresses: str) -> list[dict[str, object]]:
    return [{"recipient": a, "status": 200, "t": 1.0} for a in addresses]


def test_each_recipient_accepted_once_and_completed_passes() -> None:
    row = judge("f", ADDRESSES, accepted(*ADDRESSES), CLEAN, 12.5)
    assert (row.reached_once, row.duplicates, row.lost, row.violations) == (3, 0, 0, 0)
    assert row.passed


def test_a_second_acceptance_is_a_duplicate_and_a_missing_one_is_lost() -> None:
    records = [
        *accepted(ADDRESSES[0], ADDRESSES[0], ADDRESSES[1]),
        {"recipient": ADDRESSES[2], "status": 503, "t": 1.0},  # refused: not reached
    ]
    row = judge("f", ADDRESSES, records, CLEAN, 3.0)
    assert (row.reached_once, row.duplicates, row.lost) == (1, 1, 1)
    assert not row.passed


def test_a_duplicate_seen_only_by_callback_tag_still_counts() -> None:
    row = judge("f", ADDRESSES, accepted(*ADDRESSES), {**CLEAN, "duplicate_sends": 2}, 3.0)
    assert row.duplicates == 2
    assert not row.passed


def test_rate_violations_an_unfinished_campaign_or_a_broken_scenario_fail() -> None:
    over = judge("f", ADDRESSES, accepted(*ADDRESSES), {**CLEAN, "tier_violations": 1}, 3.0)
    assert (over.violations, over.passed) == (1, False)
    assert not judge("f", ADDRESSES, accepted(*ADDRESSES), CLEAN, None).passed
    broke = judge("f", ADDRESSES, accepted(*ADDRESSES), CLEAN, 3.0, error="serve did not start")
    assert not broke.passed


def test_sends_to_strangers_are_noted() -> None:
    row = judge("f", ADDRESSES, accepted(*ADDRESSES, "+5531999999999"), CLEAN, 3.0)
    assert any("not in the campaign" in note for note in row.notes)


def test_refusals_are_placed_after_the_fault_they_follow() -> None:
    records = [
        {"recipient": "a", "status": 400, "t": 10.5},
        {"recipient": "b", "status": 400, "t": 30.0},
        {"recipient": "c", "status": 200, "t": 10.6},
    ]
    [note] = refusals_after_marks(records, [(10.0, "SIGKILL 7001")])
    assert note == "2 requests refused with 4xx; within 5s of an event: 1 after SIGKILL 7001"
    assert refusals_after_marks(accepted(*ADDRESSES), [(0.0, "x")]) == []


def test_the_peak_over_a_number_s_limit_is_measured_and_compared_with_the_control() -> None:
    audit = {**CLEAN, "throughput_violations": 2, "numbers": {"7001": {"max_received_per_s": 81}}}
    control = judge("none", ADDRESSES, accepted(*ADDRESSES), audit, 3.0, limits={"7001": 80})
    assert (control.peak_over, control.failures()) == (1, ["rate"])
    same = judge("f", ADDRESSES, accepted(*ADDRESSES), audit, 3.0, limits={"7001": 80})
    assert same.passed_but_jitter(control)
    faster = {**audit, "numbers": {"7001": {"max_received_per_s": 118}}}
    doubled = judge("f", ADDRESSES, accepted(*ADDRESSES), faster, 3.0, limits={"7001": 80})
    assert doubled.peak_over == 38
    assert not doubled.passed_but_jitter(control)
    lost = judge("f", ADDRESSES, accepted(*ADDRESSES[:2]), audit, 3.0, limits={"7001": 80})
    assert lost.failures() == ["lost", "rate"]
    assert not lost.passed_but_jitter(control)
