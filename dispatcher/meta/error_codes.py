"""The one table of Meta Cloud API error codes: what each means for the dispatcher.

Every send result is classified here, and nowhere else, into an :class:`ErrorClass` that
decides what the instance actor does: slow down, retry later, pause the number, fail the
message, hold the campaign (its template), stop the number, or hold the whole business
portfolio. Classified by ``(code, subcode)``: 100 is a bad parameter, but 100 with subcode 33
means the number does not exist. Sources: DESIGN.md, "Meta's limits"; Meta's Error codes page
(developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes);
pywa's ``errors.py`` (david-lev/pywa).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class ErrorClass(StrEnum):
    """What a failed send means for the dispatcher."""

    THROTTLE = "throttle"
    """Meta says slow down; retry after the rate has been cut (or the pair cooled down)."""
    TRANSIENT = "transient"
    """Meta or the network hiccuped; retry with backoff."""
    MAINTENANCE = "maintenance"
    """The number is off the platform for a while (131057, e.g. its throughput upgrade):
    pause it about a minute, fail nothing, use no attempt."""
    PERMANENT_MESSAGE = "permanent_message"
    """This message can never succeed; fail it at once, never retry."""
    PERMANENT_TEMPLATE = "permanent_template"
    """The campaign's template cannot be sent (missing, paused, disabled): hold the campaign;
    its recipients are not failed one by one."""
    PERMANENT_INSTANCE = "permanent_instance"
    """The number itself cannot send (token, lock, block); stop it and alert."""
    PORTFOLIO_HOLD = "portfolio_hold"
    """The business portfolio's messaging is held (131064); stop all its numbers and alert."""
    IN_DOUBT = "in_doubt"
    """No answer after the request left (a read timeout): Meta may have accepted it. Never
    retried blindly: its status webhook, or the in-doubt policy, settles it."""


class Throttle(StrEnum):
    """Which limit a throttle error is about: each needs a different reaction."""

    THROUGHPUT = "throughput"
    """Per-number messages per second (130429): cut the number's send rate."""
    API_CALLS = "api_calls"
    """Per-account API call rate (80007, 4): cut the send rate."""
    PAIR = "pair"
    """Same recipient too often (131056): delay that recipient only; the rate is fine."""
    SPAM = "spam"
    """Spam rate limit (131048): cut the rate hard and alert."""


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How to treat one error code."""

    error_class: ErrorClass
    reason: str
    throttle: Throttle | None = None
    max_attempts: int | None = None
    """Cap on send attempts for this error; None means the backoff policy's own cap."""
    known: bool = True
    bad_parameter: bool = False
    """The request itself is wrong: if most of a campaign's first sends fail so, the campaign
    is wrong (hold it rather than burn every recipient)."""
    suppress: bool = False
    """The user stopped marketing messages (131050): suppress them for marketing too."""


UNKNOWN_MAX_ATTEMPTS = 3
"""Unknown codes are retried as transient, but only this many times in all."""

_THROTTLE = ErrorClass.THROTTLE
_TRANSIENT = ErrorClass.TRANSIENT
_MESSAGE = ErrorClass.PERMANENT_MESSAGE
_TEMPLATE = ErrorClass.PERMANENT_TEMPLATE
_INSTANCE = ErrorClass.PERMANENT_INSTANCE


def _bad(reason: str) -> ErrorRule:
    return ErrorRule(_MESSAGE, reason, bad_parameter=True)


