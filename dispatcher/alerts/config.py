"""Where alerts go and how they are paced: one picklable object, shipped to the coordinator."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import SecretStr

from dispatcher.alerts.dedup import DEDUP_WINDOW_S


@dataclass(frozen=True, slots=True)
class AlertConfig:
    slack_url: SecretStr | None = None
    discord_url: SecretStr | None = None
    """Incoming-webhook URLs: each is a credential (anyone holding it may post), so a
    ``SecretStr``, never logged, never returned by :meth:`public`."""
    dedup_window_s: float = DEDUP_WINDOW_S
    """One alert per kind and subject per this many seconds."""
    dead_letters_threshold: int = 100
    """Alert when the campaigns queue's dead letters rise above this many."""
    check_interval_s: float = 10.0
    """How often the watch reads the coordinator's state (a few queries each time)."""
    queue_size: int = 100
    """Alerts waiting to be posted; more are dropped with a log line."""
    max_attempts: int = 5
    """Posts of one alert to one service before giving up (429 and 5xx are retried)."""
    backoff_s: float = 1.0
    """First retry delay; doubled each attempt, capped at ``max_backoff_s``."""
    max_backoff_s: float = 60.0
    rearm_after_s: float = 60.0
    """After an alert certainly reached no service (given up), its condition is raised
    again this long after, if it still holds; doubled after each further give-up in a row,
    capped at ``dedup_window_s`` (``sender.py``)."""
    request_timeout_s: float = 10.0

    @property
    def targets(self) -> dict[str, str]:
        """Service name -> URL, for those configured."""
        urls = {"slack": self.slack_url, "discord": self.discord_url}
        return {
            name: url.get_secret_value()
            for name, url in urls.items()
            if url is not None and url.get_secret_value()
        }

    def public(self) -> AlertConfig:
        """Without the URLs (what a Ray client may see)."""
        return replace(self, slack_url=None, discord_url=None)
