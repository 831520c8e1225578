"""Meta's messaging limits ("tiers"): unique customers per business portfolio per moving 24 h."""

from __future__ import annotations

from enum import StrEnum


class MessagingTier(StrEnum):
    """The Graph API's names for the messaging limit; ``limit`` is None when unlimited."""

    TIER_250 = "TIER_250"
    TIER_1K = "TIER_1K"
    """Legacy: the 1K tier became 2K; kept because old numbers still report it."""
    TIER_2K = "TIER_2K"
    TIER_10K = "TIER_10K"
    TIER_100K = "TIER_100K"
    TIER_UNLIMITED = "TIER_UNLIMITED"

    @property
    def limit(self) -> int | None:
        """Unique recipients per moving 24 h, None for unlimited."""
        return _LIMITS[self]

    @classmethod
    def parse(cls, value: str | int | None) -> MessagingTier:
        """Read a tier from the Graph API (``TIER_2K``, ``2K``, ``2000``, ``UNLIMITED``...)."""
        if value is None:
            raise ValueError("no messaging limit given")
        if isinstance(value, int) and not isinstance(value, bool):
            for tier, limit in _LIMITS.items():
                if limit == value and tier is not cls.TIER_1K:
                    return tier
            if value == 1000:
                return cls.TIER_1K
            raise ValueError(f"unknown messaging limit {value}")
        text = str(value).strip().upper().replace(",", "")
        if text.isdigit():
            return cls.parse(int(text))
        if not text.startswith("TIER_"):
            text = f"TIER_{text}"
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown messaging limit {value!r}") from None


_LIMITS: dict[MessagingTier, int | None] = {
    MessagingTier.TIER_250: 250,
    MessagingTier.TIER_1K: 1_000,
    MessagingTier.TIER_2K: 2_000,
    MessagingTier.TIER_10K: 10_000,
    MessagingTier.TIER_100K: 100_000,
    MessagingTier.TIER_UNLIMITED: None,
}
