"""The budget on PostgreSQL: the router's path on the event loop, one statement per check.

The router's budget path runs on asyncio psycopg connections (`_LoopPool`): no hop to a worker
thread and back. The pool is bounded (`CLEANDAY_BUDGET_POOL_SIZE` connections per event loop, 10
by default): calls beyond it wait for a connection instead of opening more, so a busy worker
never exhausts the server's `max_connections` (one process opened 86 connections for 90
concurrent calls before, and four processes ran into "too many clients").

The binding and the latest preset are cached per behavior; the reservation is one statement, the
function `cleanday_reserve` (migration 0004_budget_reserve), which takes the key's lock (the
binding row, FOR UPDATE), checks that the cached rows are still current by their fingerprint,
and inserts the reservation when spend + estimate fits the cap. A rebinding or a new preset
version is thus seen on the very next call, which then plans again on rows read under the
lock. The spend it checks is the key's running total plus its live reservations (migration
0010b_spend_totals), not a sum over the period's calls.

These budget transactions do not wait for their WAL record to reach the disk: SQLite's ledger
(WAL, synchronous=NORMAL) already works this way, and on a busy disk the flush is most of a
reservation's time. Visibility and locking are unchanged, and a commit the server has answered
survives the calling process dying; only a crash of the database server (or its machine) within
the WAL writer's delay (wal_writer_delay, 200 ms by default, at most three times that) can lose
the last budget transactions. A lost settlement leaves its row `reserved`, holding its estimate
like a dead process's reservation; a lost reservation belongs to a call that was in flight when
the database went down.

The synchronous API (`SpendStore.reserve`, `settle`: the CLI, tests, other threads) runs the
same statements through the engine's own pool (`SqlAlchemyTx`), with the same row lock.

psycopg is imported on first use, so that a process on SQLite never pays for its import.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any, TypeVar

from sqlalchemy import Engine, event

from cleanday.budget.base import (
    RESERVATION_TTL,
    BindingRow,
    PrefetchedTx,
    Prepare,
    PresetHead,
    Reservation,
    Settlement,
    over_cap,
    reserve_in,
    unbound,
)
from cleanday.budget.periods import as_utc, period_bounds
from cleanday.budget.sql import SETTLE, SQL_SETTLE, SqlAlchemyTx, pyformat
from cleanday.errors import BudgetExceeded, ConfigError

T = TypeVar("T")
log = logging.getLogger("cleanday.budget")

_HEAD_FOR_UPDATE = (
    "SELECT b.behavior, b.key_ref, b.cap_usd, b.cadence, b.transports, b.guardrails, "
    "b.openrouter_key_hash, b.preset_slug, p.version, p.content_hash, p.source, p.created_at, "
    "p.content, cleanday_budget_fingerprint(b, p.version, p.content_hash) "
    "FROM routing_bindings b LEFT JOIN LATERAL (SELECT version, content_hash, source, "
    "created_at, content FROM preset_versions WHERE behavior = b.behavior ORDER BY version DESC "
    "LIMIT 1) p ON true WHERE b.behavior = %(behavior)s FOR UPDATE OF b"
)
_LOCKED_HEAD = f"BEGIN; {_HEAD_FOR_UPDATE}"
_RESERVE_CALL = (
    "SELECT fresh, spent, id FROM cleanday_reserve(%(behavior)s, %(fp)s, %(start)s, %(end)s, "
    "%(live_since)s, %(at)s, %(run_id)s, %(transport)s, %(model)s, %(estimate)s)"
)
_SETTLE = pyformat(SETTLE)
# set once per connection: the connections of `_LoopPool` carry budget transactions only
_NO_FLUSH = "SET synchronous_commit TO OFF"


@dataclass(frozen=True)
class _Head:
    """A behavior's binding and latest preset as last read, with the fingerprint of both."""

    fingerprint: str
    binding: BindingRow
    preset: PresetHead | None


@contextmanager
def _migrated() -> Iterator[None]:
    """Name the fix when the database predates the budget functions."""
    from psycopg import errors

    try:
        yield
    except errors.UndefinedFunction:
        raise ConfigError(
            "the ledger database has no budget function cleanday_reserve: it predates "
            "migration 0004_budget_reserve; start the ledger service once (it migrates its "
            "database on start) before the worker"
        ) from None


async def _cursor(conn: Any, sql: str, params: dict[str, Any]) -> Any:
    """Send `sql` (one or more statements) as a single simple-protocol message, the parameters
    bound client-side: one packet each way, so on a busy machine one wake-up per transaction
    instead of one per statement. Several statements without BEGIN run as one transaction."""
    from psycopg import AsyncClientCursor

    cur = AsyncClientCursor(conn)
    await cur.execute(sql, params)
    return cur


