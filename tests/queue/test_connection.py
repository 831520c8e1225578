from __future__ import annotations

import pytest

from dispatcher.errors import ConfigError, ServiceError
from dispatcher.queue.connection import connect_redis
from dispatcher.services import ServiceUrls


async def test_missing_url_says_credentials_are_not_configured() -> None:
    with pytest.raises(ConfigError) as caught:
        await connect_redis("")
    assert str(caught.value) == "DISPATCHER_REDIS_URL: Redis credentials not configured"


async def test_unreachable_redis_is_one_line_without_the_password() -> None:
    with pytest.raises(ServiceError) as caught:
        await connect_redis("redis://:hunter2@127.0.0.1:1/0")
    message = str(caught.value)
    assert message.startswith("redis: cannot connect to redis://:***@127.0.0.1:1/0")
    assert "hunter2" not in message
    assert "\n" not in message


async def test_a_malformed_url_names_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        await connect_redis("http://127.0.0.1:6379")
    assert caught.value.setting == "DISPATCHER_REDIS_URL"


async def test_wrong_credentials_are_reported(service_urls: ServiceUrls) -> None:
    url = service_urls.redis_url.replace("redis://", "redis://nobody:wrong@", 1)
    with pytest.raises(ServiceError, match=r"authentication failed|refused") as caught:
        await connect_redis(url)
    assert "wrong" not in str(caught.value)
