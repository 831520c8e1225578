"""The sandbox's HTTP face: Meta's Graph API paths plus a small ``/_sandbox`` control API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatcher.meta.tiers import MessagingTier
from dispatcher.sandbox.config import NumberConfig, SandboxConfig
from dispatcher.sandbox.simulator import Simulator
from dispatcher.sandbox.template_control import routes as template_routes


class FaultsUpdate(BaseModel):
    """``POST /_sandbox/faults``: set any of these; omitted ones keep their value."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0, le=60_000)
    error_5xx_ratio: float | None = Field(default=None, ge=0, le=1)
    timeout_ratio: float | None = Field(default=None, ge=0, le=1)
    timeout_s: float | None = Field(default=None, ge=0, le=600)
    accept_timeout_ratio: float | None = Field(default=None, ge=0, le=1)
    throttle_burst: int | None = Field(default=None, ge=0)
    expire_token: str | None = None
    restore_token: str | None = None
    clear: bool = False


class NewNumber(BaseModel):
    """``POST /_sandbox/numbers``: a number (and its portfolio when new) added at run time."""

    model_config = ConfigDict(extra="forbid")

    number: NumberConfig
    messaging_tier: MessagingTier | None = None


class TierChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messaging_tier: MessagingTier
    notify: bool = True
    """Send the business_capability_update webhook, as Meta does on a change."""


