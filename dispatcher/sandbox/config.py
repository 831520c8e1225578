"""What the sandbox simulates: numbers, portfolios, templates, webhooks. Loaded from JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dispatcher.meta.tiers import MessagingTier


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumberConfig(_Model):
    """One business phone number."""

    phone_number_id: str
    token: str
    business_id: str
    """The business portfolio whose messaging limit this number shares."""
    display_phone_number: str = "15550000000"
    verified_name: str = "Sandbox Business"
    quality_rating: str = "GREEN"
    throughput_mps: int = Field(default=80, ge=1)
    undeliverable: list[str] = Field(default_factory=list)
    """Recipients whose messages are accepted, then fail with 131026 by webhook."""
    failing: dict[str, int] = Field(default_factory=dict)
    """Recipient -> error code: accepted, then failed by webhook with that code, as Meta
    reports e.g. 131050 (user stopped marketing) asynchronously."""
    waba_id: str | None = None


class PortfolioConfig(_Model):
    """One business portfolio and its messaging limit (unique recipients per moving window)."""

    business_id: str
    messaging_tier: MessagingTier = MessagingTier.TIER_2K


class TemplateConfig(_Model):
    name: str
    language: str = "en_US"
    category: str = "MARKETING"
    """AUTHENTICATION templates need a phone recipient (131062 for a BSUID)."""
    status: Literal["APPROVED", "PAUSED", "DISABLED"] = "APPROVED"
    """PAUSED answers 132015, DISABLED 132016 (Meta's Error codes page)."""


class WebhookConfig(_Model):
    """Status callbacks: where, signed with what, and after which delays."""

    url: str | None = None
    app_secret: str = "sandbox-app-secret"  # noqa: S105 - the simulator's stand-in secret
    sent_delay_s: float = Field(default=0.05, ge=0)
    delivered_delay_s: float = Field(default=0.2, ge=0)
    read_delay_s: float = Field(default=0.5, ge=0)
    read_ratio: float = Field(default=0.5, ge=0, le=1)
    """Share of delivered messages that are also read."""
    read_ratio_by_template: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict
    )
    """Template name -> its own read ratio (others use ``read_ratio``). Whether a message is
    read is the recipient's behaviour, not Meta's: Meta only reports it, with the ``read``
    status (Status messages webhook reference). These knobs simulate recipients who open
    one template more often than another, as an A/B test of templates measures."""
    read_skips_delivered_ratio: float = Field(default=0.0, ge=0, le=1)
    """Share of read messages whose ``delivered`` status is never sent (read implies it)."""
    out_of_order: bool = False
    """Shuffle statuses within and across batches: read may come before delivered."""
    batch_max: int = Field(default=50, ge=1)
    flush_interval_s: float = Field(default=0.05, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    """Quick attempts of a POST (within about a second)..."""
    retry_for_s: float = Field(default=600.0, ge=0)
    """...then retried in the background, less and less often, for this long. Meta retries a
    failed webhook delivery for up to 7 days (Webhooks overview); scaled down so that a test
    run ends. 0: give up after the quick attempts."""
    timeout_s: float = Field(default=5.0, gt=0)


class SandboxConfig(_Model):
    """The whole simulated Meta."""

    numbers: list[NumberConfig] = Field(default_factory=list)
    portfolios: list[PortfolioConfig] = Field(default_factory=list)
    templates: list[TemplateConfig] | None = Field(
        default_factory=lambda: [
            TemplateConfig(name="hello_world"),
            TemplateConfig(name="campaign_promo", language="pt_BR"),
            TemplateConfig(name="otp_code", category="AUTHENTICATION"),
        ]
    )
    """Known templates; None accepts every name."""
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    pair_interval_s: float = Field(default=6.0, gt=0)
    pair_burst: int = Field(default=45, ge=1)
    """Meta tolerates a burst of up to 45 to one customer within one interval, borrowing
    from the future (see :class:`~dispatcher.sandbox.limits.PairLimiter`); above, 131056."""
    messaging_window_s: float = Field(default=24 * 3600.0, gt=0)
    engagement_limited: list[str] = Field(default_factory=list)
    """Recipients at Meta's per-user marketing message limit (Error codes page, 131049:
    "This message was not delivered to maintain healthy ecosystem engagement"; Meta advises
    retrying later, not at once): a MARKETING template to one is accepted, then fails by
    status webhook with 131049, until ``engagement_cooldown_s`` after the first such failure;
    from then on it is delivered."""
    engagement_cooldown_s: float = Field(default=24 * 3600.0, gt=0)
    throughput_window_s: float = Field(default=1.0, gt=0)
    max_records: int = Field(default=200_000, ge=0)
    """Requests kept for ``GET /_sandbox/requests`` (the audit's counters keep everything)."""

    @model_validator(mode="after")
    def _portfolios_cover_numbers(self) -> SandboxConfig:
        known = {p.business_id for p in self.portfolios}
        for number in self.numbers:
            if number.business_id not in known:
                self.portfolios.append(PortfolioConfig(business_id=number.business_id))
                known.add(number.business_id)
        return self


def demo_config(webhook_url: str | None = None) -> SandboxConfig:
    """A few numbers of different throughputs, two sharing a small portfolio."""
    return SandboxConfig(
        numbers=[
            NumberConfig(
                phone_number_id="1001",
                token="sandbox-token-1001",  # noqa: S106 - the simulator\'s made-up token
                business_id="biz-small",
                display_phone_number="15550001001",
                throughput_mps=80,
            ),
            NumberConfig(
                phone_number_id="1002",
                token="sandbox-token-1002",  # noqa: S106 - the simulator\'s made-up token
                business_id="biz-small",
                display_phone_number="15550001002",
                throughput_mps=80,
            ),
            NumberConfig(
                phone_number_id="2001",
                token="sandbox-token-2001",  # noqa: S106 - the simulator\'s made-up token
                business_id="biz-large",
                display_phone_number="15550002001",
                throughput_mps=1000,
            ),
        ],
        portfolios=[
            PortfolioConfig(business_id="biz-small", messaging_tier=MessagingTier.TIER_2K),
            PortfolioConfig(business_id="biz-large", messaging_tier=MessagingTier.TIER_100K),
        ],
        webhook=WebhookConfig(url=webhook_url),
    )
