"""One durable stream: a Redis stream read through a consumer group, with a dead-letter stream.

A job is a stream entry ``{payload, deliveries}``; its id is the entry id. It is removed
(XACK + XDEL) only when its holder says it is settled, so a process that dies holding it
loses nothing: :meth:`DurableStream.reclaim` appends it again for any consumer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

GROUP = "dispatcher"
"""The consumer group every stream is read through."""
RECOVERY_CONSUMER = "recovery"
MAX_DELIVERIES = 5
"""A job reclaimed from dead consumers this many times goes to the dead-letter stream."""


def _script(client: aioredis.Redis, name: str) -> AsyncScript:
    source = (resources.files("dispatcher.queue") / "scripts" / f"{name}.lua").read_text()
    return client.register_script(source)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Entry:
    """A job as read from a stream."""

    job_id: str
    payload: bytes
    deliveries: int
    """How many times it was reclaimed from a consumer that stopped answering (0 at first)."""


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """A job in a dead-letter stream."""

    dlq_id: str
    job_id: str
    """The id it had when it was dead-lettered."""
    payload: bytes
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Reclaimed:
    requeued: dict[str, str]
    """Old job id -> the new job id it was appended again under."""
    dead: list[str]
    """Job ids moved to the dead-letter stream (reclaimed too many times)."""


@dataclass(frozen=True, slots=True)
class StreamStats:
    pending: int
    """Waiting, not yet delivered to any consumer."""
    processing: int
    """Delivered to a consumer, not acknowledged yet."""
    dlq: int


class Scripts:
    """The Lua scripts, registered once per client (sent by SHA, loaded on demand)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.reclaim = _script(client, "reclaim")
        self.dead_letter = _script(client, "dead_letter")
        self.retry = _script(client, "retry")


