"""``dispatcher suppressions list|add|remove|import`` against the live API of the test stack:
one-line errors and the exit codes of the other operator commands."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.test_cli_ops import cli, one_error_line  # noqa: F401 (the fixture)

IMPOSSIBLE = "+5510987654321"


def test_add_list_import_and_remove(cli: Any, tmp_path: Path) -> None:  # noqa: F811
    business = f"biz-{uuid.uuid4().hex[:8]}"
    code, out, err = cli(
        "suppressions", "add", "--business-id", business, "+5511999990001", "--reason", "asked"
    )
    assert code == 0, err
    assert "1 suppressed" in out
    listed = tmp_path / "list.csv"
    listed.write_text(f"address,reason\n+5511999990001\nBR.cli123,wrote stop\n{IMPOSSIBLE}\n")
    code, out, err = cli("suppressions", "import", "--business-id", business, str(listed))
    assert code == 0, err
    assert "3 addresses read from list.csv, 2 suppressed, 1 already were" in out
    assert "1 phones in no numbering plan, suppressed all the same (lines 4)" in out

    code, out, err = cli("suppressions", "list", "--business-id", business, "--json")
    assert code == 0, err
    rows = {(s["address"], s["source"], s["reason"]) for s in json.loads(out)}
    assert rows == {
        ("+5511999990001", "operator", "asked"),
        ("BR.cli123", "import", "wrote stop"),
        (IMPOSSIBLE, "import", "import"),
    }
    code, out, err = cli(
        "suppressions", "remove", "--business-id", business, "+5511999990001", "BR.cli123"
    )
    assert code == 0, err
    assert "2 no longer suppressed" in out
    code, out, err = cli("suppressions", "list", "--business-id", business, "--json")
    assert [s["address"] for s in json.loads(out)] == [IMPOSSIBLE]


def test_errors_are_one_line_with_exit_codes(cli: Any, tmp_path: Path) -> None:  # noqa: F811
    business = f"biz-{uuid.uuid4().hex[:8]}"
    bad = tmp_path / "bad.csv"
    bad.write_text("+5511999990001\nnot a phone\n")
    code, _, err = cli("suppressions", "import", "--business-id", business, str(bad))
    assert code == 1
    line = one_error_line(err)
    assert "HTTP 422" in line
    assert "line 2" in line
    assert "nothing of the list was imported" in line
    code, out, _ = cli("suppressions", "list", "--business-id", business, "--json")
    assert json.loads(out) == []

    code, _, err = cli("suppressions", "import", "--business-id", business, str(tmp_path / "no"))
    assert code == 2
    assert "no such file" in one_error_line(err)
    code, _, err = cli("suppressions", "add", "--business-id", business, "12345")
    assert code == 1
    assert "HTTP 422" in one_error_line(err)
