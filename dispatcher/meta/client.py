"""Async client for the WhatsApp Cloud API (or any simulator at ``META_GRAPH_URL``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from dispatcher.meta.error_codes import IN_DOUBT_ERROR, NETWORK_ERROR, ErrorTable
from dispatcher.meta.messages import (
    MetaError,
    SendResult,
    Template,
    Variables,
    parse_error,
    parse_send_response,
    template_body,
)
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.transport import (
    PoolConfig,
    Transport,
    TransportError,
    TransportKind,
    make_transport,
)

log = logging.getLogger(__name__)

DEFAULT_TRANSPORT = TransportKind.AIOHTTP
# Meta's Messaging Limits page (2026): the portfolio's limit is served on the PHONE NUMBER
# node; the business node has no such field (Graph error 100). ``messaging_limit_tier`` is the
# deprecated per-number field, answered only up to v23.0.
LIMIT_FIELD = "whatsapp_business_manager_messaging_limit"
LEGACY_TIER_FIELD = "messaging_limit_tier"
PHONE_FIELDS = f"{LIMIT_FIELD},throughput,display_phone_number,verified_name,quality_rating"
LEGACY_TIER_LAST_VERSION = (23, 0)


@dataclass(frozen=True, slots=True)
class PhoneNumberInfo:
    """What the Graph API says about a business phone number."""

    phone_number_id: str
    verified_name: str | None
    quality_rating: str | None
    throughput_mps: int | None
    """Messages per second; Meta reports a level (``STANDARD`` = 80, ``HIGH`` = 1,000)."""
    messaging_tier: MessagingTier | None
    """The portfolio's messaging limit as this number's node reports it; None if it did not
    say (then ``limit_error`` says why)."""
    display_phone_number: str | None = None
    limit_error: str | None = None


THROUGHPUT_LEVELS = {"STANDARD": 80, "HIGH": 1_000, "NOT_APPLICABLE": None}


class MetaClient:
    """Sends template messages and reads number and portfolio facts.

    ``send_template`` never raises for Meta's or the network's failures: it returns a
    :class:`~dispatcher.meta.messages.MetaError` carrying the error's class. One client
    (one connection pool) per instance actor.
    """

    def __init__(
        self,
        graph_url: str,
        api_version: str,
        *,
        transport: Transport | None = None,
        transport_kind: TransportKind = DEFAULT_TRANSPORT,
        pool: PoolConfig | None = None,
        error_table: ErrorTable | None = None,
    ) -> None:
        self._base = f"{graph_url.rstrip('/')}/{api_version.strip('/')}"
        self._legacy_tier = _version(api_version) <= LEGACY_TIER_LAST_VERSION
        self._transport = transport or make_transport(transport_kind, pool)
        self._errors = error_table or ErrorTable()

    async def send_template(
        self,
        phone_number_id: str,
        token: str,
        recipient: str,
        template: Template,
        variables: Variables = None,
        callback_data: str | None = None,
    ) -> SendResult:
        """Send one template message; the wamid or the classified error."""
        body = template_body(recipient, template, variables, callback_data)
        return await self.send_raw(phone_number_id, token, body)

    async def send_raw(self, phone_number_id: str, token: str, body: bytes) -> SendResult:
        """Send a prepared JSON body (see :func:`~dispatcher.meta.messages.template_body`)."""
        url = f"{self._base}/{phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            status, answer = await self._transport.request("POST", url, headers, body)
        except TransportError as exc:
            # A timeout after the request left is in doubt, not transient: resending it
            # blindly could deliver the message twice.
            rule = IN_DOUBT_ERROR if exc.in_doubt else NETWORK_ERROR
            return MetaError(rule, code=None, message=str(exc))
        return parse_send_response(status, answer, self._errors)

    async def phone_number(self, phone_number_id: str, token: str) -> PhoneNumberInfo:
        """``GET /{phone_number_id}``: the portfolio's limit, throughput, display number,
        quality and name, in one call; raises MetaError when the node cannot be read."""
        fields = PHONE_FIELDS + (f",{LEGACY_TIER_FIELD}" if self._legacy_tier else "")
        data = await self._get(phone_number_id, token, fields)
        throughput = data.get("throughput")
        level = throughput.get("level") if isinstance(throughput, dict) else throughput
        tier = _tier_or_none(data.get(LIMIT_FIELD))
        if tier is None and self._legacy_tier:
            tier = _tier_or_none(data.get(LEGACY_TIER_FIELD))
        display = data.get("display_phone_number")
        return PhoneNumberInfo(
            phone_number_id=str(data.get("id", phone_number_id)),
            verified_name=data.get("verified_name"),
            quality_rating=data.get("quality_rating"),
            throughput_mps=THROUGHPUT_LEVELS.get(level) if isinstance(level, str) else None,
            messaging_tier=tier,
            display_phone_number=display if isinstance(display, str) else None,
            limit_error=None
            if tier is not None
            else f"{LIMIT_FIELD} missing or unknown: {data.get(LIMIT_FIELD)!r}"[:300],
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _get(self, node: str, token: str, fields: str) -> dict[str, Any]:
        url = f"{self._base}/{node}?fields={fields}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            status, answer = await self._transport.request("GET", url, headers)
        except TransportError as exc:
            raise MetaError(NETWORK_ERROR, code=None, message=str(exc)) from None
        if not 200 <= status < 300:
            raise parse_error(status, answer, self._errors)
        try:
            data = orjson.loads(answer)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise MetaError(
                self._errors.classify(None, 502), code=None, http_status=status, message="not JSON"
            )
        return data


def _tier_or_none(value: object) -> MessagingTier | None:
    """A tier from what the Graph API wrote: ``"TIER_2K"``, ``2000``, or a dict around one
    (``{"messaging_limit": "TIER_2K"}``, ``{"tier": ...}``, ``{"value": ...}``)."""
    if isinstance(value, dict):
        for key in ("messaging_limit", "tier", "value", "limit", "current_limit"):
            if value.get(key) is not None:
                return _tier_or_none(value[key])
        return None
    if value is None or isinstance(value, bool):
        return None
    if value in (-1, "-1"):  # the legacy per-number field's "unlimited"
        return MessagingTier.TIER_UNLIMITED
    try:
        return MessagingTier.parse(value if isinstance(value, int | str) else str(value))
    except ValueError:
        log.warning("unknown messaging limit %r from the Graph API", value)
        return None


def parse_limit(value: object) -> MessagingTier | None:
    """A messaging limit as Meta writes it anywhere (Graph API fields, webhooks)."""
    return _tier_or_none(value)


def _version(api_version: str) -> tuple[int, int]:
    """``v23.0`` -> (23, 0); an unreadable version counts as current (no legacy field)."""
    text = api_version.strip("/").lower().removeprefix("v")
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 10**6, 0
