"""The one settings object: environment variables, with defaults that run on a laptop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatcher.errors import ConfigError
from dispatcher.meta.tiers import MessagingTier
from dispatcher.store.models import InDoubtPolicy
from dispatcher.urls import redact

URL_FIELDS = frozenset({"database_url", "redis_url", "graph_url"})


class Settings(BaseSettings):
    """Every tunable of the dispatcher, read from ``DISPATCHER_*`` and the seed's WhatsApp names.

    Empty ``database_url`` / ``redis_url`` mean "start embedded servers under ``data_dir``".
    """

    model_config = SettingsConfigDict(
        env_prefix="DISPATCHER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = ""
    redis_url: str = ""
    deployment_name: str = Field(default="", max_length=100)
    """The ``deployment`` label of the coordinator's metrics (one Prometheus may scrape
    several deployments). Empty: the database's ``host:port/name`` (``urls.database_label``:
    never a credential)."""
    ray_address: str = ""
    data_dir: Path = Path(".dispatcher")
    api_token: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    """The keyring that seals secrets at rest: urlsafe-base64 32-byte keys, comma-separated,
    the first one primary. Empty: ``<data_dir>/secret.key`` (made on first start)."""
    in_doubt_policy: InDoubtPolicy = InDoubtPolicy.RESEND
    """What an in-doubt send becomes when no status webhook came (see EngineConfig)."""

    instance_idle_stop_s: float = Field(default=300.0, gt=0)
    """An instance actor with no work this long stops (see EngineConfig)."""

    verify_token: SecretStr = Field(default=SecretStr(""), validation_alias="WHATSAPP_VERIFY_TOKEN")
    app_secret: SecretStr = Field(default=SecretStr(""), validation_alias="WHATSAPP_APP_SECRET")
    graph_url: str = Field(default="https://graph.facebook.com", validation_alias="META_GRAPH_URL")
    api_version: str = Field(default="v25.0", validation_alias="META_API_VERSION")
    max_upload_rows: int = Field(default=2_000_000, gt=0)
    """Recipients one upload (a create or an append) may carry; more is refused whole (413)."""
    max_upload_bytes: int = Field(default=512 * 2**20, gt=0)
    """Bytes one bulk append may send (a create's JSON body has its own, smaller bound)."""
    max_upload_s: float = Field(default=600.0, gt=0)
    """Seconds a client has to send one upload's body; a slower one is cut (408)."""
    max_instances: int = Field(default=1_000, gt=0)
    """Numbers that may be registered; registering one more is refused (409)."""
    unreadable_limit: MessagingTier = MessagingTier.TIER_250
    """The messaging limit assumed for a portfolio whose limit the Graph API would not give
    (logged as an error and shown in stats, never silent)."""
    slack_webhook_url: SecretStr = SecretStr("")
    discord_webhook_url: SecretStr = SecretStr("")
    """Incoming webhooks that get alerts (either, both or none); credentials, never logged."""
    alert_dead_letters_threshold: int = Field(default=100, ge=0)
    """Alert when the campaigns queue holds more dead letters than this."""
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    """``dispatcher serve`` answers HTTPS with this certificate (chain) and key when set."""
    ca_file: Path | None = None
    """CA bundle the CLI trusts for the API's certificate (a private CA, a self-signed one)."""

    @field_validator("tls_certfile", "tls_keyfile", "ca_file", mode="before")
    @classmethod
    def _no_path(cls, value: object) -> object:
        return None if value == "" else value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Secrets are SecretStr already; the service URLs may carry a password too.
        for name, value in super().__repr_args__():
            yield name, redact(value) if name in URL_FIELDS and isinstance(value, str) else value

    @field_validator("unreadable_limit", mode="before")
    @classmethod
    def _tier(cls, value: object) -> object:
        return MessagingTier.parse(value) if isinstance(value, str | int) else value


def load_settings() -> Settings:
    """Read the settings; a bad value fails with a one-line :class:`ConfigError` naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigError(_env_name(name), first["msg"]) from None


def require(settings: Settings, field: str) -> str:
    """The value of a setting that must not be empty, or a :class:`ConfigError` naming it."""
    value = getattr(settings, field)
    raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if not raw:
        raise ConfigError(_env_name(field), "not configured")
    return raw


_ALIASES = {
    "verify_token": "WHATSAPP_VERIFY_TOKEN",
    "app_secret": "WHATSAPP_APP_SECRET",
    "graph_url": "META_GRAPH_URL",
    "api_version": "META_API_VERSION",
}


def _env_name(field: str) -> str:
    if field in _ALIASES.values():
        return field
    return _ALIASES.get(field, f"DISPATCHER_{field.upper()}")
