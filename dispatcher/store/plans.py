"""What the planner does with a repository's statement: the plan of the SQL it really sends.

A repository method is one round trip. :func:`capture` runs it over a probe standing in for
the pool, which records the statement and its arguments instead of running them; the plan is
then read twice, each inside a transaction that is rolled back (a modifying statement changes
nothing):

- the custom plan, with ``EXPLAIN ANALYZE`` (the plan made for these very values, and what
  it cost);
- the generic plan (``plan_cache_mode = force_generic_plan``): a statement asyncpg keeps
  prepared switches to it after a few runs when the planner finds it no worse, so it must
  not scan the big tables either.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from dispatcher.crypto import Keyring, generate_key
from dispatcher.store import Store

_names = itertools.count()

BIG_TABLES = frozenset(
    {
        "whatsapp_campaign_recipients",
        "whatsapp_portfolio_contacts",
        "whatsapp_retry_inbox",
        "whatsapp_recipient_attempts",
    }
)
"""Tables that grow with the recipients (the retry inbox with a mass failure, the attempts
with every retry): no hot-path statement may read them sequentially."""


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    args: tuple[Any, ...]


class _Captured(Exception):
    def __init__(self, statement: Statement) -> None:
        super().__init__("statement captured")
        self.statement = statement


class _Probe:
    """Stands in for an ``asyncpg.Pool``: the first statement sent is captured, not run."""

    def _capture(self, sql: str, *args: Any) -> Any:
        raise _Captured(Statement(sql, args))

    async def fetch(self, sql: str, *args: Any) -> Any:
        return self._capture(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return self._capture(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return self._capture(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return self._capture(sql, *args)

    # A method that takes a connection (``async with pool.acquire() as conn,
    # conn.transaction()``) gets the probe itself.
    def acquire(self) -> _Probe:
        return self

    def transaction(self) -> _Probe:
        return self

    async def __aenter__(self) -> _Probe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def capture(call: Callable[[Store], Awaitable[object]]) -> Statement:
    """The statement ``call`` sends first through the store's pool (it is not run)."""
    try:
        # A key of its own: no hot-path statement seals or opens a secret.
        keyring = Keyring([generate_key()])
        await call(Store.over(cast(asyncpg.Pool, _Probe()), keyring))
    except _Captured as captured:
        return captured.statement
    raise LookupError("the call sent no statement")


@dataclass(frozen=True, slots=True)
class PlanSummary:
    root: str
    """The top plan node (ModifyTable for a write)."""
    indexes: tuple[str, ...]
    seq_scans: tuple[str, ...]
    """Tables read sequentially, anywhere in the plan."""
    estimated_rows: float
    actual_ms: float | None
    """Execution time of ``EXPLAIN ANALYZE`` (None: not analyzed)."""
    rows_discarded: int
    """Rows of the big tables read then thrown away by a filter (analyzed plans only): an
    index scan in the wrong order (e.g. by id, filtering a campaign) reads the table too."""

    @property
    def scans_big_table(self) -> bool:
        return any(table in BIG_TABLES for table in self.seq_scans)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _discarded(node: dict[str, Any]) -> float:
    if node.get("Relation Name") not in BIG_TABLES:
        return 0.0
    removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return float(removed) * float(node.get("Actual Loops", 1))


def summarize(explained: Any) -> PlanSummary:
    """Read ``EXPLAIN (FORMAT JSON)`` output (its text or decoded)."""
    document = json.loads(explained) if isinstance(explained, str) else explained
    top = document[0]
    plan = top["Plan"]
    nodes = list(_nodes(plan))
    # Init plans and sub plans are children too: a Seq Scan in a CTE counts.
    return PlanSummary(
        root=plan["Node Type"],
        indexes=tuple(dict.fromkeys(n["Index Name"] for n in nodes if "Index Name" in n)),
        seq_scans=tuple(
            dict.fromkeys(n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan")
        ),
        estimated_rows=float(plan["Plan Rows"]),
        actual_ms=top.get("Execution Time"),
        rows_discarded=round(sum(_discarded(n) for n in nodes)),
    )


async def custom_plan(
    conn: asyncpg.Connection, statement: Statement, *, analyze: bool = True
) -> PlanSummary:
    """The plan for these arguments, executed (``analyze``) and rolled back."""
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    transaction = conn.transaction()
    await transaction.start()
    try:
        explained = await conn.fetchval(f"EXPLAIN ({options}) {statement.sql}", *statement.args)
    finally:
        await transaction.rollback()
    return summarize(explained)


async def _literals(conn: asyncpg.Connection, statement: Statement) -> list[str]:
    """Each argument as an SQL literal, rendered by the server from its declared type."""
    parameters: Sequence[Any] = (await conn.prepare(statement.sql)).get_parameters()
    literals = []
    for parameter, value in zip(parameters, statement.args, strict=True):
        kind = await conn.fetchval("SELECT format_type($1, NULL)", parameter.oid)
        literals.append(await conn.fetchval(f"SELECT quote_nullable($1::{kind}::text)", value))
    return literals


async def generic_plan(conn: asyncpg.Connection, statement: Statement) -> PlanSummary:
    """The plan a long-lived prepared statement may settle on: made without the values."""
    literals = await _literals(conn, statement)
    name = f"hot_path_probe_{next(_names)}"
    execute = f"EXECUTE {name}" + (f"({', '.join(literals)})" if literals else "")
    # A prepared statement outlives a rollback: deallocated apart, whatever happens.
    await conn.execute(f"PREPARE {name} AS {statement.sql}")
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
        finally:
            await transaction.rollback()
    finally:
        await conn.execute(f"DEALLOCATE {name}")
    return summarize(explained)
