"""The store's plain data: status enums and the rows the repositories take and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from dispatcher.meta.tiers import MessagingTier


class RecipientStatus(StrEnum):
    """Where one message stands, in precedence order (the SQL enum has the same order).

    ``pending`` waits to be claimed; ``queued`` is claimed into a batch on a Redis stream;
    ``sending`` is in an instance actor's hands; ``sent`` / ``delivered`` / ``read`` come from
    Meta; ``failed`` is final. ``duplicate`` is final from the start: the campaign already has
    a row for the same address, and only that one is sent. ``invalid`` too: a phone that no
    numbering plan allows.
    """

    PENDING = "pending"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    """The user stopped marketing messages for the business: never sent (final)."""
    DUPLICATE = "duplicate"
    """The campaign has a row for the same address earlier: never sent (final)."""
    EXPIRED = "expired"
    """Not sent before the campaign's ``expires_at``: never sent (final)."""
    INVALID = "invalid"
    """A phone of the E.164 shape that no numbering plan allows: never sent (final)."""


WEBHOOK_STATUSES = frozenset(
    {RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.READ, RecipientStatus.FAILED}
)


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    HELD = "held"
    """Meta will not send its template (or its parameters are wrong): nothing is routed,
    nobody is failed; released by the template status webhook or the operator."""
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"


class SendOutcome(StrEnum):
    """What an instance actor reports for one message it tried to send."""

    SENT = "sent"
    """Meta accepted it (a wamid came back)."""
    FAILED = "failed"
    """It can never succeed (permanent for the message, or retries exhausted)."""
    REQUEUE = "requeue"
    """Not sent; give it back to the coordinator (instance stopped, reroute)."""
    IN_DOUBT = "in_doubt"
    """The request left but no answer came (a read timeout): Meta may have accepted it. The
    row stays 'sending', marked in doubt, until its webhook or the in-doubt policy says."""


class InDoubtPolicy(StrEnum):
    """What to do with an in-doubt send when no status webhook came within the bound."""

    RESEND = "resend"
    """Send it again: by then a webhook for an accepted message would most likely have come."""
    FAIL_IN_DOUBT = "fail_in_doubt"
    """Fail it (error message says in doubt): never a duplicate, at the risk of a loss."""


IN_DOUBT_PREFIX = "in doubt:"
IN_DOUBT_FAILURE = f"{IN_DOUBT_PREFIX} the send's outcome is unknown and no status webhook came"
"""The error message of a row failed by :attr:`InDoubtPolicy.FAIL_IN_DOUBT` (no error code:
the last one it had may name a retryable failure of an earlier send). Never retried
automatically (``dispatcher/retry_policy.py``): Meta may have taken the message."""


@dataclass(frozen=True, slots=True)
class Instance:
    """A WhatsApp number, as shown to anyone: never its access token."""

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
    """The WhatsApp Business Account: Meta's webhooks name it as ``entry[].id``."""
    display_phone_number: str | None = None
    """As the Graph API shows it (``15550783881``); quality webhooks name numbers by it."""
    throughput_source: str | None = None
    """``operator`` (given at registration: it wins) or ``graph_api`` (re-read on change)."""


class LimitSource(StrEnum):
    """Where a portfolio's messaging limit came from."""

    OPERATOR = "operator"
    GRAPH_API = "graph_api"
    """``whatsapp_business_manager_messaging_limit`` on a phone-number node."""
    WEBHOOK = "webhook"
    """``business_capability_update`` or ``phone_number_quality_update``."""
    UNREADABLE = "unreadable"
    """The Graph API refused to say (``limit_error``): a limit is assumed, loudly."""


