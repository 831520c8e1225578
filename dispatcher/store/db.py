"""Connecting to Postgres: one pool per process, and one-line errors when it cannot be reached."""

from __future__ import annotations

import logging
import re
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from dispatcher.errors import ConfigError, ServiceError
from dispatcher.urls import redact

log = logging.getLogger(__name__)

SETTING = "DISPATCHER_DATABASE_URL"
CONNECT_TIMEOUT_S = 10.0


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codec: COPY (binary) and queries both take and return Python objects for jsonb.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _problem(exc: BaseException, url: str) -> ServiceError | ConfigError:
    """Turn a connection failure into one line that says what to check."""
    target = redact(url)
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return ServiceError("postgres", f"authentication failed at {target}: check {SETTING}")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ServiceError("postgres", f"database does not exist at {target}")
    if isinstance(exc, asyncpg.PostgresError):
        return ServiceError("postgres", f"{type(exc).__name__} at {target}: {exc}")
    if isinstance(exc, TimeoutError):
        return ServiceError("postgres", f"no answer from {target} in {CONNECT_TIMEOUT_S:.0f}s")
    if isinstance(exc, socket.gaierror):
        return ServiceError("postgres", f"unknown host in {target}")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        # "Multiple exceptions: [Errno 111] Connect call failed ..." -> the first reason only.
        reason = re.sub(r"^Multiple exceptions: ", "", reason).split(", [Errno")[0]
        return ServiceError("postgres", f"cannot connect to {target}: {reason}")
    if isinstance(exc, ValueError | asyncpg.ClientConfigurationError):
        return ConfigError(SETTING, f"invalid URL {target}: {exc}")
    return ServiceError("postgres", f"{type(exc).__name__} at {target}: {exc}")


async def connect(url: str) -> asyncpg.Connection:
    """One connection (with the jsonb codec), or a one-line :class:`ServiceError`."""
    if not url:
        raise ConfigError(SETTING, "not configured")
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except _CONNECT_ERRORS as exc:
        raise _problem(exc, url) from None
    await _init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool of connections with the jsonb codec, checked at once (fails fast, one line)."""
    if not url:
        raise ConfigError(SETTING, "not configured")
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            init=_init_connection,
        )
    except _CONNECT_ERRORS as exc:
        raise _problem(exc, url) from None
    log.info("postgres pool open to %s (max %d)", redact(url), max_size)
    return pool


async def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; returns the URL to reach it."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"unsafe database name {name!r}")
    conn = await connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(url, name)


async def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` (closing its sessions) on the server of ``url``."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"unsafe database name {name!r}")
    conn = await connect(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