async def _first_row(conn: Any, sql: str, params: dict[str, Any]) -> Any:
    cur = await _cursor(conn, sql, params)
    return await cur.fetchone()


async def _last_row(conn: Any, sql: str, params: dict[str, Any]) -> Any:
    cur = await _cursor(conn, sql, params)
    while cur.nextset():
        pass
    return await cur.fetchone()


DEFAULT_POOL_SIZE = 10


class _LoopPool:
    """At most `size` asyncio psycopg connections of one event loop (a connection belongs to
    its loop); a caller beyond them waits for one to come back.

    Autocommit connections without synchronous commit: a budget transaction is one statement
    (the reservation, the settlement), or BEGIN ... COMMIT across two messages (a reservation
    on rows read under the lock). A connection that raised, or is left inside a transaction,
    is closed, and its place goes to the next caller.
    """

    IDLE_PING_SECONDS = 30.0

    def __init__(self, dsn: str, size: int = DEFAULT_POOL_SIZE) -> None:
        if size < 1:
            raise ConfigError(f"CLEANDAY_BUDGET_POOL_SIZE is {size}; it must be at least 1")
        self._dsn = dsn
        self.size = size
        self._idle: list[tuple[Any, float]] = []
        # one permit per connection leased: idle ones hold none, so at most `size` are open
        self._leases = asyncio.Semaphore(size)

    async def _acquire(self) -> Any:
        import psycopg

        while self._idle:
            conn, since = self._idle.pop()
            if conn.closed:
                continue
            if monotonic() - since <= self.IDLE_PING_SECONDS:
                return conn
            try:
                await conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                await conn.close()
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await conn.execute(_NO_FLUSH)
        return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        from psycopg import pq

        async with self._leases:
            conn = await self._acquire()
            try:
                yield conn
            except BaseException:
                # its state is unknown (an error inside a transaction, a cancellation mid-way)
                conn.pgconn.finish()
                raise
            idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
            if idle and len(self._idle) < self.size:
                self._idle.append((conn, monotonic()))
            else:
                conn.pgconn.finish()

    def close(self) -> None:
        # synchronous, for engine.dispose(): closing the socket needs no event loop
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.pgconn.finish()


