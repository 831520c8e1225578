"""Connecting to Redis, with one-line errors when it cannot be reached or is misconfigured."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.errors import ConfigError, ServiceError
from dispatcher.urls import redact

log = logging.getLogger(__name__)

SETTING = "DISPATCHER_REDIS_URL"
CONNECT_TIMEOUT_S = 5.0


async def connect_redis(url: str) -> aioredis.Redis:
    """A client (bytes in and out) that has answered PING, or a one-line error naming the
    problem: :class:`ConfigError` for a missing or malformed URL, :class:`ServiceError` for a
    server that is unreachable or refuses the credentials."""
    if not url:
        raise ConfigError(SETTING, "Redis credentials not configured")
    target = redact(url)
    try:
        client = aioredis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=30,
        )
    except ValueError as exc:
        raise ConfigError(SETTING, f"invalid URL {target}: {exc}") from None
    try:
        await client.ping()
    except AuthenticationError:
        await client.aclose()
        raise ServiceError("redis", f"authentication failed at {target}: check {SETTING}") from None
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        await client.aclose()
        reason = str(exc).split(". ")[0] or type(exc).__name__
        raise ServiceError("redis", f"cannot connect to {target}: {reason}") from None
    except ResponseError as exc:
        await client.aclose()
        raise ServiceError("redis", f"{target} refused: {exc}") from None
    except RedisError as exc:
        await client.aclose()
        raise ServiceError("redis", f"{type(exc).__name__} at {target}: {exc}") from None
    log.info("redis connected at %s", target)
    return client
