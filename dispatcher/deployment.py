"""What every actor of one deployment needs to know: where the services are, and the tunables.

Plain and picklable: the driver builds it once and Ray ships it to each actor. It carries the
services' credentials and the keyring, so it is never returned by an actor method: what a
Ray client may see is :meth:`Deployment.public` (no password, no keyring).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from dispatcher.alerts.config import AlertConfig
from dispatcher.crypto import Keyring
from dispatcher.engine.config import EngineConfig
from dispatcher.keyfile import load_keyring
from dispatcher.queue import Queues
from dispatcher.queue.connection import connect_redis
from dispatcher.queue.streams import DEFAULT_PREFIX
from dispatcher.store import Store
from dispatcher.urls import database_label, redact, without_password

if TYPE_CHECKING:
    # Not at run time: every actor unpickles a Deployment, and the settings class brings
    # pydantic-settings (about 7 MB per process) that no actor uses.
    from dispatcher.config import Settings
    from dispatcher.services import ServiceUrls

NAMESPACE = "whatsapp-dispatcher"
COORDINATOR_NAME = "coordinator"


@dataclass(frozen=True, slots=True, repr=False)
class Deployment:
    database_url: str
    redis_url: str
    graph_url: str
    api_version: str
    queue_prefix: str = DEFAULT_PREFIX
    namespace: str = NAMESPACE
    engine: EngineConfig = field(default_factory=EngineConfig)
    log_level: str = "INFO"
    """Of the actors' own logs (their Ray log files); ``dispatcher -v serve`` sets DEBUG."""
    keyring: Keyring | None = None
    """Seals the secrets in Postgres; None: the configured one (see :mod:`dispatcher.keyfile`)."""
    alerts: AlertConfig = field(default_factory=AlertConfig)
    """Where the coordinator posts alerts (its webhook URLs are credentials)."""
    name: str = ""
    """``DISPATCHER_DEPLOYMENT_NAME``; see :attr:`label`."""

    @property
    def label(self) -> str:
        """The deployment's name in its metrics: the configured one, else the database's
        ``host:port/name`` (one database is one deployment), without credentials."""
        return self.name or database_label(self.database_url)

    def __repr__(self) -> str:
        # Shown in logs and tracebacks: the service URLs without their passwords, key ids only.
        return (
            f"Deployment(database_url={redact(self.database_url)!r}, "
            f"redis_url={redact(self.redis_url)!r}, graph_url={self.graph_url!r}, "
            f"api_version={self.api_version!r}, queue_prefix={self.queue_prefix!r}, "
            f"namespace={self.namespace!r}, name={self.label!r}, log_level={self.log_level!r}, "
            f"keyring={self.keyring!r})"
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        urls: ServiceUrls,
        engine: EngineConfig | None = None,
        keyring: Keyring | None = None,
    ) -> Deployment:
        """The deployment a process starts; its keyring is read (or made) now, so a bad
        ``DISPATCHER_SECRET_KEY`` fails at start with one line."""
        return cls(
            database_url=urls.database_url,
            redis_url=urls.redis_url,
            graph_url=settings.graph_url,
            api_version=settings.api_version,
            engine=replace(
                engine or EngineConfig(),
                unreadable_limit=settings.unreadable_limit,
                in_doubt_policy=settings.in_doubt_policy,
                instance_idle_stop_s=settings.instance_idle_stop_s,
            ),
            keyring=keyring or load_keyring(settings),
            alerts=alert_config(settings),
            name=settings.deployment_name,
        )

    def public(self) -> Deployment:
        """What a Ray client may be told: the URLs without passwords, no keyring."""
        return replace(
            self,
            database_url=without_password(self.database_url),
            redis_url=without_password(self.redis_url),
            keyring=None,
            alerts=self.alerts.public(),
        )

    def joined(self, settings: Settings) -> Deployment:
        """A :meth:`public` deployment completed with this process's own credentials: its
        configured URLs when set (else the public ones, for ``PGPASSWORD``, ``.pgpass`` or
        trust auth) and its keyring (``DISPATCHER_SECRET_KEY`` or an existing key file)."""
        return replace(
            self,
            database_url=settings.database_url or self.database_url,
            redis_url=settings.redis_url or self.redis_url,
            keyring=load_keyring(settings, create=False),
            alerts=replace(
                self.alerts,
                slack_url=settings.slack_webhook_url,
                discord_url=settings.discord_webhook_url,
            ),
        )

    async def open(self, *, pool_size: int = 4) -> tuple[Store, Queues]:
        """Connect to Postgres (migrating it) and Redis; one-line errors when unreachable."""
        store = await Store.open(
            self.database_url, keyring=self.keyring, min_size=1, max_size=pool_size
        )
        try:
            redis = await connect_redis(self.redis_url)
        except BaseException:
            await store.close()
            raise
        return store, Queues(redis, prefix=self.queue_prefix)


def alert_config(settings: Settings) -> AlertConfig:
    """The alert targets and threshold the settings name (an empty URL: that service off)."""
    return AlertConfig(
        slack_url=settings.slack_webhook_url,
        discord_url=settings.discord_webhook_url,
        dead_letters_threshold=settings.alert_dead_letters_threshold,
    )
