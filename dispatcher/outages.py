"""Which failures mean "a service is away" (wait and retry in place) and which mean bad data.

A worker loop that meets an outage of Redis or Postgres keeps what it holds and tries again
(nothing is dead-lettered because the database was away for a minute); a failure that is
about the data itself is isolated to the item that caused it.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions

OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the pool or connection was closed under us
    asyncpg.CannotConnectNowError,  # the server is starting or shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says a backing service is unreachable or unwilling for now."""
    if isinstance(exc, OUTAGE_TYPES):
        return True
    # asyncpg reports a server going away mid-query with these SQLSTATE classes.
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in {"08", "53", "57"}
