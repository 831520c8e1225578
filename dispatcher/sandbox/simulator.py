"""The simulated Cloud API's decisions: validation, limits, faults, in Meta's words and shapes.

No HTTP here: :meth:`Simulator.send` takes what a request carried and returns the status and
JSON body to answer with. The app (``app.py``) wires it to Starlette.
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher.meta.messages import BSUID_RE
from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.audit import Audit
from dispatcher.sandbox.config import NumberConfig, PortfolioConfig, SandboxConfig
from dispatcher.sandbox.limits import PairLimiter, SlidingWindowCounter, UniqueRecipientWindow
from dispatcher.sandbox.webhooks import Accepted, WebhookSender

ENGAGEMENT_CODE = 131049
PHONE_RE = re.compile(r"^\+?[1-9][0-9]{6,14}$")
HIGH_THROUGHPUT_MPS = 1_000
"""Throughput page, "Higher throughput": an upgraded number sends up to 1,000 msg/s and its
node reports ``throughput.level`` HIGH; others report STANDARD."""
LIMIT_FIELD = "whatsapp_business_manager_messaging_limit"
LEGACY_TIER_FIELD = "messaging_limit_tier"
LEGACY_TIER_LAST_VERSION = (23, 0)
"""Messaging Limits page: ``messaging_limit_tier`` is deprecated and answered only up to
v23.0; the portfolio's limit is ``whatsapp_business_manager_messaging_limit`` on the PHONE
NUMBER node (the business node has no such field)."""

JsonObject = dict[str, Any]
Answer = tuple[int, JsonObject]


@dataclass(frozen=True, slots=True)
class ParsedSend:
    recipient: str
    """E.164 with its ``+``, or a BSUID."""
    template: str
    callback_data: str | None


@dataclass(slots=True)
class Faults:
    """Faults injected at run time through ``POST /_sandbox/faults``."""

    latency_s: float = 0.0
    error_5xx_ratio: float = 0.0
    timeout_ratio: float = 0.0
    timeout_s: float = 30.0
    """A timed-out request hangs this long (longer than any sane client timeout), then 504."""
    accept_timeout_ratio: float = 0.0
    """This share of sends is ACCEPTED (recorded, its status webhooks scheduled) and then
    the answer hangs ``timeout_s``: the client times out not knowing Meta took it. Meta's
    status webhooks report every message it accepted whatever became of the HTTP answer
    (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components#statuses-object);
    any HTTP API can time out after the server acted, and a client must not resend blindly."""
    throttle_burst: int = 0
    """The next this-many sends answer 130429 whatever the rate."""
    expired_tokens: set[str] = field(default_factory=set)
    """Numbers whose token has expired: every call answers 190."""


def meta_error(
    code: int,
    message: str,
    details: str | None = None,
    *,
    subcode: int | None = None,
    error_type: str = "OAuthException",
) -> JsonObject:
    """Meta's error body: ``{"error": {message, type, code, error_data, fbtrace_id}}``."""
    error: JsonObject = {
        "message": f"(#{code}) {message}",
        "type": error_type,
        "code": code,
        "fbtrace_id": "A" + base64.urlsafe_b64encode(os.urandom(15)).decode(),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


class Simulator:
    """One simulated Meta: its numbers, portfolios, limits, faults and audit."""

    def __init__(
        self,
        config: SandboxConfig,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._base_clock = clock
        self.clock_offset_s = 0.0
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - simulated faults, not secrets
        self._wamid_prefix = base64.urlsafe_b64encode(os.urandom(6)).decode()
        self._wamid_seq = itertools.count(1)
        self.faults = Faults()
        self.configure(config)

    def now(self) -> float:
        """The sandbox's clock: monotonic, plus whatever tests advanced it by."""
        return self._base_clock() + self.clock_offset_s

    def wall(self) -> float:
        return self._wall_clock() + self.clock_offset_s

    def configure(self, config: SandboxConfig) -> None:
        """Start over with ``config``: limits, audit and scheduled webhooks are reset."""
        self.config = config
        self.numbers = {n.phone_number_id: n for n in config.numbers}
        self.portfolios = {p.business_id: p for p in config.portfolios}
        self.templates = None if config.templates is None else {t.name: t for t in config.templates}
        self.audit = Audit(config.max_records, config.throughput_window_s)
        self._throughput = {
            pid: SlidingWindowCounter(config.throughput_window_s) for pid in self.numbers
        }
        self._pairs = {
            pid: PairLimiter(config.pair_interval_s, config.pair_burst) for pid in self.numbers
        }
        self._unique = {
            bid: UniqueRecipientWindow(config.messaging_window_s) for bid in self.portfolios
        }
        self.faults = Faults()
        self._engagement_since: dict[str, float] = {}
        """Limited recipient -> sandbox time of its first 131049."""
        self.upgrading: dict[str, float] = {}
        """Numbers in a throughput upgrade: maintenance until this sandbox-clock time."""
        old = getattr(self, "webhooks", None)
        if old is not None:
            old.clear()
            old.config = config.webhook
            self.webhooks = old
        else:
            self.webhooks = WebhookSender(
                config.webhook, self.audit, self.now, self.wall, self._rng
            )
        self.webhooks._audit = self.audit

    # -- the Graph API ----------------------------------------------------------------

    def pre_send_fault(self) -> tuple[str, float] | None:
        """A fault that hits before the request is looked at: ``("timeout"|"5xx", seconds)``."""
        faults = self.faults
        if faults.timeout_ratio and self._rng.random() < faults.timeout_ratio:
            self.audit.faults_injected["timeout"] += 1
            return "timeout", faults.timeout_s
        if faults.error_5xx_ratio and self._rng.random() < faults.error_5xx_ratio:
            self.audit.faults_injected["5xx"] += 1
            return "5xx", 0.0
        return None

    def answer_hangs(self) -> bool:
        """Whether this accepted send's answer is lost (``accept_timeout_ratio``).

        Models a response lost on the way back: Meta has taken the message (it goes out and
        its status webhooks follow, `webhooks/components` "statuses"), but the client sees
        only a timeout, then a gateway error (code 2, "Temporary due to downtime or due to
        being overloaded", `cloud-api/support/error-codes`). The send endpoint takes no
        idempotency key, so only the webhook or ``biz_opaque_callback_data`` can tell the
        client the message went out.
        https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
        https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
        """
        ratio = self.faults.accept_timeout_ratio
        if ratio and self._rng.random() < ratio:
            self.audit.faults_injected["accept_timeout"] += 1
            return True
        return False

    def send(self, phone_number_id: str, authorization: str | None, body: bytes) -> Answer:
        """Answer ``POST /{version}/{phone_number_id}/messages``."""
        now = self.now()
        number = self.numbers.get(phone_number_id)
        if number is None:
            return 400, meta_error(
                100,
                f"Unsupported post request. Object with ID '{phone_number_id}' does not exist",
                subcode=33,
                error_type="GraphMethodException",
            )
        self.audit.received(phone_number_id, now)
        if (denied := self._check_token(number, authorization)) is not None:
            return self._refuse(number, "", body, now, denied)
        if (maintenance := self._maintenance(phone_number_id)) is not None:
            return self._refuse(number, "", body, now, maintenance)
        parsed = self._parse(body)
        if not isinstance(parsed, ParsedSend):
            return self._refuse(number, "", body, now, parsed)
        recipient, template_name, callback_data = (
            parsed.recipient,
            parsed.template,
            parsed.callback_data,
        )
        if (bad := self._check_template(template_name, recipient)) is not None:
            return self._refuse(number, recipient, body, now, bad)
        if self.faults.throttle_burst > 0:
            self.faults.throttle_burst -= 1
            self.audit.faults_injected["throttle"] += 1
            return self._refuse(number, recipient, body, now, self._throughput_error(number))
        if self._throughput[phone_number_id].count(now) >= number.throughput_mps:
            self.audit.number(phone_number_id).throughput_violations += 1
            return self._refuse(number, recipient, body, now, self._throughput_error(number))
        if not self._pairs[phone_number_id].allow(recipient, now):
            self.audit.number(phone_number_id).pair_violations += 1
            return self._refuse(
                number,
                recipient,
                body,
                now,
                (
                    400,
                    meta_error(
                        131056,
                        "(Business Account, Consumer Account) pair rate limit hit",
                        "Message failed to send because there were too many messages sent from "
                        "this phone number to the same phone number in a short period of time.",
                    ),
                ),
            )
        self._throughput[phone_number_id].add(now)
        wamid = self._wamid()
        fail_code = self._tier_check(number, recipient, now)
        if fail_code is None and recipient in number.undeliverable:
            fail_code = 131026
        if fail_code is None:
            fail_code = number.failing.get(recipient)
        if fail_code is None:
            fail_code = self._engagement_check(recipient, template_name, now)
        self.audit.accepted(phone_number_id, callback_data)
        self.audit.answered(phone_number_id, recipient, body, 200, now, template_name)
        self.webhooks.schedule(
            Accepted(number, wamid, recipient, callback_data, fail_code, template_name)
        )
        contact: JsonObject = {"input": recipient}
        if BSUID_RE.match(recipient):
            contact["user_id"] = recipient
        else:
            contact["wa_id"] = recipient.lstrip("+")
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }

    def other_sender(
        self, phone_number_id: str, callback_data: list[str], fail_code: int | None = None
    ) -> list[str]:
        """Another app sends on this number (Meta sends its statuses to every app subscribed
        to the WABA, ours included): one message per ``callback_data``, statuses scheduled
        like ours. Not counted in the audit: these are not the dispatcher's sends."""
        number = self.numbers[phone_number_id]
        wamids = []
        for data in callback_data:
            wamid = self._wamid()
            recipient = f"+1555{self._rng.randrange(10**7):07d}"
            self.webhooks.schedule(Accepted(number, wamid, recipient, data, fail_code))
            wamids.append(wamid)
        return wamids

    def _engagement_check(self, recipient: str, template_name: str, now: float) -> int | None:
        """Meta's per-user marketing limit (131049 by webhook, Error codes page): a limited
        recipient's marketing messages fail until the cool-down after the first failure."""
        if recipient not in self.config.engagement_limited:
            return None
        template = None if self.templates is None else self.templates.get(template_name)
        if template is not None and template.category != "MARKETING":
            return None
        since = self._engagement_since.setdefault(recipient, now)
        if now - since >= self.config.engagement_cooldown_s:
            return None
        self.audit.engagement_failures += 1
        return ENGAGEMENT_CODE

    def _tier_check(self, number: NumberConfig, recipient: str, now: float) -> int | None:
        """Meta documents no send error for a reached messaging limit: the call succeeds and
        the message then fails by webhook (131049 here). The audit counts it as a violation."""
        window = self._unique[number.business_id]
        limit = self.portfolios[number.business_id].messaging_tier.limit
        if window.contains(recipient, now) or limit is None or window.unique(now) < limit:
            window.add(recipient, now)
            return None
        self.audit.number(number.phone_number_id).tier_violations += 1
        return 131049

    def _refuse(
        self, number: NumberConfig, recipient: str, body: bytes, now: float, answer: Answer
    ) -> Answer:
        status, payload = answer
        self.audit.error(number.phone_number_id, int(payload["error"]["code"]))
        self.audit.answered(number.phone_number_id, recipient, body, status, now)
        return answer

    @staticmethod
    def _throughput_error(number: NumberConfig) -> Answer:
        return 400, meta_error(
            130429,
            "Rate limit hit",
            f"Cloud API message throughput ({number.throughput_mps} messages/s) has been reached.",
        )

    def _check_token(self, number: NumberConfig, authorization: str | None) -> Answer | None:
        token = None
        if authorization and authorization.startswith("Bearer "):
            token = authorization[7:]
        if token != number.token:
            return 401, meta_error(190, "Invalid OAuth access token - Cannot parse access token")
        if number.phone_number_id in self.faults.expired_tokens:
            return 401, meta_error(
                190, "Error validating access token: Session has expired", subcode=463
            )
        return None

    @staticmethod
    def _parse(body: bytes) -> ParsedSend | Answer:
        """What the send asks for, or the error answer."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, meta_error(100, "Invalid parameter", "Request body is not valid JSON")
        if not isinstance(data, dict) or data.get("messaging_product") != "whatsapp":
            return 400, meta_error(100, "Invalid parameter", "messaging_product must be 'whatsapp'")
        if data.get("type", "text") != "template":
            return 400, meta_error(100, "Invalid parameter", "only template messages here")
        template = data.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            return 400, meta_error(131008, "Required parameter is missing", "template.name")
        language = template.get("language")
        if not isinstance(language, dict) or not isinstance(language.get("code"), str):
            return 400, meta_error(131008, "Required parameter is missing", "template.language")
        components = template.get("components", [])
        if not isinstance(components, list):
            return 400, meta_error(100, "Invalid parameter", "template.components must be a list")
        to, user_id = data.get("to"), data.get("recipient")
        if isinstance(to, str) and to:
            if not PHONE_RE.match(to):
                return 400, meta_error(
                    131009, "Parameter value is not valid", f"'{to[:32]}' is not a phone number"
                )
            recipient = to if to.startswith("+") else f"+{to}"
        elif isinstance(user_id, str) and user_id:
            if not BSUID_RE.match(user_id):
                return 400, meta_error(
                    131009, "Parameter value is not valid", "recipient is not a valid BSUID"
                )
            recipient = user_id
        else:
            return 400, meta_error(131008, "Required parameter is missing", "to or recipient")
        callback = data.get("biz_opaque_callback_data")
        if callback is not None and (not isinstance(callback, str) or len(callback) > 512):
            return 400, meta_error(
                100, "Invalid parameter", "biz_opaque_callback_data: a string of 512 at most"
            )
        return ParsedSend(recipient, template["name"], callback)

    def _check_template(self, name: str, recipient: str) -> Answer | None:
        if self.templates is None:
            return None
        template = self.templates.get(name)
        if template is None:
            return 404, meta_error(
                132001,
                "Template name does not exist in the translation",
                f"template name ({name[:64]}) does not exist",
            )
        # Meta's Error codes page: 132015 "Template is Paused" (low quality), 132016
        # "Template is disabled" (paused too many times).
        if template.status == "PAUSED":
            return 400, meta_error(
                132015,
                "Template is Paused",
                "Template is paused due to low quality so it cannot be sent in a template message",
            )
        if template.status == "DISABLED":
            return 400, meta_error(
                132016,
                "Template is disabled",
                "Template has been paused too many times due to low quality and is now "
                "permanently disabled",
            )
        if template.category == "AUTHENTICATION" and BSUID_RE.match(recipient):
            return 400, meta_error(
                131062,
                "Business-scoped user ID recipients not supported",
                "authentication templates need a phone number recipient",
            )
        return None

    def _wamid(self) -> str:
        seq = next(self._wamid_seq).to_bytes(6, "big")
        return "wamid.HBgL" + self._wamid_prefix + base64.urlsafe_b64encode(seq).decode()

    # -- node reads ---------------------------------------------------------------------

    def node(
        self,
        node_id: str,
        authorization: str | None,
        fields: str | None,
        version: str = "v25.0",
    ) -> Answer:
        """Answer ``GET /{version}/{phone_number_id or business_id}?fields=...``.

        A field the node does not have is Graph error 100 ("Tried accessing nonexisting
        field"), as Meta answers it: the limit on the business node, the legacy tier after
        v23.0 (Messaging Limits page).
        """
        wanted = {f.strip() for f in (fields or "").split(",") if f.strip()}
        number = self.numbers.get(node_id)
        if number is not None:
            if (denied := self._check_token(number, authorization)) is not None:
                return denied
            if (maintenance := self._maintenance(node_id)) is not None:
                return maintenance
            tier = self.portfolios[number.business_id].messaging_tier
            high = number.throughput_mps >= HIGH_THROUGHPUT_MPS
            data: JsonObject = {
                "id": number.phone_number_id,
                "verified_name": number.verified_name,
                "display_phone_number": number.display_phone_number,
                "quality_rating": number.quality_rating,
                LIMIT_FIELD: tier.value,
                "throughput": {"level": "HIGH" if high else "STANDARD"},
            }
            absent = set()
            if _version(version) <= LEGACY_TIER_LAST_VERSION:
                data[LEGACY_TIER_FIELD] = tier.value
            else:
                absent.add(LEGACY_TIER_FIELD)
            return _select(data, wanted, absent, "WhatsAppBusinessPhoneNumber")
        portfolio = self.portfolios.get(node_id)
        if portfolio is not None:
            tokens = {n.token for n in self.numbers.values() if n.business_id == node_id}
            token = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else ""
            if token not in tokens:
                return 401, meta_error(
                    190, "Invalid OAuth access token - Cannot parse access token"
                )
            absent = {LIMIT_FIELD, LEGACY_TIER_FIELD}
            return _select({"id": node_id, "name": node_id}, wanted, absent, "Business")
        return 400, meta_error(
            100,
            f"Unsupported get request. Object with ID '{node_id}' does not exist",
            subcode=33,
            error_type="GraphMethodException",
        )

    # -- throughput upgrade (Throughput page, "Higher throughput") -----------------------

    def start_upgrade(self, phone_number_id: str, maintenance_s: float) -> None:
        """The number goes into maintenance: every call answers 131057 until it ends."""
        self.upgrading[phone_number_id] = self.now() + maintenance_s

    def finish_upgrade(self, phone_number_id: str) -> NumberConfig:
        """Maintenance over: the number sends up to 1,000 msg/s and reports HIGH."""
        self.upgrading.pop(phone_number_id, None)
        number = self.numbers[phone_number_id]
        number.throughput_mps = HIGH_THROUGHPUT_MPS
        return number

    def _maintenance(self, phone_number_id: str) -> Answer | None:
        """Error codes page, 131057: "Business Account is in maintenance mode. This could be
        due to the account undergoing a throughput upgrade." Every call on the number gets it
        while the upgrade runs (DESIGN.md, "Meta's limits": up to a minute)."""
        until = self.upgrading.get(phone_number_id)
        if until is None or self.now() >= until:
            return None
        return 500, meta_error(
            131057,
            "Account in maintenance mode",
            "Business account is in maintenance mode. This could be due to the account "
            "undergoing a throughput upgrade.",
        )

    def add_number(self, number: NumberConfig, tier: MessagingTier | None = None) -> None:
        """A number (and its portfolio, if new) added at run time, fresh limits."""
        self.numbers[number.phone_number_id] = number
        self._throughput[number.phone_number_id] = SlidingWindowCounter(
            self.config.throughput_window_s
        )
        self._pairs[number.phone_number_id] = PairLimiter(
            self.config.pair_interval_s, self.config.pair_burst
        )
        if number.business_id not in self.portfolios:
            self.portfolios[number.business_id] = PortfolioConfig(
                business_id=number.business_id, messaging_tier=tier or MessagingTier.TIER_2K
            )
            self._unique[number.business_id] = UniqueRecipientWindow(self.config.messaging_window_s)
        elif tier is not None:
            self.portfolios[number.business_id].messaging_tier = tier

    def entry_id(self, number: NumberConfig) -> str:
        """``entry[].id`` of the number's webhooks: its WABA."""
        return number.waba_id or number.business_id


def _version(version: str) -> tuple[int, int]:
    major, _, minor = version.strip("/").lower().removeprefix("v").partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 10**6, 0


def _select(data: JsonObject, wanted: set[str], absent: set[str], node_type: str) -> Answer:
    """The fields asked for; one the node does not have is error 100, as Meta answers it."""
    missing = sorted(wanted & absent)
    if missing:
        return 400, meta_error(
            100, f"Tried accessing nonexisting field ({missing[0]}) on node type ({node_type})"
        )
    if not wanted:
        return 200, data
    return 200, {key: value for key, value in data.items() if key == "id" or key in wanted}
