"""What an alert says: its kind, what it is about, and text free of secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.urls import redact


class AlertKind(StrEnum):
    NUMBER_STOPPED = "number_stopped"
    """Token, block, ban or account restriction: the number sends nothing until acted on."""
    PORTFOLIO_HOLD = "portfolio_hold"
    """131064: Meta holds the business portfolio; none of its numbers gets work."""
    CAMPAIGN_HELD = "campaign_held"
    """A template (or its parameters) cannot be sent: the campaign waits."""
    BREAKER_OPEN = "breaker_open"
    SPAM_THROTTLE = "spam_throttle"
    """131048: Meta's spam rate limit on a number."""
    LIMIT_UNREADABLE = "limit_unreadable"
    """The portfolio's messaging limit could not be read: a fallback limit is assumed."""
    CAMPAIGN_COMPLETED = "campaign_completed"
    CAMPAIGN_FAILED = "campaign_failed"
    DEAD_LETTERS = "dead_letters"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY: dict[AlertKind, Severity] = {
    AlertKind.NUMBER_STOPPED: Severity.CRITICAL,
    AlertKind.PORTFOLIO_HOLD: Severity.CRITICAL,
    AlertKind.CAMPAIGN_HELD: Severity.WARNING,
    AlertKind.BREAKER_OPEN: Severity.WARNING,
    AlertKind.SPAM_THROTTLE: Severity.WARNING,
    AlertKind.LIMIT_UNREADABLE: Severity.CRITICAL,
    AlertKind.CAMPAIGN_COMPLETED: Severity.INFO,
    AlertKind.CAMPAIGN_FAILED: Severity.CRITICAL,
    AlertKind.DEAD_LETTERS: Severity.WARNING,
}

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_TOKEN = re.compile(r"\b(?:EAA[A-Za-z0-9]{8,}|[A-Za-z0-9_\-]{40,})\b")
"""Meta access tokens begin ``EAA``; any other run this long is more likely a credential
than something a person needs to read in an alert."""
MAX_TEXT = 1_000


def scrub(text: str) -> str:
    """``text`` fit for a chat channel: URLs without credentials, token-like runs masked,
    cut to a length both services accept in one field."""
    text = _URL.sub(lambda m: redact(m.group(0)), text)
    text = _TOKEN.sub("***", text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Alert:
    """One event for a person. ``subject`` names the instance, portfolio or campaign it is
    about: with the kind, the key it is rate-limited by."""

    kind: AlertKind
    subject: str
    title: str
    text: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, kind: AlertKind, subject: str, title: str, text: str, **fields: object) -> Alert:
        """An alert whose text and field values are scrubbed (see :func:`scrub`)."""
        return cls(
            kind,
            subject,
            scrub(title),
            scrub(text),
            tuple((name.replace("_", " "), scrub(str(v))) for name, v in fields.items()),
        )

    @property
    def key(self) -> str:
        return f"{self.kind.value}:{self.subject}"

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]