ERROR_CODES: dict[int, ErrorRule] = {
    # throttle
    130429: ErrorRule(_THROTTLE, "throughput limit reached", Throttle.THROUGHPUT),
    131056: ErrorRule(_THROTTLE, "pair rate limit hit", Throttle.PAIR),
    80007: ErrorRule(_THROTTLE, "WABA API call rate limit hit", Throttle.API_CALLS),
    4: ErrorRule(_THROTTLE, "application API call rate limit hit", Throttle.API_CALLS),
    131048: ErrorRule(_THROTTLE, "spam rate limit hit", Throttle.SPAM),
    # transient
    1: ErrorRule(_TRANSIENT, "unknown API error"),
    2: ErrorRule(_TRANSIENT, "API service temporarily unavailable"),
    131000: ErrorRule(_TRANSIENT, "something went wrong"),
    131016: ErrorRule(_TRANSIENT, "service unavailable"),
    133004: ErrorRule(_TRANSIENT, "server temporarily unavailable"),
    131057: ErrorRule(ErrorClass.MAINTENANCE, "account in maintenance mode"),
    # permanent for the message
    131026: ErrorRule(_MESSAGE, "message undeliverable"),
    131047: ErrorRule(_MESSAGE, "re-engagement message: 24 h window closed"),
    131049: ErrorRule(_MESSAGE, "not delivered to maintain healthy ecosystem engagement"),
    131051: ErrorRule(_MESSAGE, "unsupported message type"),
    131052: ErrorRule(_MESSAGE, "media download error"),
    131053: ErrorRule(_MESSAGE, "media upload error"),
    131030: ErrorRule(_MESSAGE, "recipient not in allowed list"),
    130472: ErrorRule(_MESSAGE, "user's number is part of an experiment"),
    130497: ErrorRule(_MESSAGE, "business account restricted from messaging users in this country"),
    131062: ErrorRule(_MESSAGE, "BSUID recipient not supported for this message"),
    130403: ErrorRule(_MESSAGE, "the business blocked this user"),
    131021: ErrorRule(_MESSAGE, "sender and recipient are the same number"),
    131050: ErrorRule(_MESSAGE, "user stopped marketing messages", suppress=True),
    100: _bad("invalid parameter"),
    131008: _bad("required parameter is missing"),
    131009: _bad("parameter value is not valid"),
    132000: _bad("number of template parameters does not match"),
    132005: _bad("translated text too long"),
    132008: _bad("template parameter format mismatch"),
    132012: _bad("template parameter format mismatch"),
    # permanent for the template: hold the campaign
    132001: ErrorRule(_TEMPLATE, "template does not exist in this language or is not approved"),
    132007: ErrorRule(_TEMPLATE, "template format character policy violated"),
    132015: ErrorRule(_TEMPLATE, "template paused for low quality"),
    132016: ErrorRule(_TEMPLATE, "template disabled"),
    131063: ErrorRule(_TEMPLATE, "marketing templates disabled for this account"),
    # permanent for the instance
    190: ErrorRule(_INSTANCE, "access token expired or invalid"),
    0: ErrorRule(_INSTANCE, "authentication exception"),
    3: ErrorRule(_INSTANCE, "API method: capability or permission missing"),
    10: ErrorRule(_INSTANCE, "API permission denied"),
    33: ErrorRule(_INSTANCE, "parameter value is not valid: the phone number does not exist"),
    131031: ErrorRule(_INSTANCE, "business account locked"),
    368: ErrorRule(_INSTANCE, "temporarily blocked for policy violations"),
    133010: ErrorRule(_INSTANCE, "phone number not registered"),
    131005: ErrorRule(_INSTANCE, "access denied: permission missing"),
    131037: ErrorRule(_INSTANCE, "number needs an approved display name"),
    131042: ErrorRule(_INSTANCE, "business eligibility: payment issue"),
    131045: ErrorRule(_INSTANCE, "incorrect certificate: number not registered"),
    # the whole portfolio
    131064: ErrorRule(
        ErrorClass.PORTFOLIO_HOLD, "messaging limit reached after template policy violations"
    ),
}
ERROR_CODES.update(
    {code: ErrorRule(_INSTANCE, "API permission denied") for code in range(200, 300)}
)

BY_CODE_AND_SUBCODE: dict[tuple[int, int], ErrorRule] = {
    # "Unsupported post request. Object with ID ... does not exist": the number is gone.
    (100, 33): ErrorRule(_INSTANCE, "the phone number does not exist (100, subcode 33)"),
}
"""Rules that a subcode changes; looked up before :data:`ERROR_CODES`."""

NETWORK_ERROR = ErrorRule(_TRANSIENT, "network error before the request left")
IN_DOUBT_ERROR = ErrorRule(
    ErrorClass.IN_DOUBT, "no answer after the request left (timeout or reset): maybe sent"
)
SERVER_ERROR = ErrorRule(_TRANSIENT, "HTTP 5xx from the Graph API")

_BY_HTTP_STATUS: dict[int, ErrorRule] = {
    400: ErrorRule(_MESSAGE, "HTTP 400 without an error code"),
    401: ErrorRule(_INSTANCE, "HTTP 401 without an error code"),
    403: ErrorRule(_INSTANCE, "HTTP 403 without an error code"),
    408: ErrorRule(_TRANSIENT, "HTTP 408 request timeout"),
    429: ErrorRule(_THROTTLE, "HTTP 429 without an error code", Throttle.THROUGHPUT),
}


class ErrorTable:
    """Classifies send failures; logs each unknown code once per table."""

    def __init__(self, codes: dict[int, ErrorRule] | None = None) -> None:
        self._codes = ERROR_CODES if codes is None else codes
        self._unknown_seen: set[tuple[int | None, int | None]] = set()

    def classify(
        self,
        code: int | None,
        http_status: int | None = None,
        *,
        subcode: int | None = None,
        message: str | None = None,
        details: str | None = None,
    ) -> ErrorRule:
        """The rule for a Graph API error ``(code, subcode)`` (preferred) or, without a code,
        its HTTP status.

        Unknown codes are treated as transient with at most :data:`UNKNOWN_MAX_ATTEMPTS`
        attempts: safe for the number (few retries) and for the message (not dropped at once).
        Each is logged once, with Meta's ``message`` and ``error_data.details``.
        """
        if (
            code is not None
            and subcode is not None
            and (rule := BY_CODE_AND_SUBCODE.get((code, subcode))) is not None
        ):
            return rule
        if code is not None and (rule := self._codes.get(code)) is not None:
            return rule
        if code is None and http_status is not None:
            if http_status >= 500:
                return SERVER_ERROR
            if (rule := _BY_HTTP_STATUS.get(http_status)) is not None:
                return rule
        key = (code, http_status)
        if key not in self._unknown_seen:
            self._unknown_seen.add(key)
            log.warning(
                "unknown Graph API error code=%s subcode=%s http_status=%s: treated as "
                "transient, at most %d attempts; message=%r details=%r",
                code,
                subcode,
                http_status,
                UNKNOWN_MAX_ATTEMPTS,
                message,
                details,
            )
        return ErrorRule(
            _TRANSIENT,
            f"unknown error code {code} (HTTP {http_status})",
            max_attempts=UNKNOWN_MAX_ATTEMPTS,
            known=False,
        )