class Emit(BaseModel):
    """``POST /_sandbox/webhooks``: one operational webhook (references: business capability,
    phone number quality and account update webhooks; shapes as tests/meta/fixtures/)."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str = Field(min_length=1, max_length=64)
    field: Literal["business_capability_update", "phone_number_quality_update", "account_update"]
    value: dict[str, Any]


class Upgrade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maintenance_s: float = Field(default=60.0, ge=0, le=600)


class OtherSender(BaseModel):
    """``POST /_sandbox/other_sender``: another app sends on ``phone_number_id`` with its
    own ``biz_opaque_callback_data`` (say bare numbers that equal our recipient ids)."""

    model_config = ConfigDict(extra="forbid")

    phone_number_id: str
    callback_data: list[str] = Field(max_length=10_000)
    fail_code: int | None = Field(default=None, description="fail each with this code")


class ValueErrors(BaseModel):
    """``POST /_sandbox/value_errors``: a ``messages`` webhook with ``value.errors[]``."""

    model_config = ConfigDict(extra="forbid")

    phone_number_id: str
    code: int = 130429


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _bad_request(message: str) -> Response:
    return _json(400, {"error": {"code": "bad_request", "message": message}})


def create_app(simulator: Simulator) -> Starlette:
    """The ASGI app around one :class:`Simulator`."""

    async def messages(request: Request) -> Response:
        body = await request.body()
        fault = simulator.pre_send_fault()
        if fault is not None:
            kind, seconds = fault
            if kind == "timeout":
                await asyncio.sleep(seconds)
                return _json(504, {"error": {"message": "Gateway timeout", "code": 2}})
            return _json(503, {"error": {"message": "Service temporarily unavailable"}})
        if simulator.faults.latency_s:
            await asyncio.sleep(simulator.faults.latency_s)
        status, payload = simulator.send(
            request.path_params["node"], request.headers.get("authorization"), body
        )
        if status == 200 and simulator.answer_hangs():
            await asyncio.sleep(simulator.faults.timeout_s)  # taken; the answer is lost
            return _json(504, {"error": {"message": "Gateway timeout", "code": 2}})
        return _json(status, payload)

    async def node(request: Request) -> Response:
        status, payload = simulator.node(
            request.path_params["node"],
            request.headers.get("authorization"),
            request.query_params.get("fields"),
            request.path_params["version"],
        )
        return _json(status, payload)

    async def health(_: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def audit(_: Request) -> Response:
        report = simulator.audit.report()
        report["webhooks_scheduled"] = simulator.webhooks.pending()
        return _json(200, report)

    async def requests(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            return _bad_request("limit must be a whole number")
        records = list(simulator.audit.records)[-max(0, limit) :] if limit else []
        # ``t`` is the sandbox's monotonic clock; ``wall`` the same instant on its wall clock
        # (both advanced by /_sandbox/clock), for tests that compare with wall times.
        to_wall = simulator.wall() - simulator.now()
        return _json(
            200,
            [
                {
                    "t": t,
                    "wall": t + to_wall,
                    "phone_number_id": pid,
                    "recipient": r,
                    "body_hash": h,
                    "status": s,
                    "template": name,
                }
                for t, pid, r, h, s, name in records
            ],
        )

    async def faults(request: Request) -> Response:
        try:
            update = FaultsUpdate.model_validate_json(await request.body())
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        current = simulator.faults
        if update.clear:
            current.latency_s = current.error_5xx_ratio = current.timeout_ratio = 0.0
            current.accept_timeout_ratio = 0.0
            current.throttle_burst = 0
            current.expired_tokens.clear()
        if update.latency_ms is not None:
            current.latency_s = update.latency_ms / 1000
        for name in (
            "error_5xx_ratio",
            "timeout_ratio",
            "timeout_s",
            "accept_timeout_ratio",
            "throttle_burst",
        ):
            value = getattr(update, name)
            if value is not None:
                setattr(current, name, value)
        for pid in (update.expire_token, update.restore_token):
            if pid is not None and pid not in simulator.numbers:
                return _bad_request(f"unknown phone_number_id {pid!r}")
        if update.expire_token is not None:
            current.expired_tokens.add(update.expire_token)
        if update.restore_token is not None:
            current.expired_tokens.discard(update.restore_token)
        return _json(
            200,
            {
                "latency_ms": current.latency_s * 1000,
                "error_5xx_ratio": current.error_5xx_ratio,
                "timeout_ratio": current.timeout_ratio,
                "timeout_s": current.timeout_s,
                "accept_timeout_ratio": current.accept_timeout_ratio,
                "throttle_burst": current.throttle_burst,
                "expired_tokens": sorted(current.expired_tokens),
            },
        )

    async def reset(request: Request) -> Response:
        body = await request.body()
        try:
            config = SandboxConfig.model_validate_json(body) if body else simulator.config
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        simulator.configure(config)
        simulator.webhooks.start(simulator.numbers)
        return _json(200, {"status": "reset", "numbers": sorted(simulator.numbers)})

    async def clock(request: Request) -> Response:
        try:
            advance = float(orjson.loads(await request.body())["advance_s"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _bad_request('expected {"advance_s": seconds}')
        if advance < 0:
            return _bad_request("the clock never runs backwards")
        simulator.clock_offset_s += advance
        return _json(200, {"offset_s": simulator.clock_offset_s})

    async def other_sender(request: Request) -> Response:
        try:
            update = OtherSender.model_validate_json(await request.body())
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        if update.phone_number_id not in simulator.numbers:
            return _bad_request(f"unknown phone_number_id {update.phone_number_id!r}")
        wamids = simulator.other_sender(
            update.phone_number_id, update.callback_data, update.fail_code
        )
        return _json(200, {"wamids": wamids})

    async def value_errors(request: Request) -> Response:
        try:
            update = ValueErrors.model_validate_json(await request.body())
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        if update.phone_number_id not in simulator.numbers:
            return _bad_request(f"unknown phone_number_id {update.phone_number_id!r}")
        await simulator.webhooks.post_value_errors(update.phone_number_id, update.code)
        return _json(200, {"posted": True})

    async def flush(_: Request) -> Response:
        return _json(200, {"flushed": await simulator.webhooks.flush()})

    async def add_number(request: Request) -> Response:
        try:
            given = NewNumber.model_validate_json(await request.body())
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        simulator.add_number(given.number, given.messaging_tier)
        return _json(200, {"added": given.number.phone_number_id})

    async def set_tier(request: Request) -> Response:
        """A portfolio's limit changes; with ``notify``, Meta's business_capability_update
        follows (business_capability_update webhook reference: the limit as a TIER string)."""
        business_id = request.path_params["business_id"]
        portfolio = simulator.portfolios.get(business_id)
        if portfolio is None:
            return _bad_request(f"unknown business_id {business_id!r}")
        try:
            given = TierChange.model_validate_json(await request.body())
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        portfolio.messaging_tier = given.messaging_tier
        if given.notify:
            numbers = [n for n in simulator.numbers.values() if n.business_id == business_id]
            entries = {simulator.entry_id(n) for n in numbers} or {business_id}
            value = {
                "max_daily_conversations_per_business": given.messaging_tier.value,
                "max_phone_numbers_per_waba": 25,
            }
            for entry in sorted(entries):
                await simulator.webhooks.post_change(entry, "business_capability_update", value)
        return _json(200, {"business_id": business_id, "messaging_tier": given.messaging_tier})

    async def emit(request: Request) -> Response:
        """Post one operational webhook, signed, in Meta's ``entry[].changes[]`` shape."""
        try:
            given = Emit.model_validate_json(await request.body())
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        if simulator.webhooks.config.url is None:
            return _bad_request("no webhook url configured")
        ok = await simulator.webhooks.post_change(given.entry_id, given.field, given.value)
        return _json(200, {"delivered": ok})

    async def upgrade(request: Request) -> Response:
        """Throughput page, "Higher throughput": the number is in maintenance (131057 on
        every call) for up to a minute, then ``phone_number_quality_update`` with
        ``event: THROUGHPUT_UPGRADE`` announces it, and it sends up to 1,000 msg/s."""
        pid = request.path_params["phone_number_id"]
        if pid not in simulator.numbers:
            return _bad_request(f"unknown phone_number_id {pid!r}")
        try:
            given = Upgrade.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            return _bad_request(str(exc.errors()[0]["msg"]))
        simulator.start_upgrade(pid, given.maintenance_s)

        async def finish() -> None:
            await asyncio.sleep(given.maintenance_s)
            number = simulator.finish_upgrade(pid)
            tier = simulator.portfolios[number.business_id].messaging_tier
            # Phone number quality webhook reference, THROUGHPUT_UPGRADE example; the
            # portfolio's limit rides along (max_daily_conversations_per_business).
            value = {
                "display_phone_number": number.display_phone_number,
                "event": "THROUGHPUT_UPGRADE",
                "current_limit": tier.value,
                "max_daily_conversations_per_business": tier.value,
            }
            await simulator.webhooks.post_change(
                simulator.entry_id(number), "phone_number_quality_update", value
            )

        upgrades.add(asyncio.get_running_loop().create_task(finish()))
        return _json(200, {"phone_number_id": pid, "maintenance_s": given.maintenance_s})

    upgrades: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        simulator.webhooks.start(simulator.numbers)
        try:
            yield
        finally:
            await simulator.webhooks.stop()

    return Starlette(
        routes=[
            Route("/_sandbox/health", health),
            Route("/_sandbox/audit", audit),
            Route("/_sandbox/requests", requests),
            Route("/_sandbox/faults", faults, methods=["POST"]),
            Route("/_sandbox/reset", reset, methods=["POST"]),
            Route("/_sandbox/clock", clock, methods=["POST"]),
            Route("/_sandbox/flush", flush, methods=["POST"]),
            Route("/_sandbox/numbers", add_number, methods=["POST"]),
            Route("/_sandbox/portfolios/{business_id}/tier", set_tier, methods=["POST"]),
            Route("/_sandbox/webhooks", emit, methods=["POST"]),
            Route(
                "/_sandbox/numbers/{phone_number_id}/throughput_upgrade", upgrade, methods=["POST"]
            ),
            *template_routes(simulator),
            Route("/_sandbox/other_sender", other_sender, methods=["POST"]),
            Route("/_sandbox/value_errors", value_errors, methods=["POST"]),
            Route("/{version}/{node}/messages", messages, methods=["POST"]),
            Route("/{version}/{node}", node, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