class DurableStream:
    """One stream key, its consumer group and its dead-letter stream."""

    def __init__(self, client: aioredis.Redis, scripts: Scripts, key: str, dlq_key: str) -> None:
        self._client = client
        self._scripts = scripts
        self.key = key
        self.dlq_key = dlq_key
        self._group_ready = False

    async def ensure_group(self) -> None:
        """Create the stream and its group if missing (from the start: nothing is skipped)."""
        if self._group_ready:
            return
        try:
            await self._client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def forget_group(self) -> None:
        """The group may be gone (Redis lost its data): create it again before the next use."""
        self._group_ready = False

    async def add(self, payload: bytes) -> str:
        await self.ensure_group()
        job_id: Any = await self._client.xadd(self.key, {"payload": payload, "deliveries": 0})
        return _text(job_id)

    async def add_many(self, payloads: Sequence[bytes]) -> list[str]:
        await self.ensure_group()
        async with self._client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(self.key, {"payload": payload, "deliveries": 0})
            ids = await pipe.execute()
        return [_text(job_id) for job_id in ids]

    async def read(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        """Up to ``count`` new jobs for ``consumer``, waiting up to ``block_ms`` (None: no wait)."""
        await self.ensure_group()
        reply: Any
        try:
            reply = await self._client.xreadgroup(
                GROUP, consumer, {self.key: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream was cleared under us: recreate it and its group, read again.
            self._group_ready = False
            await self.ensure_group()
            reply = await self._client.xreadgroup(
                GROUP, consumer, {self.key: ">"}, count=count, block=block_ms
            )
        entries: list[Entry] = []
        for _key, messages in reply or []:
            for job_id, fields in messages:
                entries.append(
                    Entry(_text(job_id), fields[b"payload"], int(fields.get(b"deliveries", 0)))
                )
        return entries

    async def ack(self, job_ids: Sequence[str]) -> int:
        """Acknowledge and delete settled jobs; returns how many were still unacknowledged
        (acking twice is harmless: the second time counts 0)."""
        if not job_ids:
            return 0
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, GROUP, *job_ids)
            pipe.xdel(self.key, *job_ids)
            acked, _deleted = await pipe.execute()
        return int(acked)

    async def touch(self, consumer: str, job_ids: Sequence[str]) -> list[str]:
        """Reset the idle time of jobs ``consumer`` still holds (XCLAIM JUSTID), so they are
        not reclaimed while it works on them; returns those it still holds. A job missing
        from the answer was reclaimed or settled: the caller must drop it."""
        if not job_ids:
            return []
        held: Any = await self._client.xclaim(
            self.key, GROUP, consumer, min_idle_time=0, message_ids=list(job_ids), justid=True
        )
        return [_text(job_id) for job_id in held]

    async def reclaim(
        self, min_idle_ms: int, *, count: int = 100, max_deliveries: int = MAX_DELIVERIES
    ) -> Reclaimed:
        """Jobs delivered more than ``min_idle_ms`` ago and never acked (their consumer died)
        are appended again for any consumer, or dead-lettered past ``max_deliveries``."""
        await self.ensure_group()  # a stream nobody wrote to yet has nothing to reclaim
        requeued: dict[str, str] = {}
        dead: list[str] = []
        cursor = "0-0"
        while True:
            reply: Any = await self._scripts.reclaim(
                keys=[self.key, self.dlq_key],
                args=[
                    GROUP,
                    RECOVERY_CONSUMER,
                    min_idle_ms,
                    count,
                    max_deliveries,
                    int(time.time() * 1000),
                    cursor,
                ],
            )
            cursor = _text(reply[0])
            pairs = [_text(item) for item in reply[1]]
            requeued.update(zip(pairs[::2], pairs[1::2], strict=True))
            dead.extend(_text(item) for item in reply[2])
            if cursor == "0-0":
                return Reclaimed(requeued, dead)

    async def dead_letter(self, job_id: str, payload: bytes, reason: str) -> str | None:
        """Move a job its caller still holds to the dead-letter stream; returns its id there,
        or None when the job was no longer held (already settled or reclaimed)."""
        dlq_id = await self._scripts.dead_letter(
            keys=[self.key, self.dlq_key],
            args=[GROUP, job_id, payload, reason, int(time.time() * 1000)],
        )
        return None if dlq_id is None else _text(dlq_id)

    async def keep_dead(self, payload: bytes, reason: str) -> str:
        """Put a payload that never was a job straight on the dead-letter stream."""
        dlq_id: Any = await self._client.xadd(
            self.dlq_key,
            {"payload": payload, "job": "", "reason": reason, "at": int(time.time() * 1000)},
        )
        return _text(dlq_id)

    async def dead_letters(self, count: int = 100, after: str = "-") -> list[DeadEntry]:
        """A page of the dead-letter stream, oldest first (``after``: the last ``dlq_id`` seen)."""
        start = after if after == "-" else f"({after}"
        rows: Any = await self._client.xrange(self.dlq_key, min=start, max="+", count=count)
        return [
            DeadEntry(
                dlq_id=_text(dlq_id),
                job_id=_text(fields.get(b"job", b"")),
                payload=fields[b"payload"],
                reason=_text(fields.get(b"reason", b"")),
                at_ms=int(fields.get(b"at", 0)),
            )
            for dlq_id, fields in rows
        ]

    async def retry_dead(self, job_id: str | None = None) -> list[str]:
        """Put dead letters back on the stream (all, or those whose job id, else whose
        dead-letter id, is ``job_id``); returns the new job ids.

        Job ids and dead-letter ids are both stream ids, so one may equal the other's: an
        original job id wins, and a dead-letter id is only tried when none matches.
        """
        await self.ensure_group()
        entries: list[DeadEntry] = []
        after = "-"
        while page := await self.dead_letters(count=500, after=after):
            entries.extend(page)
            after = page[-1].dlq_id
        if job_id is not None:
            entries = [e for e in entries if e.job_id == job_id] or [
                e for e in entries if e.dlq_id == job_id
            ]
        new_ids: list[str] = []
        for entry in entries:
            new_id = await self._scripts.retry(
                keys=[self.dlq_key, self.key], args=[entry.dlq_id, entry.payload]
            )
            if new_id is not None:
                new_ids.append(_text(new_id))
        return new_ids

    async def clear(self, *, dlq_only: bool = False) -> int:
        """Delete every job (waiting, in progress and dead-lettered, or only the dead letters);
        returns how many were deleted. The group is recreated on the next use."""
        keys = [self.dlq_key] if dlq_only else [self.key, self.dlq_key]
        async with self._client.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.xlen(key)
            for key in keys:
                pipe.delete(key)
            replies = await pipe.execute()
        if not dlq_only:
            self._group_ready = False
        return sum(int(n) for n in replies[: len(keys)])

    async def stats(self) -> StreamStats:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xlen(self.key)
            pipe.xlen(self.dlq_key)
            pipe.xinfo_groups(self.key)
            length, dlq, groups = await pipe.execute(raise_on_error=False)
        processing = 0
        if isinstance(groups, list):
            for group in groups:
                if _text(group.get("name", b"")) == GROUP:
                    processing = int(group.get("pending", 0))
        # Acked jobs are deleted, so the stream holds exactly the waiting and in-progress ones.
        length = int(length) if isinstance(length, int) else 0
        return StreamStats(pending=max(0, length - processing), processing=processing, dlq=int(dlq))
