"""The API's edge: pydantic models of what the handlers accept and return.

The OpenAPI document (api/openapi.py) is generated from these same models, so it cannot drift
from what the handlers validate. Inputs forbid unknown fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.schema_base import Input as Input  # re-exported: api.suppressions builds on it
from api.schema_base import TemplateIn as TemplateIn
from api.variant_schemas import AutoWinnerIn, Confidence, VariantIn
from dispatcher.ab.settings import MAX_VARIANTS, MIN_VARIANTS, default_label
from dispatcher.meta.messages import BSUID_RE, E164_RE
from dispatcher.meta.tiers import MessagingTier
from dispatcher.retry_policy import DEFAULT_POLICY, RetryPolicy
from dispatcher.scheduling import MAX_SCHEDULE_AHEAD, check_expiry, schedule_start
from dispatcher.store.models import (
    CampaignStatus,
    InstanceStatus,
    LimitSource,
    NewRecipient,
    RecipientStatus,
)
from dispatcher.window_settings import MAX_PER_MINUTE, SendWindowIn

MAX_INLINE_RECIPIENTS = 10_000
"""More than this per ``POST /campaigns``: append them with ``POST /campaigns/{id}/recipients``."""
MAX_VARIABLES = 50
MAX_INSTANCES_PER_CAMPAIGN = 100
MAX_PAGE = 1_000

Phone = Annotated[str, StringConstraints(pattern=E164_RE.pattern)]
Bsuid = Annotated[str, StringConstraints(pattern=BSUID_RE.pattern)]
Text = Annotated[str, StringConstraints(max_length=1_024)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=128)]
UINT64_MAX = 2**64 - 1


def _stream_id(value: str) -> str:
    if any(int(part) > UINT64_MAX for part in value.split("-")):
        raise ValueError("is past a Redis stream id's range (two 64-bit numbers)")
    return value


JobId = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$"), AfterValidator(_stream_id)
]
"""A Redis stream entry id: milliseconds and a sequence number, each an unsigned 64-bit."""
Variables = (
    Annotated[dict[Key, Text], Field(max_length=MAX_VARIABLES)]
    | Annotated[list[Text], Field(max_length=MAX_VARIABLES)]
)


class Query(BaseModel):
    """A query string: unknown parameters are ignored (cache busters, tracing)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# -- instances ----------------------------------------------------------------------------


