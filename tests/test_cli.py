"""The ``dispatcher`` command: ``stats`` against the live API, and one-line errors."""

from __future__ import annotations

import pytest

from dispatcher.cli import main
from tests.stack import API_TOKEN, Stack


def test_stats_prints_queue_instance_and_portfolio_tables(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DISPATCHER_API_TOKEN", API_TOKEN)
    assert main(["stats", "--api-url", stack.api.url]) == 0
    out = capsys.readouterr().out
    for title in ("Queues", "Instances", "Portfolios", "campaigns", "webhooks"):
        assert title in out


def test_stats_errors_are_one_line(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DISPATCHER_API_TOKEN", "wrong")
    assert main(["stats", "--api-url", stack.api.url]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    assert main(["stats", "--api-url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "api: http://127.0.0.1:9: ConnectError" in err
    assert len(err.strip().splitlines()) == 1


async def test_campaign_shows_the_counters_with_the_duplicates(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    from tests.api.conftest import PREFIX, create_campaign, register

    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=stack.api.url + PREFIX, headers=headers) as api:
        instance = await register(api)
        twice = [{"phone": "+5541900000001"}, {"phone": "+5541900000001"}]
        created = await create_campaign(
            api, [instance["id"]], [*twice, {"phone": "+5541900000002"}]
        )
    monkeypatch.setenv("DISPATCHER_API_TOKEN", API_TOKEN)
    assert main(["campaign", created["id"], "--api-url", stack.api.url]) == 0
    out = capsys.readouterr().out
    counts = {
        line.split()[1]: line.split()[3]
        for line in out.splitlines()
        if line.startswith("│") and len(line.split()) == 5
    }
    assert (counts["recipients"], counts["pending"], counts["duplicates"]) == ("3", "2", "1")
