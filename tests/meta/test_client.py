"""The Meta client against the sandbox over real HTTP: every error class, every limit."""

from __future__ import annotations

import time

import pytest

from dispatcher.meta.client import MetaClient
from dispatcher.meta.error_codes import ErrorClass, Throttle
from dispatcher.meta.messages import MetaError, SendOk, Template
from dispatcher.meta.tiers import MessagingTier
from dispatcher.meta.transport import PoolConfig, TransportKind
from dispatcher.sandbox.control import SandboxControl
from dispatcher.sandbox.server import SandboxProcess, free_port

HELLO = Template("hello_world", "en_US")


def phone(i: int) -> str:
    return f"+55119{i:08d}"


async def test_a_send_returns_the_wamid_and_reaches_the_sandbox(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    result = await client.send_template("2001", "token-2001", phone(1), HELLO, ["Ana"], "r-1")
    assert isinstance(result, SendOk)
    assert result.wamid.startswith("wamid.")
    [record] = await sandbox.requests()
    assert (record["phone_number_id"], record["recipient"], record["status"]) == (
        "2001",
        phone(1),
        200,
    )
    assert (await sandbox.audit())["accepted"] == 1


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_every_transport_speaks_the_same_protocol(
    sandbox_process: SandboxProcess, sandbox: SandboxControl, kind: TransportKind
) -> None:
    meta = MetaClient(sandbox_process.url, "v23.0", transport_kind=kind)
    try:
        ok = await meta.send_template("2001", "token-2001", phone(2), HELLO)
        bad = await meta.send_template("2001", "wrong", phone(2), HELLO)
    finally:
        await meta.aclose()
    assert isinstance(ok, SendOk)
    assert isinstance(bad, MetaError)
    assert (bad.code, bad.http_status) == (190, 401)


async def test_a_bad_token_stops_the_instance_and_is_never_echoed(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    result = await client.send_template("2001", "secret-wrong-token", phone(3), HELLO)
    assert isinstance(result, MetaError)
    assert result.error_class is ErrorClass.PERMANENT_INSTANCE
    assert result.code == 190
    assert result.fbtrace_id
    assert "secret-wrong-token" not in str(result)
    assert "secret-wrong-token" not in repr(vars(result))


async def test_an_expired_token_answers_190_until_restored(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    await sandbox.faults(expire_token="2001")
    expired = await client.send_template("2001", "token-2001", phone(4), HELLO)
    assert isinstance(expired, MetaError)
    assert (expired.code, expired.subcode) == (190, 463)
    await sandbox.faults(restore_token="2001")
    assert isinstance(await client.send_template("2001", "token-2001", phone(4), HELLO), SendOk)


@pytest.mark.parametrize(
    ("recipient", "template", "code"),
    [
        ("+12", HELLO, 131009),  # not a phone number
        ("BR.not-a-bsuid!", HELLO, 131009),
        ("BR.1502576394655843", Template("otp_code", "en_US"), 131062),
    ],
)
async def test_permanent_message_errors(
    client: MetaClient, sandbox: SandboxControl, recipient: str, template: Template, code: int
) -> None:
    result = await client.send_template("2001", "token-2001", recipient, template)
    assert isinstance(result, MetaError)
    assert result.code == code
    assert result.error_class is ErrorClass.PERMANENT_MESSAGE
    assert result.details


async def test_a_missing_template_is_a_template_error(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    """132001 holds the campaign (DESIGN.md, template class), never fails recipients."""
    template = Template("no_such_template", "en_US")
    result = await client.send_template("2001", "token-2001", phone(5), template)
    assert isinstance(result, MetaError)
    assert result.code == 132001
    assert result.error_class is ErrorClass.PERMANENT_TEMPLATE
    assert result.details


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"messaging_product": "whatsapp", "type": "template"}']
)
async def test_malformed_bodies_are_refused(
    client: MetaClient, sandbox: SandboxControl, body: bytes
) -> None:
    result = await client.send_raw("2001", "token-2001", body)
    assert isinstance(result, MetaError)
    assert result.code in (100, 131008)
    assert result.error_class is ErrorClass.PERMANENT_MESSAGE


async def test_a_bsuid_recipient_is_sent_as_recipient(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    result = await client.send_template("2001", "token-2001", "BR.1502576394655843", HELLO)
    assert isinstance(result, SendOk)


async def test_unknown_number_is_graph_error_100(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    result = await client.send_template("404404", "token-2001", phone(6), HELLO)
    assert isinstance(result, MetaError)
    assert (result.code, result.subcode, result.http_status) == (100, 33, 400)
    assert result.error_class is ErrorClass.PERMANENT_INSTANCE  # the number does not exist


async def test_throughput_above_the_limit_answers_130429(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    started = time.monotonic()
    results = [
        await client.send_template("1001", "token-1001", phone(100 + i), HELLO) for i in range(10)
    ]
    elapsed = time.monotonic() - started
    accepted = [r for r in results if isinstance(r, SendOk)]
    throttled = [r for r in results if isinstance(r, MetaError)]
    assert len(accepted) <= 3 * (1 + int(elapsed))  # throughput_mps=3
    assert throttled
    assert all(r.code == 130429 and r.rule.throttle is Throttle.THROUGHPUT for r in throttled)
    audit = await sandbox.audit()
    assert audit["numbers"]["1001"]["throughput_violations"] == len(throttled)
    assert audit["numbers"]["1001"]["max_received_per_s"] >= 4


async def test_pair_rate_answers_131056_and_recovers_after_the_interval(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    first, second, third = [
        await client.send_template("2001", "token-2001", phone(7), HELLO) for _ in range(3)
    ]
    assert isinstance(first, SendOk)
    assert isinstance(second, SendOk)  # a short burst of 2 is tolerated
    assert isinstance(third, MetaError)
    assert third.code == 131056
    assert third.rule.throttle is Throttle.PAIR
    other = await client.send_template("2001", "token-2001", phone(8), HELLO)
    assert isinstance(other, SendOk)
    await sandbox.advance_clock(12.0)
    assert isinstance(await client.send_template("2001", "token-2001", phone(7), HELLO), SendOk)
    assert (await sandbox.audit())["pair_violations"] == 1


async def test_the_portfolio_limit_counts_unique_recipients_across_its_numbers(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    # biz-small (TIER_250) is shared by 1001 and 1002: the limit is the portfolio's.
    for i in range(249):
        assert isinstance(await client.send_template("1002", "token-1002", phone(i), HELLO), SendOk)
    await sandbox.advance_clock(1.0)
    assert isinstance(await client.send_template("1001", "token-1001", phone(249), HELLO), SendOk)
    audit = await sandbox.audit()
    assert audit["tier_violations"] == 0
    # A customer already counted in the window costs nothing; a new one is over the limit.
    await sandbox.advance_clock(6.0)
    assert isinstance(await client.send_template("1002", "token-1002", phone(0), HELLO), SendOk)
    assert (await sandbox.audit())["tier_violations"] == 0
    over = await client.send_template("1002", "token-1002", phone(250), HELLO)
    assert isinstance(over, SendOk)  # Meta accepts the call; the message fails by webhook
    assert (await sandbox.audit())["numbers"]["1002"]["tier_violations"] == 1
    # The window moves: a day after the first sends, new customers fit again.
    await sandbox.advance_clock(24 * 3600.0)
    assert isinstance(await client.send_template("1002", "token-1002", phone(251), HELLO), SendOk)
    assert (await sandbox.audit())["tier_violations"] == 1


async def test_5xx_faults_are_transient(client: MetaClient, sandbox: SandboxControl) -> None:
    await sandbox.faults(error_5xx_ratio=1.0)
    result = await client.send_template("2001", "token-2001", phone(9), HELLO)
    assert isinstance(result, MetaError)
    assert (result.error_class, result.http_status) == (ErrorClass.TRANSIENT, 503)
    await sandbox.faults(clear=True)
    assert isinstance(await client.send_template("2001", "token-2001", phone(9), HELLO), SendOk)
    assert (await sandbox.audit())["faults_injected"] == {"5xx": 1}


async def test_a_throttle_burst_fault_answers_130429_that_many_times(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    await sandbox.faults(throttle_burst=2)
    results = [
        await client.send_template("2001", "token-2001", phone(10 + i), HELLO) for i in range(3)
    ]
    assert [getattr(r, "code", None) for r in results] == [130429, 130429, None]


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_a_timeout_after_the_request_left_is_in_doubt_not_transient(
    sandbox_process: SandboxProcess, sandbox: SandboxControl, kind: TransportKind
) -> None:
    # Meta may have taken it: resending it blindly could deliver it twice.
    await sandbox.faults(timeout_ratio=1.0, timeout_s=3.0)
    meta = MetaClient(
        sandbox_process.url, "v23.0", transport_kind=kind, pool=PoolConfig(request_timeout_s=0.3)
    )
    try:
        result = await meta.send_template("2001", "token-2001", phone(11), HELLO)
    finally:
        await meta.aclose()
    assert isinstance(result, MetaError)
    assert result.error_class is ErrorClass.IN_DOUBT
    assert result.code is None
    assert "timeout" in str(result)


@pytest.mark.parametrize("kind", list(TransportKind))
async def test_a_refused_connection_is_a_transient_error(kind: TransportKind) -> None:
    meta = MetaClient(f"http://127.0.0.1:{free_port()}", "v23.0", transport_kind=kind)
    try:
        result = await meta.send_template("2001", "token-2001", phone(12), HELLO)
    finally:
        await meta.aclose()
    assert isinstance(result, MetaError)
    assert result.error_class is ErrorClass.TRANSIENT


async def test_latency_fault_slows_answers(client: MetaClient, sandbox: SandboxControl) -> None:
    await sandbox.faults(latency_ms=300)
    started = time.monotonic()
    assert isinstance(await client.send_template("2001", "token-2001", phone(13), HELLO), SendOk)
    assert time.monotonic() - started >= 0.3


async def test_number_and_portfolio_facts(client: MetaClient, sandbox: SandboxControl) -> None:
    info = await client.phone_number("2001", "token-2001")
    assert info.throughput_mps == 1000
    assert info.messaging_tier is MessagingTier.TIER_UNLIMITED
    assert info.quality_rating == "GREEN"
    small = await client.phone_number("1001", "token-1001")
    assert small.messaging_tier is MessagingTier.TIER_250  # the portfolio's, on the number
    with pytest.raises(MetaError) as denied:
        await client.phone_number("1001", "token-2001")  # another number's token
    assert denied.value.code == 190


async def test_duplicate_sends_show_in_the_audit(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    for recipient in (phone(20), phone(21)):
        await client.send_template("2001", "token-2001", recipient, HELLO, None, "recipient-42")
    audit = await sandbox.audit()
    assert audit["duplicate_sends"] == 1
    assert audit["duplicate_examples"] == ["recipient-42"]
