"""The operator's commands (``dispatcher instances``, ``dispatcher campaign ...``) against the
live API of the test stack: the sandbox's numbers send for real, statuses come by webhook."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dispatcher.cli import main
from tests.phones import block, phone
from tests.stack import API_TOKEN, Stack


@pytest.fixture
def cli(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*argv)`` -> (exit code, stdout, stderr), against the stack's API."""
    monkeypatch.setenv("DISPATCHER_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("DISPATCHER_API_URL", stack.api.url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def register(cli: Any, stack: Stack, number: str, monkeypatch: pytest.MonkeyPatch, mps: int) -> str:
    monkeypatch.setenv("SANDBOX_TOKEN", stack.numbers[number])
    code, out, err = cli(
        "instances", "register", "--phone-number-id", number, "--business-id", "biz-large",
        "--token-env", "SANDBOX_TOKEN", "--throughput", str(mps), "--json",
    )  # fmt: skip
    assert code == 0, err
    return str(json.loads(out)["id"])


def phones(count: int) -> list[str]:
    base = block()
    return [phone(base, i) for i in range(count)]


def create(cli: Any, instance: str, path: Path) -> dict[str, Any]:
    code, out, err = cli(
        "campaign", "create", "--name", f"cli-{path.stem}", "--template-name", "hello_world",
        "--language", "en_US", "--instance", instance, "--file", str(path), "--json",
    )  # fmt: skip
    assert code == 0, err
    created: dict[str, Any] = json.loads(out)
    return created


def test_register_reads_the_token_from_a_file_or_env_and_lists_it(
    cli: Any, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(stack.numbers["5001"] + "\n")
    code, out, err = cli(
        "instances", "register", "--phone-number-id", "5001", "--business-id", "biz-small",
        "--token-file", str(token_file), "--throughput", "80",
    )  # fmt: skip
    assert code == 0, err
    assert "number 5001 (biz-small)" in out
    assert stack.numbers["5001"] not in out + err

    code, out, _ = cli("instances", "--json")
    assert code == 0
    listed = {i["phone_number_id"]: i for i in json.loads(out)}
    assert listed["5001"]["throughput_mps"] == 80
    assert stack.numbers["5001"] not in out
    code, out, _ = cli("instances")
    assert code == 0
    assert "5001" in out
    assert "biz-small" in out

    # An empty or missing token source is a usage error, and the token is no option at all.
    monkeypatch.setenv("EMPTY_TOKEN", "")
    code, _, err = cli(
        "instances", "register", "--phone-number-id", "5001", "--business-id", "biz-small",
        "--token-env", "EMPTY_TOKEN",
    )  # fmt: skip
    assert code == 2
    assert "--token-env EMPTY_TOKEN: no access token there" in one_error_line(err)
    code, _, err = cli(
        "instances", "register", "--phone-number-id", "5001", "--business-id", "biz-small",
        "--token-file", str(tmp_path / "missing"),
    )  # fmt: skip
    assert code == 2
    assert "--token-file" in one_error_line(err)
    with pytest.raises(SystemExit) as exited:
        main(["instances", "register", "--phone-number-id", "1", "--business-id", "b",
              "--token", "EAAG"])  # fmt: skip
    assert exited.value.code == 2


def test_a_csv_campaign_is_created_sent_watched_and_exported(
    cli: Any, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = register(cli, stack, "6001", monkeypatch, 200)
    numbers = phones(5)
    path = tmp_path / "recipients.csv"
    path.write_text(
        "phone,name\n"
        + "".join(f"{phone},Ana {i}\n" for i, phone in enumerate(numbers))
        + f"{numbers[0]},again\n"
    )
    code, out, err = cli(
        "campaign", "create", "--name", "cli-csv", "--template-name", "hello_world",
        "--language", "en_US", "--instance", instance, "--file", str(path),
    )  # fmt: skip
    assert code == 0, err
    assert "6 recipients added" in out
    assert "1 of them duplicates" in out
    campaign_id = out.split()[1]

    code, out, err = cli("campaign", "send", campaign_id, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] in ("running", "completed")

    code, out, err = cli("campaign", "watch", campaign_id, "--interval", "0.2", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["status"] == "completed"
    assert (done["total_sent"], done["total_duplicates"]) == (5, 1)

    code, out, err = cli("campaign", "recipients", campaign_id, "--page-size", "2")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6
    assert sorted(r["phone"] for r in rows) == sorted([*numbers, numbers[0]])
    assert sorted(r["status"] for r in rows).count("duplicate") == 1
    assert all(r["status"] in ("sent", "delivered", "read", "duplicate") for r in rows)
    assert {json.loads(r["variables"])["name"] for r in rows} >= {"Ana 0", "again"}

    code, out, _ = cli("campaign", "recipients", campaign_id, "--status", "duplicate")
    assert code == 0
    (duplicate,) = csv.DictReader(io.StringIO(out))
    assert (duplicate["phone"], json.loads(duplicate["variables"])) == (
        numbers[0],
        {"name": "again"},
    )
    code, out, _ = cli("campaign", "recipients", campaign_id, "--json", "--page-size", "4")
    assert sorted(r["id"] for r in json.loads(out)) == sorted(int(r["id"]) for r in rows)

    code, out, _ = cli("campaign", campaign_id)  # the shorthand of ``campaign show``
    assert code == 0
    assert "completed" in out
    code, out, _ = cli("campaign", "show", campaign_id, "--json")
    assert json.loads(out)["total_recipients"] == 6


def test_an_ndjson_file_reports_its_duplicates_as_json(
    cli: Any, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = register(cli, stack, "6001", monkeypatch, 200)
    numbers = phones(3)
    path = tmp_path / "recipients.ndjson"
    lines = [{"phone": p, "variables": {"name": f"n{i}"}} for i, p in enumerate(numbers)]
    path.write_text("\n".join(json.dumps(line) for line in [*lines, lines[1]]) + "\n")
    created = create(cli, instance, path)
    assert created["upload"] == {"added": 4, "duplicates": 1, "invalid": 0, "total_recipients": 4}
    assert created["campaign"]["status"] == "draft"
    assert created["campaign"]["total_duplicates"] == 1


def test_a_bad_file_is_refused_in_one_line(
    cli: Any, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = register(cli, stack, "6001", monkeypatch, 200)
    wrong = tmp_path / "recipients.txt"
    wrong.write_text("phone\n+5541900000001\n")
    code, _, err = cli(
        "campaign", "create", "--name", "x", "--template-name", "hello_world",
        "--language", "en_US", "--instance", instance, "--file", str(wrong),
    )  # fmt: skip
    assert code == 2
    assert "name it .csv, .ndjson or .jsonl" in one_error_line(err)

    bad = tmp_path / "bad.csv"
    bad.write_text("phone\n+5541900000001\nnot-a-phone\n")
    code, _, err = cli(
        "campaign", "create", "--name", "x", "--template-name", "hello_world",
        "--language", "en_US", "--instance", instance, "--file", str(bad),
    )  # fmt: skip
    assert code == 1
    line = one_error_line(err)
    assert "HTTP 422: line 3" in line
    campaign_id = line.split("(campaign ")[1].split()[0]
    code, out, _ = cli("campaign", "show", campaign_id, "--json")
    assert json.loads(out)["status"] == "cancelled"


def test_pause_resume_cancel_and_watch_of_a_cancelled_campaign(
    cli: Any, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 msg/s: the campaign runs for 30 s, long enough to act on it.
    instance = register(cli, stack, "6002", monkeypatch, 1)
    path = tmp_path / "slow.csv"
    path.write_text("phone\n" + "\n".join(phones(30)) + "\n")
    campaign_id = create(cli, instance, path)["campaign"]["id"]
    for action, status in (
        ("send", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelled"),
    ):
        code, out, err = cli("campaign", action, campaign_id, "--json")
        assert code == 0, err
        assert json.loads(out)["status"] == status

    code, _, err = cli("campaign", "resume", campaign_id)
    assert code == 1
    assert "HTTP 409: cannot resume a cancelled campaign" in one_error_line(err)
    code, out, _ = cli("campaign", "watch", campaign_id, "--json")
    assert code == 3
    assert json.loads(out)["status"] == "cancelled"


def test_errors_are_one_line_with_exit_codes_scripts_can_test(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(uuid.uuid4())
    for argv in (("campaign", "show", missing), ("campaign", "send", missing)):
        code, out, err = cli(*argv)
        assert code == 1
        assert "HTTP 404" in one_error_line(err)
        assert out == ""

    monkeypatch.delenv("DISPATCHER_API_TOKEN")
    code, _, err = cli("instances", "--json")
    assert code == 2
    assert "api_token" in one_error_line(err).lower()

    with pytest.raises(SystemExit) as exited:
        main(["campaign", "create", "--name", "no template"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as usage:  # not an id: a usage error, never a path
        main(["campaign", "watch", "not-a-uuid"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        main(["campaign", "show", "../instances"])


def test_stats_as_json(cli: Any) -> None:
    code, out, err = cli("stats", "--json")
    assert code == 0, err
    assert set(json.loads(out)) >= {"campaigns", "webhooks", "instances", "portfolios"}