class _EnginePools:
    """One `_LoopPool` per event loop, for one engine."""

    def __init__(self, engine: Engine, size: int) -> None:
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.size = size
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def for_running_loop(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = _LoopPool(self._dsn, self.size)
            return pool

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()


_POOLS: weakref.WeakKeyDictionary[Engine, _EnginePools] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def _loop_pool(engine: Engine, size: int = DEFAULT_POOL_SIZE) -> _LoopPool:
    """The running loop's budget connections to `engine`'s database, shared by every store (the
    first store of an engine sets the size)."""
    with _POOLS_LOCK:
        pools = _POOLS.get(engine)
        if pools is None:
            pools = _POOLS[engine] = _EnginePools(engine, size)
            # engine.dispose() (tests, shutdown) closes these too, so no connection outlives it
            event.listen(engine, "engine_disposed", lambda _engine: pools.close())
    return pools.for_running_loop()


class PostgresBudget:
    """`BudgetBackend` on PostgreSQL."""

    def __init__(self, engine: Engine, timezone: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.engine = engine
        self.timezone = timezone
        self.pool_size = pool_size
        # binding and preset per behavior, revalidated by every reservation
        self._heads: dict[str, _Head] = {}
        self._pending: set[asyncio.Task[None]] = set()

    # --- synchronous: through the engine's pool -------------------------------------

    def reserve(
        self, behavior: str, prepare: Prepare[T], now: datetime, run_id: str | None
    ) -> tuple[T, Reservation]:
        with self.engine.connect() as conn:
            tx = conn.begin()
            try:
                result = reserve_in(
                    SqlAlchemyTx(conn), behavior, prepare, now, self.timezone, run_id
                )
            except BudgetExceeded:
                tx.commit()  # the running total it summed (cleanday_reserve keeps it too)
                raise
            except BaseException:
                tx.rollback()
                raise
            tx.commit()
            return result

    def settle(self, reservation: Reservation, settlement: Settlement, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(SQL_SETTLE, settlement.params(reservation, as_utc(at)))

    # --- on the event loop ----------------------------------------------------------

    async def reserve_async(
        self, behavior: str, prepare: Prepare[T], now: datetime, run_id: str | None
    ) -> tuple[T, Reservation]:
        """With the behavior's binding and preset cached, `prepare` runs on the cached rows and
        the reservation is one statement (`cleanday_reserve`: lock the key, insert the
        reservation if the fingerprint of binding and preset is unchanged and spend + estimate
        fits). If the rows changed (or nothing is cached yet, or `prepare` refused on cached
        rows), it reads them under the lock and runs `prepare` again."""
        head = self._heads.get(behavior)
        if head is not None:
            try:
                prepared = prepare(PrefetchedTx(head.preset), head.binding)
            except Exception:
                prepared = None  # perhaps only stale: decide on fresh rows below
            if prepared is not None:
                result, estimate, transport, model = prepared
                async with _loop_pool(self.engine, self.pool_size).connection() as conn:
                    cur = await conn.execute(
                        _RESERVE_CALL,
                        self._reserve_params(head, now, run_id, estimate, transport, model),
                    )
                    row = await cur.fetchone()
                if row is not None and row[0]:
                    if row[2] is None:
                        _, end = period_bounds(head.binding.cadence, now, self.timezone)
                        raise over_cap(head.binding, float(row[1]), estimate, end, self.timezone)
                    return result, Reservation(int(row[2]), behavior, estimate)
                self._heads.pop(behavior, None)
        # nothing cached, or the cache is stale: plan on rows read under the key's lock
        for _ in range(3):
            async with _loop_pool(self.engine, self.pool_size).connection() as conn:
                try:
                    with _migrated():  # a cold cache comes here first
                        row = await _last_row(conn, _LOCKED_HEAD, {"behavior": behavior})
                    if row is None:
                        raise unbound(behavior)
                    binding = BindingRow(
                        row[0], row[1], float(row[2]), row[3], row[4], row[5], row[6], row[7]
                    )
                    fresh = _Head(
                        row[13], binding, None if row[8] is None else PresetHead(*row[8:13])
                    )
                    result, estimate, transport, model = prepare(
                        PrefetchedTx(fresh.preset), binding
                    )
                except Exception:
                    await conn.execute("ROLLBACK")
                    raise
                row = await _first_row(
                    conn,
                    f"{_RESERVE_CALL}; COMMIT",
                    self._reserve_params(fresh, now, run_id, estimate, transport, model),
                )
            # the key stays locked from the read to the reservation, so the fingerprint agrees
            # unless a preset version was added while this transaction waited for the lock
            if row[0]:
                self._heads[behavior] = fresh
                if row[2] is None:
                    _, end = period_bounds(binding.cadence, now, self.timezone)
                    raise over_cap(binding, float(row[1]), estimate, end, self.timezone)
                return result, Reservation(int(row[2]), behavior, estimate)
        raise RuntimeError(
            f"behavior {behavior!r}: its binding or preset kept changing during the budget check"
        )

    def _reserve_params(
        self,
        head: _Head,
        now: datetime,
        run_id: str | None,
        estimate: float,
        transport: str,
        model: str,
    ) -> dict[str, Any]:
        start, end = period_bounds(head.binding.cadence, now, self.timezone)
        at = as_utc(now)
        return {
            "behavior": head.binding.behavior,
            "fp": head.fingerprint,
            "start": start,
            "end": end,
            "live_since": at - RESERVATION_TTL,
            "at": at,
            "run_id": run_id,
            "transport": transport,
            "model": model,
            "estimate": estimate,
        }

    async def settle_async(
        self, reservation: Reservation, settlement: Settlement, at: datetime
    ) -> None:
        """In one round trip, without waiting for the disk (see the module docstring)."""
        async with _loop_pool(self.engine, self.pool_size).connection() as conn:
            await conn.execute(_SETTLE, settlement.params(reservation, as_utc(at)))

    def settle_soon(self, reservation: Reservation, settlement: Settlement, at: datetime) -> None:
        """A task on the running loop that starts at the caller's next await; `drain()` waits
        for those still in flight."""
        task = asyncio.get_running_loop().create_task(
            self._settle_logged(reservation, settlement, at)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_logged(
        self, reservation: Reservation, settlement: Settlement, at: datetime
    ) -> None:
        try:
            await self.settle_async(reservation, settlement, at)
        except Exception:
            log.exception(
                "settling reservation %s of %s ($%.4f) failed; it holds its estimate until "
                "it expires",
                reservation.id,
                reservation.behavior,
                settlement.cost_usd,
            )

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        mine = [t for t in self._pending if t.get_loop() is loop]
        if mine:
            await asyncio.gather(*mine)
