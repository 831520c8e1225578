"""Real services for the suite: the configured URLs, or embedded servers started once per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.config import Settings, load_settings
from dispatcher.services import Services, ServiceUrls


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that need Redis or Postgres are marked, so CI can rerun just them against the
    # machine's own servers (make test-system) after the full run on embedded ones.
    for item in items:
        if "service_urls" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = load_settings()
    data_dir = base.data_dir
    if not (base.redis_url and base.database_url):
        data_dir = Path(tmp_path_factory.mktemp("dispatcher-data"))
    return base.model_copy(update={"data_dir": data_dir})


@pytest.fixture(scope="session")
def service_urls(settings: Settings) -> Iterator[ServiceUrls]:
    with Services(settings) as urls:
        yield urls