@dataclass(frozen=True, slots=True)
class Portfolio:
    """A business portfolio and its messaging limit (detected, or overridden by an operator)."""

    business_id: str
    detected_tier: MessagingTier | None
    detected_at: datetime | None
    override_tier: MessagingTier | None
    limit_source: LimitSource | None = None
    """How ``detected_tier`` was learnt (or that it could not be); None: not read yet."""
    limit_error: str | None = None
    """The Graph API's answer when the limit could not be read (never a token)."""

    @property
    def source(self) -> LimitSource | None:
        """Where the limit in force comes from; None while nobody has read it yet."""
        if self.override_tier is not None:
            return LimitSource.OPERATOR
        if self.detected_tier is not None and self.limit_source is not LimitSource.UNREADABLE:
            return self.limit_source or LimitSource.GRAPH_API
        return self.limit_source

    def tier_assuming(self, assumed: MessagingTier) -> MessagingTier:
        """The tier in force, with ``assumed`` for a portfolio whose limit is not known."""
        return self.override_tier or self.detected_tier or assumed

    @property
    def tier(self) -> MessagingTier:
        """The tier in force: the override, else the detected one, else a new portfolio's."""
        return self.tier_assuming(MessagingTier.TIER_250)

    @property
    def limit(self) -> int | None:
        """Unique recipients per moving 24 h (None: unlimited), for ``MessagingLimitGate``."""
        return self.tier.limit


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign with its counters, exact with respect to its recipient rows.

    ``total_sent`` counts messages Meta accepted (it stays when one later fails; a failed
    one that is retried leaves it, and ``total_failed``, until its new attempt is settled:
    both count each recipient's current attempt, ``store/attempts.py`` keeps the others);
    ``total_delivered`` counts recipients now delivered or read (read implies delivered);
    ``pending`` / ``queued`` / ``sending`` are the recipients in those statuses now;
    ``total_duplicates`` counts rows never sent because the campaign names their address
    earlier (``total_recipients`` counts them too).
    """

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
    total_duplicates: int
    pending: int
    queued: int
    sending: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    hold_kind: str | None = None
    """Why it is held: ``template`` or ``parameters``."""
    total_suppressed: int = 0
    """Recipients skipped: suppressed for marketing (not sent, not failed)."""
    send_window: dict[str, Any] | None = None
    """Days and hours it may send (``dispatcher/windows.py`` ``SendWindow.from_json``)."""
    expires_at: datetime | None = None
    """Past it, recipients not sent yet end ``expired``."""
    max_per_minute: int | None = None
    """A cap on the messages routed per minute (``dispatcher/engine/rate_cap.py``)."""
    total_expired: int = 0
    retry_policy: dict[str, Any] | None = None
    """Its automatic retries as given (``dispatcher/retry_policy.py``); None: the default."""
    retry_waiting: int = 0
    """Pending recipients that failed before and wait for (or are due for) a retry."""
    total_invalid: int = 0
    """Rows whose phone is in no numbering plan: never sent (counted in total_recipients)."""
    ab_test: dict[str, Any] | None = None
    """A/B variants and their settings (``dispatcher/ab/settings.py``); None: one template."""

    @property
    def in_flight(self) -> int:
        """Claimed into batches and not settled yet."""
        return self.queued + self.sending

    @property
    def settled(self) -> bool:
        """Nothing left to send: no recipient pending or in flight."""
        return self.pending == 0 and self.in_flight == 0


@dataclass(frozen=True, slots=True)
class NewRecipient:
    """One recipient to ingest: a phone (E.164) or a BSUID user id, exactly one."""

    phone: str | None = None
    user_id: str | None = None
    variables: dict[str, Any] | list[Any] | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one ingest recorded: ``rows`` in all, of which ``duplicates`` name an address
    the campaign already had (or had earlier in the same input) and ``invalid`` a phone in no
    numbering plan: neither will be sent."""

    rows: int
    duplicates: int
    invalid: int = 0

    @property
    def unique(self) -> int:
        """The rows that will be sent."""
        return self.rows - self.duplicates - self.invalid


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    """What an instance actor needs to send one message of a batch."""

    id: int
    phone: str | None
    user_id: str | None
    variables: dict[str, Any] | list[Any] | None
    attempts: int
    variant: int | None = None
    """Which A/B variant's template it gets (None: the campaign's one template)."""
    retries: int = 0
    """Automatic retries so far: the attempt its callback tag names."""

    @property
    def address(self) -> str:
        """The phone or the BSUID: the key of the pair-rate guard and the messaging limit."""
        return self.phone or self.user_id or ""


@dataclass(frozen=True, slots=True)
class Claim:
    """Recipients moved pending -> queued together; ``claim_id`` guards them (see mark_sending)."""

    claim_id: int
    campaign_id: UUID
    recipients: list[ClaimedRecipient]


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient row as the API and webhooks see it."""

    id: int
    campaign_id: UUID
    phone: str | None
    user_id: str | None
    variables: dict[str, Any] | list[Any] | None
    status: RecipientStatus
    claim_id: int | None
    attempts: int
    instance_id: UUID | None
    wamid: str | None
    error_code: int | None
    error_message: str | None
    error_details: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    sending_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SendResult:
    """One settled send attempt, reported by an instance actor (written in bulk)."""

    recipient_id: int
    outcome: SendOutcome
    at: datetime
    instance_id: UUID | None = None
    attempts: int = 1
    wamid: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    error_details: str | None = None
    """Why, in detail (for a failure the dispatcher decided itself, e.g. a limit broken)."""
    retries: int | None = None
    """The row's automatic retries when it was sent: a result of an earlier attempt (retried
    since) changes nothing. None (a batch routed before it was carried): the wamid decides."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One status from Meta's webhook, matched by ``wamid``, else by ``recipient_id``
    (read from our verified tag in ``biz_opaque_callback_data``, never from bare data);
    never by phone."""

    status: RecipientStatus
    at: datetime
    wamid: str | None = None
    recipient_id: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    error_details: str | None = None
    """``errors[].error_data.details``: Meta's own words on why it failed."""
    attempt: int | None = None
    """The attempt our tag names (the row's ``retries`` when sent); None: a first-format tag
    or none."""


@dataclass(frozen=True, slots=True)
class HandOver:
    """What :meth:`Recipients.hand_over` did with a batch's rows for one sender."""

    fenced: bool
    """The sender's epoch is not its instance's current one: nothing moved."""
    moved: list[int]
    """``queued`` -> ``sending`` by this sender: send these and only these."""
    in_doubt: list[int]
    """Already ``sending`` by another (dead or replaced) sender: marked in doubt, not sent."""
    already_mine: list[int] = field(default_factory=list)
    """Already ``sending`` by this very sender (same instance and epoch), not in doubt: left
    alone. Only the sender knows whether it has them in hand (the same batch read twice) or
    not (its own earlier hand-over committed, but the answer was lost)."""


@dataclass(frozen=True, slots=True)
class LeaseState:
    """The coordinator lease as the database has it."""

    holder: str
    epoch: int
    expires_in_s: float
    """Negative once expired."""
