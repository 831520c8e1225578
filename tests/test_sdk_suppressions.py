"""The driver SDK's suppressions: add, list, import (a CSV file, all or nothing), remove."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.recipient_files import RecipientLineError
from dispatcher.sdk import Dispatcher
from tests.stack import Stack


@pytest.fixture
def sdk(stack: Stack) -> Iterator[Dispatcher]:
    """The SDK joined to the test stack's deployment (it stops nothing on close)."""
    dispatcher = Dispatcher(stack.coordinator, stack.deployment)
    yield dispatcher
    dispatcher.close(shutdown=False)


def test_suppress_import_list_and_unsuppress(sdk: Dispatcher, tmp_path: Path) -> None:
    business = f"biz-{uuid.uuid4().hex[:8]}"
    assert sdk.suppress(business, ["+5511999990001", "BR.sdk1"], reason="asked") == 2
    with pytest.raises(RecipientLineError) as refused:
        sdk.suppress(business, ["+5511999990002", "5511"])
    assert refused.value.line == 2

    listed = tmp_path / "list.csv"
    listed.write_text("+5511999990001,again\n+5511999990003\n+5510987654321\n")
    done = sdk.import_suppressions(business, listed)
    assert (done.rows, done.added, done.already, done.invalid) == (3, 2, 1, 1)
    assert done.invalid_lines == [(3, "+5510987654321")]
    bad = tmp_path / "bad.csv"
    bad.write_text("+5511999990004\nnope\n")
    with pytest.raises(RecipientLineError) as refused:
        sdk.import_suppressions(business, bad)
    assert refused.value.line == 2

    found = {s.address: s.source for s in sdk.suppressions(business)}
    assert found == {
        "+5511999990001": "operator",
        "BR.sdk1": "operator",
        "+5511999990003": "import",
        "+5510987654321": "import",
    }  # nothing of bad.csv
    assert sdk.unsuppress(business, ["BR.sdk1", "BR.unknown"]) == 1
    assert len(sdk.suppressions(business)) == 3
