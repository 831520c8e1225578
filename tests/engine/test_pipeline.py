"""SendPipeline in-process on a fake clock: a recording Graph API for timing, the sandbox over
real HTTP for Meta's answers. Every assertion about time is on the fake clock."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field

from dispatcher.engine.pacing import Pacer, PacingConfig
from dispatcher.engine.pipeline import OutgoingMessage, PipelineConfig, SendPipeline
from dispatcher.meta.client import MetaClient
from dispatcher.meta.error_codes import ErrorClass
from dispatcher.meta.messages import Template, template_body
from dispatcher.policies.backoff import Backoff
from dispatcher.sandbox.control import SandboxControl
from dispatcher.store.models import SendOutcome, SendResult
from tests.engine.fakes import FakeClock, GraphAnswer, RecordingTransport, max_in_window, run_clock

HELLO = Template("hello_world", "en_US")


@dataclass
class Run:
    pipeline: SendPipeline
    task: asyncio.Task[None]
    settled: list[SendResult] = field(default_factory=list)
    dead: list[SendResult] = field(default_factory=list)

    def done(self) -> int:
        return len(self.settled) + len(self.dead)

    async def stop(self) -> None:
        self.pipeline.stop()
        await asyncio.wait_for(self.task, 10)


def start(
    client: MetaClient,
    clock: FakeClock,
    limit_mps: float,
    messages: list[OutgoingMessage],
    *,
    phone_number_id: str = "pn-test",
    token: str = "token",
    backoff: Backoff | None = None,
    pacing: PacingConfig | None = None,
) -> Run:
    settled: list[SendResult] = []
    dead: list[SendResult] = []
    pipeline = SendPipeline(
        instance_id=uuid.uuid4(),
        phone_number_id=phone_number_id,
        token=token,
        client=client,
        pacer=Pacer(limit_mps, pacing, clock),
        backoff=backoff or Backoff(0.2, 5.0, 4),
        on_settled=lambda _m, r: settled.append(r),
        on_dead=lambda _m, r: dead.append(r),
        config=PipelineConfig(idle_wake_s=0.01),
        clock=clock,
    )
    pipeline.submit(messages)
    run = Run(pipeline, asyncio.create_task(pipeline.run()), settled, dead)
    return run


def messages(
    n: int, start_at: int = 0, addresses: list[str] | None = None
) -> list[OutgoingMessage]:
    found = addresses or [f"+55119{start_at + i:08d}" for i in range(n)]
    return [
        OutgoingMessage(start_at + i, "job-1", a, template_body(a, HELLO, None, str(start_at + i)))
        for i, a in enumerate(found)
    ]


async def test_pacing_is_never_above_the_limit_in_any_one_second_window() -> None:
    clock = FakeClock(0.0)
    graph = RecordingTransport(clock)
    run = start(graph.client(), clock, 40, messages(200))
    await run_clock(clock, lambda: run.done() == 200)
    await run.stop()
    times = [s.at for s in graph.sent]
    assert len(times) == 200
    assert max_in_window(times) <= 40
    # ...and not starved: the limit is what paces it (5 s of work at 40/s).
    assert times[-1] - times[0] < 4.75 / 0.8
    assert sorted(graph.accepted()) == sorted({m.address for m in messages(200)})


async def test_a_throughput_throttle_cuts_the_rate_and_the_message_goes_once() -> None:
    clock = FakeClock(0.0)
    graph = RecordingTransport(clock)
    batch = messages(150)
    throttled = batch[20].address
    graph.script[throttled] = [GraphAnswer.error(130429)]
    run = start(graph.client(), clock, 50, batch)
    await run_clock(clock, lambda: run.done() == 150)
    await run.stop()

    [cut] = [s for s in graph.sent if s.status != 200]
    assert run.pipeline.pacer.current_rate() < 50  # cut, and not back up yet
    adaptive = run.pipeline.pacer.config.adaptive
    after = [s.at for s in graph.sent if cut.at < s.at < cut.at + adaptive.quiet_period_s]
    assert max_in_window(after) <= int(50 * adaptive.decrease_factor)  # cut, until the quiet ends
    assert graph.accepted().count(throttled) == 1
    [result] = [r for r in run.settled if r.recipient_id == 20]
    assert (result.outcome, result.attempts) == (SendOutcome.SENT, 1)  # throttles are free
    assert run.pipeline.stats.errors_by_class[ErrorClass.THROTTLE.value] == 1


async def test_a_second_message_to_a_recipient_waits_the_pair_interval_alone() -> None:
    clock = FakeClock(0.0)
    graph = RecordingTransport(clock)
    batch = messages(
        4, addresses=["+5511900000001", "+5511900000001", "+5511900000002", "+5511900000003"]
    )
    run = start(graph.client(), clock, 80, batch, pacing=PacingConfig(pair_interval_s=6.0))
    await run_clock(clock, lambda: run.done() == 4, step_s=0.01)
    await run.stop()
    order = [s.recipient for s in graph.sent]
    assert order == ["+5511900000001", "+5511900000002", "+5511900000003", "+5511900000001"]
    first, again = (s.at for s in graph.sent if s.recipient == "+5511900000001")
    assert again - first >= 6.0
    assert graph.sent[2].at - first < 1.0  # the others did not wait behind it


async def test_a_pair_rate_answer_delays_only_that_recipient() -> None:
    clock = FakeClock(0.0)
    graph = RecordingTransport(clock)
    batch = messages(3)
    graph.script[batch[0].address] = [GraphAnswer.error(131056)]
    run = start(graph.client(), clock, 80, batch, pacing=PacingConfig(pair_interval_s=6.0))
    await run_clock(clock, lambda: run.done() == 3, step_s=0.01)
    await run.stop()
    tries = [s.at for s in graph.sent if s.recipient == batch[0].address]
    assert len(tries) == 2
    assert tries[1] - tries[0] >= 6.0
    assert all(s.at < tries[1] for s in graph.sent if s.recipient != batch[0].address)


async def test_transient_failures_back_off_then_the_message_is_dead_lettered() -> None:
    clock = FakeClock(0.0)
    graph = RecordingTransport(clock)
    batch = messages(2)
    failing = batch[0].address
    graph.script[failing] = [GraphAnswer(503, {})] * 10
    backoff = Backoff(base_s=0.5, cap_s=4.0, max_attempts=4)
    run = start(graph.client(), clock, 80, batch, backoff=backoff)
    await run_clock(clock, lambda: run.done() == 2, step_s=0.01)
    await run.stop()

    tries = [s.at for s in graph.sent if s.recipient == failing]
    assert len(tries) == 4  # max_attempts sends, no more
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert all(gap >= 0.5 for gap in gaps), gaps
    [dead] = run.dead
    assert (dead.recipient_id, dead.outcome, dead.attempts) == (0, SendOutcome.FAILED, 4)
    assert "retries exhausted" in (dead.error_message or "")
    [ok] = run.settled
    assert (ok.recipient_id, ok.outcome) == (1, SendOutcome.SENT)
    assert run.pipeline.stats.retried == 3


async def test_a_transient_failure_that_recovers_is_sent_once(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    """Over real HTTP: the sandbox answers 5xx to everything, then stops."""
    clock = FakeClock(0.0)
    await sandbox.faults(error_5xx_ratio=1.0)
    run = start(client, clock, 80, messages(3, 300), phone_number_id="2001", token="token-2001")
    await run_clock(clock, lambda: run.pipeline.stats.retried >= 3, step_s=0.005)
    await sandbox.faults(error_5xx_ratio=0.0)
    await run_clock(clock, lambda: run.done() == 3, step_s=0.05)
    await run.stop()
    assert [r.outcome for r in run.settled] == [SendOutcome.SENT] * 3
    assert all(r.attempts >= 2 for r in run.settled)
    audit = await sandbox.audit()
    assert (audit["accepted"], audit["duplicate_sends"]) == (3, 0)


async def test_a_message_meta_refuses_fails_alone_without_retry(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    clock = FakeClock(0.0)
    batch = messages(3, 400)
    batch[1] = OutgoingMessage(1, "job-1", "+12", template_body("+12", HELLO, None, "1"))
    run = start(client, clock, 80, batch, phone_number_id="2001", token="token-2001")
    await run_clock(clock, lambda: run.done() == 3, step_s=0.005)
    await run.stop()
    by_id = {r.recipient_id: r for r in run.settled}
    assert (by_id[1].outcome, by_id[1].error_code, by_id[1].attempts) == (
        SendOutcome.FAILED,
        131009,
        1,
    )
    assert by_id[400].outcome is by_id[402].outcome is SendOutcome.SENT
    assert run.pipeline.halted is None
    assert len(await sandbox.requests()) == 3  # not retried


async def test_a_number_that_cannot_send_halts_and_gives_back_every_unsent_message(
    client: MetaClient, sandbox: SandboxControl
) -> None:
    clock = FakeClock(0.0)
    await sandbox.faults(expire_token="2001")
    batch = messages(30, 500)
    run = start(client, clock, 80, batch, phone_number_id="2001", token="token-2001")
    await run_clock(clock, lambda: run.task.done(), step_s=0.005)
    await run.task  # it stopped by itself
    assert run.pipeline.halted is not None
    assert run.pipeline.halted.code == 190
    unsent = run.pipeline.take_unsent()
    settled = {r.recipient_id for r in run.settled + run.dead}
    assert not settled
    assert sorted(m.recipient_id for m in unsent) == [m.recipient_id for m in batch]
    assert (await sandbox.audit())["accepted"] == 0