class InstanceIn(Input):
    """``POST /instances``: register (or re-register) a WhatsApp number."""

    phone_number_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    # Printable ASCII without spaces: it goes into an HTTP header as it is.
    access_token: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,4096}$")]
    business_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    messaging_tier: (
        Annotated[str, StringConstraints(min_length=1, max_length=32)]
        | Annotated[int, Field(gt=0)]
        | None
    ) = Field(
        default=None,
        description="The portfolio's messaging limit: TIER_250, TIER_2K, TIER_10K, TIER_100K, "
        "TIER_UNLIMITED (or 2K, 2000, UNLIMITED...); overrides the detected one.",
    )
    throughput_mps: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="Messages per second; detected from the Graph API when absent."
    )
    waba_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")] | None = Field(
        default=None,
        description="The number's WhatsApp Business Account id: Meta's webhooks name it.",
    )

    @field_validator("messaging_tier")
    @classmethod
    def _known_tier(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            MessagingTier.parse(value)  # a ValueError becomes a 422 naming the field
        return value

    def tier(self) -> MessagingTier | None:
        return None if self.messaging_tier is None else MessagingTier.parse(self.messaging_tier)


class InstanceOut(BaseModel):
    """A number as anyone may see it: never its access token."""

    id: UUID
    phone_number_id: str
    business_id: str
    name: str
    messaging_tier: MessagingTier | None
    detected_tier: MessagingTier | None
    tier_detected_at: datetime | None
    throughput_mps: int | None
    status: InstanceStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    waba_id: str | None = None
    display_phone_number: str | None = Field(
        default=None, description="As the Graph API reports it (digits only)."
    )


class PortfolioLimitOut(BaseModel):
    """A portfolio's messaging limit and where it came from."""

    business_id: str
    tier: MessagingTier | None = Field(description="null: not read yet, or unreadable")
    limit_source: LimitSource | None = Field(
        description="operator, graph_api, webhook, or unreadable (see limit_error); "
        "null while not read yet"
    )
    limit_error: str | None = Field(description="The Graph API's error when unreadable")


class InstanceDetail(InstanceOut):
    stats: dict[str, Any] | None = Field(
        description="The instance actor's live stats (limiter, breaker, counters); null when "
        "it is not running or did not answer in time."
    )
    portfolio: PortfolioLimitOut | None = None


class InstanceList(BaseModel):
    items: list[InstanceOut]


class InstancesQuery(Query):
    business_id: str | None = None
    status: InstanceStatus | None = None


# -- campaigns ----------------------------------------------------------------------------


class RecipientIn(Input):
    """One recipient: a ``phone`` (E.164) or a ``user_id`` (BSUID), exactly one."""

    phone: Phone | None = None
    user_id: Bsuid | None = None
    variables: Variables | None = Field(
        default=None,
        description="A list fills the body's {{1}}, {{2}}... in order; an object fills "
        "{{name}} placeholders.",
    )

    @model_validator(mode="after")
    def _one_address(self) -> RecipientIn:
        if (self.phone is None) == (self.user_id is None):
            raise ValueError("give exactly one of phone and user_id")
        return self

    def new(self) -> NewRecipient:
        return NewRecipient(phone=self.phone, user_id=self.user_id, variables=self.variables)


class CampaignIn(Input):
    """``POST /campaigns``: a draft (or, with ``scheduled_at``, a scheduled) campaign."""

    name: Name
    instance_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_INSTANCES_PER_CAMPAIGN)]
    variants: (
        Annotated[list[VariantIn], Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS)] | None
    ) = Field(
        default=None,
        description="An A/B test of templates instead of one template: each recipient gets "
        "one variant, by weight, the same on every retry (README, A/B variants).",
    )
    confidence: Confidence | None = Field(
        default=None, description="Of the variants' read-rate intervals (default 0.95)."
    )
    auto_winner: AutoWinnerIn | None = None
    # After variants: its check sees them (a 422 then names template, as before variants).
    template: TemplateIn | None = Field(
        default=None, validate_default=True, description="Give this or variants."
    )
    recipients: Annotated[list[RecipientIn], Field(max_length=MAX_INLINE_RECIPIENTS)] = Field(
        default_factory=list,
        description=f"At most {MAX_INLINE_RECIPIENTS:,} inline; append more with "
        "POST /campaigns/{id}/recipients.",
    )
    scheduled_at: AwareDatetime | None = Field(
        default=None,
        description="When to start, with its time zone; not in the past, at most "
        f"{MAX_SCHEDULE_AHEAD.days} days ahead; kept in UTC. Absent: a draft.",
    )
    retry_policy: RetryPolicy | None = Field(
        default=None,
        description='Automatic retries of failed messages (README, "Automatic retry"). '
        "Absent: the default, 131049 once after 24 h and transient exhaustion twice after "
        '5 minutes; {"rules": []}: none. Permanent codes (131026, ...) are refused.',
    )

    send_window: SendWindowIn | None = Field(
        default=None,
        description="Days and hours it may send, in its time zone or each recipient's "
        '(README, "Send windows"). Absent: any time.',
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="Recipients not sent by then end with status expired, and the campaign "
        "completes. After scheduled_at and now.",
    )
    max_per_minute: Annotated[int, Field(ge=1, le=MAX_PER_MINUTE)] | None = Field(
        default=None,
        description="At most this many messages a minute, whatever its numbers' throughput.",
    )

    @field_validator("template")
    @classmethod
    def _template_or_variants(
        cls, value: TemplateIn | None, info: ValidationInfo
    ) -> TemplateIn | None:
        if "variants" not in info.data:  # the variants themselves were invalid: said already
            return value
        if (value is None) == (info.data["variants"] is None):
            raise ValueError("give either template or variants (2 or more), not both")
        return value

    @field_validator("variants")
    @classmethod
    def _distinct_labels(cls, value: list[VariantIn] | None) -> list[VariantIn] | None:
        if value is not None:
            labels = [v.label or default_label(i) for i, v in enumerate(value)]
            if len(set(labels)) != len(labels):
                raise ValueError("variant labels must be distinct")
        return value

    @field_validator("confidence", "auto_winner")
    @classmethod
    def _only_with_variants(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and "variants" in info.data and info.data["variants"] is None:
            raise ValueError("only for a campaign of variants")
        return value

    @field_validator("scheduled_at")
    @classmethod
    def _startable(cls, value: datetime | None) -> datetime | None:
        return None if value is None else schedule_start(value, datetime.now(UTC))

    @field_validator("expires_at")
    @classmethod
    def _expirable(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        starts = info.data.get("scheduled_at")
        return None if value is None else check_expiry(value, starts, datetime.now(UTC))

    @field_validator("instance_ids")
    @classmethod
    def _distinct(cls, value: list[UUID]) -> list[UUID]:
        if len(set(value)) != len(value):
            raise ValueError("instance_ids must be distinct")
        return value


class CampaignOut(BaseModel):
    """A campaign with its counters (exact with respect to its recipients)."""

    id: UUID
    name: str
    status: CampaignStatus
    status_reason: str | None
    template: dict[str, Any]
    instance_ids: list[UUID]
    scheduled_at: datetime | None
    total_recipients: int
    total_sent: int
    total_delivered: int
    total_read: int
    total_failed: int
    total_duplicates: int = Field(
        description="Rows not sent because the campaign names their phone or BSUID earlier "
        "(counted in total_recipients; listed with status=duplicate)."
    )
    pending: int
    queued: int
    sending: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    hold_kind: str | None = None
    """When held: ``template`` (released by the template status webhook) or ``parameters``."""
    total_suppressed: int = 0
    """Recipients skipped: suppressed for marketing (never sent, not failed)."""
    total_invalid: int = Field(
        default=0,
        description="Rows whose phone has the E.164 shape but is in no numbering plan: never "
        "sent (counted in total_recipients; listed with status=invalid).",
    )
    send_window: dict[str, Any] | None = None
    expires_at: datetime | None = None
    max_per_minute: int | None = None
    total_expired: int = Field(
        default=0, description="Recipients not sent before expires_at (status expired)."
    )
    waiting: int = Field(
        default=0,
        description="Pending recipients that may not be sent now: outside their send "
        "window (or waiting for a retry's delay).",
    )
    next_window_at: datetime | None = Field(
        default=None, description="When the first of those waiting may be sent."
    )
    retry_policy: RetryPolicy | dict[str, Any] = Field(
        description="The retry policy in force (the default when none was given). A stored "
        "policy that a later release no longer accepts is shown as stored; it retries "
        "nothing."
    )
    retry_waiting: int = Field(
        default=0,
        description="Pending recipients that failed before and wait for their retry's delay "
        "(counted in pending too).",
    )

    @field_validator("retry_policy", mode="before")
    @classmethod
    def _stored_policy(cls, value: Any) -> Any:
        # Read leniently: the policy was validated when the campaign was created; a rule
        # tightened since must not turn every read of the campaign into a 500.
        if value is None:
            return DEFAULT_POLICY
        if isinstance(value, RetryPolicy):
            return value
        try:
            return RetryPolicy.model_validate(value)
        except ValidationError:
            return dict(value) if isinstance(value, dict) else {"stored": value}

    ab_test: dict[str, Any] | None = Field(
        default=None,
        description="Its A/B variants and settings (template is then the first variant's); "
        "their counters: GET /campaigns/{id}/variants.",
    )


_STATUSES = frozenset(status.value for status in CampaignStatus)
_STATUS = "|".join(status.value for status in CampaignStatus)


class CampaignsQuery(Query):
    status: Annotated[str, Field(pattern=f"^({_STATUS})(,({_STATUS}))*$")] | None = Field(
        default=None,
        description="One status or several, comma-separated (running,held,paused,scheduled).",
    )
    after: UUID | None = Field(
        default=None, description="The last id of the previous page (keyset pagination)."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100

    @field_validator("status", mode="before")
    @classmethod
    def _known(cls, value: object) -> object:
        if isinstance(value, str):
            for name in value.split(","):
                if name not in _STATUSES:
                    raise ValueError(
                        f"unknown status {name!r}: one of {_STATUS.replace('|', ', ')}"
                    )
        return value

    @property
    def statuses(self) -> tuple[CampaignStatus, ...]:
        return () if self.status is None else tuple(map(CampaignStatus, self.status.split(",")))


class CampaignPage(BaseModel):
    items: list[CampaignOut] = Field(description="Newest first.")
    next_after: UUID | None = Field(description="Pass as ``after`` for the next page; null: done.")


class RecipientOut(BaseModel):
    id: int
    phone: str | None
    user_id: str | None
    variables: dict[str, Any] | list[Any] | None
    status: RecipientStatus
    attempts: int
    instance_id: UUID | None
    wamid: str | None
    error_code: int | None
    error_message: str | None
    error_details: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None


class RecipientsQuery(Query):
    status: RecipientStatus | None = None
    after: Annotated[int, Field(ge=0, le=2**63 - 1)] = Field(
        default=0, description="The last id of the previous page (keyset pagination)."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 100


class RecipientPage(BaseModel):
    items: list[RecipientOut]
    next_after: int | None = Field(description="Pass as ``after`` for the next page; null: done.")


class Appended(BaseModel):
    added: int = Field(description="Rows recorded by this append, duplicates included.")
    duplicates: int = Field(
        description="Of those, rows whose phone or BSUID the campaign already had (or that "
        "came earlier in this upload): recorded as status duplicate, never sent."
    )
    invalid: int = Field(
        default=0,
        description="Of those, rows whose phone is in no numbering plan: recorded as status "
        "invalid, never sent (not counted as duplicates).",
    )
    total_recipients: int


# -- queues -------------------------------------------------------------------------------


class QueueStatsQuery(Query):
    instanceId: UUID | None = None  # the contract's spelling


class QueueActionIn(Input):
    action: Literal["retry_dlq", "clear", "recover_stuck"]
    queue: Literal["campaigns", "webhooks"]
    jobId: JobId | None = Field(  # the contract's spelling
        default=None, description="retry_dlq: one dead letter (its id), else all of them."
    )


class QueueDepths(BaseModel):
    pending: int
    processing: int
    dlq: int
    instances: dict[str, dict[str, int]] = Field(default_factory=dict)


class QueueStatsOut(BaseModel):
    campaigns: QueueDepths
    webhooks: QueueDepths
    instances: dict[str, dict[str, Any]]
    portfolios: dict[str, dict[str, Any]]
    routing: dict[str, Any]


class QueueActionOut(BaseModel):
    action: str
    queue: str
    result: dict[str, Any]


# -- health and errors --------------------------------------------------------------------


class WebhookQuery(Query):
    """Meta's verification handshake."""

    mode: str | None = Field(default=None, alias="hub.mode", description="subscribe")
    verify_token: str | None = Field(default=None, alias="hub.verify_token")
    challenge: str | None = Field(
        default=None, alias="hub.challenge", description="Echoed when the token matches."
    )


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorBody
