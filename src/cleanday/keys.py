"""Model keys: resolving a key reference to its secret, and the budget each key may spend."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, bindparam, column, event, select, text
from sqlmodel import Session

from cleanday.db import is_sqlite
from cleanday.errors import (
    BudgetExceeded,
    ConfigError,
    SecretResolutionError,
    UnknownBehaviorError,
)
from cleanday.router.tables import KeySpend, RoutingBinding

REDACTED = "[redacted]"
log = logging.getLogger("cleanday.keys")
T = TypeVar("T")


class Secret:
    """A resolved secret; its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class Redactor:
    """Remembers secrets and strikes them out of any text.

    Every secret any Redactor learns is also learned by the process-wide one behind
    `redact_secrets`, so text that never passed through the router (an exception raised by a
    behavior's own step code, say) can be cleaned with every secret this process resolved.
    """

    def __init__(self, *, _process_wide: bool = False) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._process_wide = _process_wide

    def add(self, value: str) -> None:
        if value:
            with self._lock:
                self._values.add(value)
            if not self._process_wide:
                _PROCESS_REDACTOR.add(value)

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)  # a longer secret first
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


_PROCESS_REDACTOR = Redactor(_process_wide=True)


def redact_secrets(text: str) -> str:
    """`text` with every secret this process resolved (or was configured with) struck out."""
    return _PROCESS_REDACTOR(text)


SchemeResolver = Callable[[str], str]


class SecretResolver:
    """Turns `env:NAME`, `file:/path` or `<scheme>:<rest>` into a Secret.

    Further schemes (a secret manager, a vault) plug in with `register(scheme, fn)`; errors
    name the reference, never a value.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._env = env if env is not None else os.environ
        self.redactor = redactor or Redactor()
        self._schemes: dict[str, SchemeResolver] = {"env": self._from_env, "file": self._from_file}

    def register(self, scheme: str, resolver: SchemeResolver) -> None:
        self._schemes[scheme] = resolver

    def resolve(self, ref: str) -> Secret:
        scheme, sep, rest = ref.partition(":")
        if not sep or not rest:
            raise SecretResolutionError(
                f"key reference {ref!r} has no scheme; write env:NAME, file:/path "
                f"or one of {sorted(self._schemes)}"
            )
        resolver = self._schemes.get(scheme)
        if resolver is None:
            raise SecretResolutionError(
                f"key reference {ref!r}: unknown scheme {scheme!r}; known: {sorted(self._schemes)}"
            )
        value = resolver(rest).strip()
        if not value:
            raise SecretResolutionError(f"key reference {ref!r} resolved to an empty value")
        self.redactor.add(value)
        return Secret(value)

    def _from_env(self, name: str) -> str:
        value = self._env.get(name)
        if value is None:
            raise SecretResolutionError(f"key reference env:{name}: environment variable not set")
        return value

    def _from_file(self, path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise SecretResolutionError(
                f"key reference file:{path}: cannot read the file ({exc.strerror})"
            ) from None


# --- periods ---------------------------------------------------------------------------


def period_bounds(cadence: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The budget period containing `now`: starts 00:00 local time, as aware UTC datetimes."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start: date
    end: date
    if cadence == "day":
        start, end = today, today + timedelta(days=1)
    elif cadence == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    elif cadence == "month":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown cadence {cadence!r}; use day, week or month")
    return (
        datetime.combine(start, time(), tzinfo=zone).astimezone(UTC),
        datetime.combine(end, time(), tzinfo=zone).astimezone(UTC),
    )


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return dt.astimezone(UTC)


# --- spend -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    id: int
    behavior: str
    estimate_usd: float


@dataclass(frozen=True)
class KeyReport:
    """One row of `cleanday keys`."""

    behavior: str
    key_ref: str
    cadence: str
    cap_usd: float
    spend_usd: float
    share_used: float
    projected_usd: float
    period_start: datetime
    period_end: datetime


_AT = KeySpend.__table__.c.at.type  # type: ignore[attr-defined]
_JSON = RoutingBinding.__table__.c.transports.type  # type: ignore[attr-defined]

# The budget check runs before every model call: its statements are built once (text with
# typed parameters), which keeps SQLAlchemy's per-statement construction off the hot path.
_BINDING_COLUMNS = (
    "SELECT behavior, key_ref, cap_usd, cadence, transports, guardrails, openrouter_key_hash, "
    "preset_slug FROM routing_bindings WHERE behavior = :behavior"
)
SQL_BINDING = text(_BINDING_COLUMNS).columns(
    column("behavior"),
    column("key_ref"),
    column("cap_usd"),
    column("cadence"),
    column("transports", _JSON),
    column("guardrails", _JSON),
    column("openrouter_key_hash"),
    column("preset_slug"),
)
_SQL_BINDING_FOR_UPDATE = text(_BINDING_COLUMNS + " FOR UPDATE").columns(
    column("behavior"),
    column("key_ref"),
    column("cap_usd"),
    column("cadence"),
    column("transports", _JSON),
    column("guardrails", _JSON),
    column("openrouter_key_hash"),
    column("preset_slug"),
)
# A live reservation counts its estimate, anything else its actual cost. A reservation older
# than RESERVATION_TTL belongs to a process that died mid-call (no call lasts that long: the
# longest timeout class is minutes), so it stops holding budget.
RESERVATION_TTL = timedelta(minutes=15)
_SPENT_SQL = (
    "SELECT COALESCE(SUM(CASE WHEN status = 'reserved' THEN "
    "(CASE WHEN at >= :live_since THEN estimate_usd ELSE 0 END) ELSE cost_usd END), 0) "
    "FROM key_spend WHERE behavior = :behavior AND at >= :start AND at < :end"
)
_SQL_SPENT = text(_SPENT_SQL).bindparams(
    bindparam("start", type_=_AT), bindparam("end", type_=_AT), bindparam("live_since", type_=_AT)
)
_SQL_RESERVE = text(
    "INSERT INTO key_spend (behavior, at, run_id, transport, model, estimate_usd, cost_usd, "
    "status, tokens_in, tokens_out) VALUES (:behavior, :at, :run_id, :transport, :model, "
    ":estimate, 0, 'reserved', 0, 0) RETURNING id"
).bindparams(bindparam("at", type_=_AT))
_SQL_LATEST_PRESET = (
    "SELECT version, content_hash, source, created_at, content FROM preset_versions "
    "WHERE behavior = {p} ORDER BY version DESC LIMIT 1"
)


_SQL_LATEST_PRESET_SA = text(_SQL_LATEST_PRESET.format(p=":behavior")).columns(
    column("version"),
    column("content_hash"),
    column("source"),
    column("created_at", _AT),
    column("content", _JSON),
)
_SETTLE_SQL = (
    "UPDATE key_spend SET cost_usd = :cost, status = :status, tokens_in = :tokens_in, "
    "tokens_out = :tokens_out, settled_at = :settled_at, transport = COALESCE(:transport, "
    "transport), model = COALESCE(:model, model) WHERE id = :id"
)
_SQL_SETTLE = text(
    "UPDATE key_spend SET cost_usd = :cost, status = :status, tokens_in = :tokens_in, "
    "tokens_out = :tokens_out, settled_at = :settled_at, transport = COALESCE(:transport, "
    "transport), model = COALESCE(:model, model) WHERE id = :id"
).bindparams(bindparam("settled_at", type_=_AT))


@dataclass(frozen=True)
class BindingRow:
    """A behavior's routing binding as read on the hot path (no secret: a reference)."""

    behavior: str
    key_ref: str
    cap_usd: float
    cadence: str
    transports: list[str]
    guardrails: dict[str, Any]
    openrouter_key_hash: str | None
    preset_slug: str | None


@dataclass(frozen=True)
class PresetHead:
    """The latest preset version's row; `content` is JSON text or already a dict."""

    version: int
    content_hash: str
    source: str
    created_at: datetime
    content: Any


def _sqlite_ts(dt: datetime) -> str:
    # the text form SQLAlchemy stores a DateTime in on SQLite, so that comparisons line up
    return _utc(dt).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteTx:
    """The hot-path statements straight on the sqlite3 cursor: SQLAlchemy's per-statement
    machinery costs more than SQLite itself here, on every model call."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def binding(self, behavior: str) -> BindingRow | None:
        self.cur.execute(_BINDING_COLUMNS.replace(":behavior", "?"), (behavior,))
        row = self.cur.fetchone()
        if row is None:
            return None
        return BindingRow(
            row[0],
            row[1],
            float(row[2]),
            row[3],
            json.loads(row[4]),
            json.loads(row[5]),
            row[6],
            row[7],
        )

    def latest_preset(self, behavior: str) -> PresetHead | None:
        self.cur.execute(_SQL_LATEST_PRESET.format(p="?"), (behavior,))
        row = self.cur.fetchone()
        if row is None:
            return None
        created = datetime.fromisoformat(row[3])
        return PresetHead(
            row[0],
            row[1],
            row[2],
            created if created.tzinfo else created.replace(tzinfo=UTC),
            row[4],
        )

    def spent(self, behavior: str, start: datetime, end: datetime, live_since: datetime) -> float:
        self.cur.execute(
            _SPENT_SQL.replace(":behavior", "?1")
            .replace(":start", "?2")
            .replace(":end", "?3")
            .replace(":live_since", "?4"),
            (behavior, _sqlite_ts(start), _sqlite_ts(end), _sqlite_ts(live_since)),
        )
        return float(self.cur.fetchone()[0])

    def insert_reservation(self, values: dict[str, Any]) -> int:
        self.cur.execute(
            "INSERT INTO key_spend (behavior, at, run_id, transport, model, estimate_usd, "
            "cost_usd, status, tokens_in, tokens_out) VALUES (?, ?, ?, ?, ?, ?, 0, 'reserved', "
            "0, 0)",
            (
                values["behavior"],
                _sqlite_ts(values["at"]),
                values["run_id"],
                values["transport"],
                values["model"],
                values["estimate"],
            ),
        )
        return int(self.cur.lastrowid)


class SqlAlchemyTx:
    """The same statements through SQLAlchemy (PostgreSQL), the binding row locked."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def binding(self, behavior: str) -> BindingRow | None:
        row = self.conn.execute(_SQL_BINDING_FOR_UPDATE, {"behavior": behavior}).first()
        if row is None:
            return None
        return BindingRow(**{**row._asdict(), "cap_usd": float(row.cap_usd)})

    def latest_preset(self, behavior: str) -> PresetHead | None:
        row = self.conn.execute(_SQL_LATEST_PRESET_SA, {"behavior": behavior}).first()
        return PresetHead(*row) if row is not None else None

    def spent(self, behavior: str, start: datetime, end: datetime, live_since: datetime) -> float:
        params = {"behavior": behavior, "start": start, "end": end, "live_since": live_since}
        return float(self.conn.execute(_SQL_SPENT, params).scalar_one())

    def insert_reservation(self, values: dict[str, Any]) -> int:
        return int(self.conn.execute(_SQL_RESERVE, values).scalar_one())


# PostgreSQL: the binding locked and the latest preset read in one round trip (the router asks
# for the preset right after the binding, inside the same transaction).
_PG_BINDING_AND_PRESET = (
    "SELECT b.behavior, b.key_ref, b.cap_usd, b.cadence, b.transports, b.guardrails, "
    "b.openrouter_key_hash, b.preset_slug, p.version, p.content_hash, p.source, p.created_at, "
    "p.content FROM routing_bindings b LEFT JOIN LATERAL (SELECT version, content_hash, source, "
    "created_at, content FROM preset_versions WHERE behavior = b.behavior ORDER BY version DESC "
    "LIMIT 1) p ON true WHERE b.behavior = %(behavior)s FOR UPDATE OF b"
)
_PG_SPENT = (
    _SPENT_SQL.replace(":behavior", "%(behavior)s")
    .replace(":start", "%(start)s")
    .replace(":end", "%(end)s")
    .replace(":live_since", "%(live_since)s")
)
_PG_RESERVE = (
    "INSERT INTO key_spend (behavior, at, run_id, transport, model, estimate_usd, cost_usd, "
    "status, tokens_in, tokens_out) VALUES (%(behavior)s, %(at)s, %(run_id)s, %(transport)s, "
    "%(model)s, %(estimate)s, 0, 'reserved', 0, 0) RETURNING id"
)
_PG_SETTLE = (
    "UPDATE key_spend SET cost_usd = %(cost)s, status = %(status)s, tokens_in = %(tokens_in)s, "
    "tokens_out = %(tokens_out)s, settled_at = %(settled_at)s, transport = COALESCE("
    "%(transport)s, transport), model = COALESCE(%(model)s, model) WHERE id = %(id)s"
)


class PsycopgTx:
    """The hot-path statements straight on a psycopg connection (PostgreSQL): no statement
    compilation or result processing per call, and psycopg prepares them server-side after a
    few runs. The binding row is locked FOR UPDATE, as through SQLAlchemy."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._preset: tuple[str, PresetHead | None] | None = None

    def binding(self, behavior: str) -> BindingRow | None:
        row = self.conn.execute(_PG_BINDING_AND_PRESET, {"behavior": behavior}).fetchone()
        if row is None:
            return None
        head = None if row[8] is None else PresetHead(*row[8:13])
        self._preset = (behavior, head)
        return BindingRow(row[0], row[1], float(row[2]), row[3], row[4], row[5], row[6], row[7])

    def latest_preset(self, behavior: str) -> PresetHead | None:
        if self._preset is not None and self._preset[0] == behavior:
            return self._preset[1]
        row = self.conn.execute(
            _SQL_LATEST_PRESET.format(p="%(behavior)s"), {"behavior": behavior}
        ).fetchone()
        return None if row is None else PresetHead(*row)

    def spent(self, behavior: str, start: datetime, end: datetime, live_since: datetime) -> float:
        params = {"behavior": behavior, "start": start, "end": end, "live_since": live_since}
        return float(self.conn.execute(_PG_SPENT, params).fetchone()[0])

    def insert_reservation(self, values: dict[str, Any]) -> int:
        return int(self.conn.execute(_PG_RESERVE, values).fetchone()[0])


LedgerTx = SqliteTx | SqlAlchemyTx | PsycopgTx


class PresetReader(Protocol):
    """What `PresetStore.current` needs from a transaction: the latest preset version's row."""

    def latest_preset(self, behavior: str) -> PresetHead | None: ...


@dataclass(frozen=True)
class PrefetchedTx:
    """The preset head already read (in the reservation's round trip, or cached): planning
    needs no further database access."""

    head: PresetHead | None

    def latest_preset(self, behavior: str) -> PresetHead | None:
        return self.head


class _PgConnections:
    """A few psycopg connections kept open for the budget transactions of one engine.

    The engine's pool pings a connection on every checkout (a round trip) and wraps it in
    SQLAlchemy's transaction machinery; the reservation and the settlement run on every model
    call, so they take a plain connection from here instead. A connection idle for a while is
    pinged before use; one that fails or is left inside a transaction is closed, not reused.
    """

    IDLE_PING_SECONDS = 30.0
    KEEP = 8

    def __init__(self, engine: Engine) -> None:
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()

    def _open(self) -> Any:
        import psycopg

        return psycopg.connect(self._dsn)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        from psycopg import pq

        conn = None
        with self._lock:
            if self._idle:
                conn, since = self._idle.pop()
        if conn is not None and (conn.closed or monotonic() - since > self.IDLE_PING_SECONDS):
            try:
                conn.execute("SELECT 1")
                conn.rollback()
            except Exception:
                conn.close()
                conn = None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                conn.close()
            raise
        finally:
            reusable = not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE
            with self._lock:
                if reusable and len(self._idle) < self.KEEP:
                    self._idle.append((conn, monotonic()))
                    conn = None
            if conn is not None and not conn.closed:
                conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


_PG_POOLS: weakref.WeakKeyDictionary[Engine, _PgConnections] = weakref.WeakKeyDictionary()
_PG_POOLS_LOCK = threading.Lock()


def _pg_connections(engine: Engine) -> _PgConnections:
    with _PG_POOLS_LOCK:
        pool = _PG_POOLS.get(engine)
        if pool is None:
            pool = _PG_POOLS[engine] = _PgConnections(engine)
            # engine.dispose() (tests, shutdown) closes these too, so no connection outlives it
            event.listen(engine, "engine_disposed", lambda _engine: pool.close())
        return pool


# --- PostgreSQL from the event loop ----------------------------------------------------
#
# The router's budget path on PostgreSQL runs on asyncio connections: no hop to a worker thread
# and back. The binding and the latest preset are cached per behavior; the reservation is one
# statement, the function `cleanday_reserve` (migration 0004_budget_reserve), which takes the
# key's lock, checks that the cached rows are still current by their fingerprint, and inserts
# the reservation when spend + estimate fits the cap. A rebinding or a new preset version is
# thus seen on the very next call, which then plans again on rows read under the lock.
#
# The budget transactions do not wait for their WAL record to reach the disk: SQLite's ledger
# (WAL, synchronous=NORMAL) already works this way, and on a busy disk the flush is most of a
# reservation's time. Visibility and locking are unchanged, and a commit the server has answered
# survives the calling process dying; only a crash of the database server (or its machine)
# within the WAL writer's delay (wal_writer_delay, 200 ms by default, at most three times that)
# can lose the last budget transactions. A lost settlement leaves its row `reserved`, holding
# its estimate like a dead process's reservation; a lost reservation belongs to a call that was
# in flight when the database went down.

_PG_HEAD_FOR_UPDATE = (
    "SELECT b.behavior, b.key_ref, b.cap_usd, b.cadence, b.transports, b.guardrails, "
    "b.openrouter_key_hash, b.preset_slug, p.version, p.content_hash, p.source, p.created_at, "
    "p.content, cleanday_budget_fingerprint(b, p.version, p.content_hash) "
    "FROM routing_bindings b LEFT JOIN LATERAL (SELECT version, content_hash, source, "
    "created_at, content FROM preset_versions WHERE behavior = b.behavior ORDER BY version DESC "
    "LIMIT 1) p ON true WHERE b.behavior = %(behavior)s FOR UPDATE OF b"
)
_PG_RESERVE_CALL = (
    "SELECT fresh, spent, id FROM cleanday_reserve(%(behavior)s, %(fp)s, %(start)s, %(end)s, "
    "%(live_since)s, %(at)s, %(run_id)s, %(transport)s, %(model)s, %(estimate)s)"
)
# set once per connection: the connections of `_PgAsyncPool` carry budget transactions only
_PG_NO_FLUSH = "SET synchronous_commit TO OFF"
_PG_LOCKED_HEAD = f"BEGIN; {_PG_HEAD_FOR_UPDATE}"


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


class _PgAsyncPool:
    """Idle asyncio psycopg connections of one event loop (a connection belongs to its loop).

    Autocommit connections without synchronous commit: a budget transaction is one statement
    (the reservation, the settlement), or BEGIN ... COMMIT across two messages (a reservation
    on rows read under the lock). A connection that raised, or is left inside a transaction,
    is closed.
    """

    IDLE_PING_SECONDS = 30.0
    KEEP = 8

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._idle: list[tuple[Any, float]] = []

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
        await conn.execute(_PG_NO_FLUSH)
        return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        from psycopg import pq

        conn = await self._acquire()
        try:
            yield conn
        except BaseException:
            # its state is unknown (an error inside a transaction, a cancellation mid-way)
            conn.pgconn.finish()
            raise
        idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
        if idle and len(self._idle) < self.KEEP:
            self._idle.append((conn, monotonic()))
        else:
            conn.pgconn.finish()

    def close(self) -> None:
        # synchronous, for engine.dispose(): closing the socket needs no event loop
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.pgconn.finish()


class _PgAsyncPools:
    """One `_PgAsyncPool` per event loop, for one engine."""

    def __init__(self, engine: Engine) -> None:
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PgAsyncPool] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def for_running_loop(self) -> _PgAsyncPool:
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = _PgAsyncPool(self._dsn)
            return pool

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()


_PG_ASYNC: weakref.WeakKeyDictionary[Engine, _PgAsyncPools] = weakref.WeakKeyDictionary()


def _pg_async(engine: Engine) -> _PgAsyncPool:
    with _PG_POOLS_LOCK:
        pools = _PG_ASYNC.get(engine)
        if pools is None:
            pools = _PG_ASYNC[engine] = _PgAsyncPools(engine)
            event.listen(engine, "engine_disposed", lambda _engine: pools.close())
    return pools.for_running_loop()


class SpendStore:
    """Budget reservations and spend per key, atomic across processes.

    Reserving takes the database's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL a row
    lock on the behavior's binding) so that the check of spend + estimate against the cap and
    the insert of the reservation are one step: concurrent calls can overshoot the cap only by
    the difference between an estimate and the actual cost.
    """

    def __init__(
        self, engine: Engine, timezone: str = "UTC", clock: Callable[[], datetime] | None = None
    ) -> None:
        self.engine = engine
        self.timezone = timezone
        self.clock = clock or (lambda: datetime.now(UTC))
        # PostgreSQL fast path: binding and preset per behavior, revalidated on every reserve
        self._heads: dict[str, _Head] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @contextmanager
    def _tx(self, behavior: str) -> Iterator[tuple[LedgerTx, BindingRow]]:
        """One reservation at a time per key: SQLite's write lock (BEGIN IMMEDIATE), or on
        PostgreSQL the binding row locked FOR UPDATE."""
        if is_sqlite(self.engine):
            with self.engine.connect() as sa_conn:
                cur = sa_conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cur.execute("BEGIN IMMEDIATE")
                try:
                    tx: LedgerTx = SqliteTx(cur)
                    yield tx, self._must(tx.binding(behavior), behavior)
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            return
        with _pg_connections(self.engine).connection() as pg:
            ptx: LedgerTx = PsycopgTx(pg)
            yield ptx, self._must(ptx.binding(behavior), behavior)
            pg.commit()

    @staticmethod
    def _missing(behavior: str) -> UnknownBehaviorError:
        return UnknownBehaviorError(
            f"behavior {behavior!r} has no model key bound; register its Work Order first"
        )

    @classmethod
    def _must(cls, row: BindingRow | None, behavior: str) -> BindingRow:
        if row is None:
            raise cls._missing(behavior)
        return row

    def _spent(self, conn: Connection, behavior: str, start: datetime, end: datetime) -> float:
        return SqlAlchemyTx(conn).spent(
            behavior, _utc(start), _utc(end), _utc(self.clock()) - RESERVATION_TTL
        )

    def reserve(
        self,
        behavior: str,
        estimate_usd: float,
        *,
        run_id: str | None = None,
        transport: str = "",
        model: str = "",
    ) -> Reservation:
        """Hold `estimate_usd` of the period's budget, or raise BudgetExceeded (no call made)."""
        _, reservation = self.reserve_with(
            behavior, lambda _tx, _row: (None, estimate_usd, transport, model), run_id=run_id
        )
        return reservation

    def reserve_with(
        self,
        behavior: str,
        prepare: Callable[[LedgerTx, BindingRow], tuple[T, float, str, str]],
        *,
        run_id: str | None = None,
    ) -> tuple[T, Reservation]:
        """Reserve under the key's lock, asking `prepare(tx, binding)` for the estimate.

        `prepare` returns (anything, estimate, transport, model); it may read through `tx`
        (the preset) and may raise (a policy violation, say), in which case nothing is
        reserved. One transaction instead of two keeps the check cheap on every call.
        """
        now = self.clock()
        with self._tx(behavior) as (tx, binding):
            result, estimate_usd, transport, model = prepare(tx, binding)
            start, end = period_bounds(binding.cadence, now, self.timezone)
            spent = tx.spent(behavior, start, end, _utc(now) - RESERVATION_TTL)
            # a hair of tolerance so that a call landing exactly on the cap is allowed
            if spent + estimate_usd > binding.cap_usd + 1e-9:
                raise self._exceeded(binding, spent, estimate_usd, end)
            pk = tx.insert_reservation(
                {
                    "behavior": behavior,
                    "at": _utc(now),
                    "run_id": run_id,
                    "transport": transport,
                    "model": model,
                    "estimate": estimate_usd,
                }
            )
            return result, Reservation(id=pk, behavior=behavior, estimate_usd=estimate_usd)

    def _exceeded(
        self, binding: BindingRow, spent: float, estimate_usd: float, end: datetime
    ) -> BudgetExceeded:
        reset_on = end.astimezone(ZoneInfo(self.timezone))
        return BudgetExceeded(
            f"key {binding.key_ref} of {binding.behavior}: spend this {binding.cadence} "
            f"${spent:.4f} + next call's estimate ${estimate_usd:.4f} would pass the cap "
            f"${binding.cap_usd:.2f}; no call was made. Raise the cap in the Work Order "
            f"or wait for the period to reset on {reset_on:%Y-%m-%d}"
        )

    async def reserve_async(
        self,
        behavior: str,
        estimate_usd: float,
        *,
        run_id: str | None = None,
        transport: str = "",
        model: str = "",
    ) -> Reservation:
        """`reserve` from the event loop: on PostgreSQL one round trip, no worker thread."""
        _, reservation = await self.reserve_with_async(
            behavior, lambda _tx, _row: (None, estimate_usd, transport, model), run_id=run_id
        )
        return reservation

    async def reserve_with_async(
        self,
        behavior: str,
        prepare: Callable[[PresetReader, BindingRow], tuple[T, float, str, str]],
        *,
        run_id: str | None = None,
    ) -> tuple[T, Reservation]:
        """`reserve_with` from the event loop, with the same guarantee (SQLite: inline).

        On PostgreSQL, with the behavior's binding and preset cached, `prepare` runs on the
        cached rows and the reservation is one statement (`cleanday_reserve`: lock the key,
        insert the reservation if the fingerprint of binding and preset is unchanged and
        spend + estimate fits). If the rows changed (or nothing is cached yet, or `prepare`
        refused on cached rows), it reads them under the lock and runs `prepare` again.
        """
        if is_sqlite(self.engine):
            # a local write takes well under a millisecond: inline, no worker thread
            return self.reserve_with(behavior, prepare, run_id=run_id)
        now = self.clock()
        head = self._heads.get(behavior)
        if head is not None:
            try:
                prepared = prepare(PrefetchedTx(head.preset), head.binding)
            except Exception:
                prepared = None  # perhaps only stale: decide on fresh rows below
            if prepared is not None:
                result, estimate, transport, model = prepared
                async with _pg_async(self.engine).connection() as conn:
                    cur = await conn.execute(
                        _PG_RESERVE_CALL,
                        self._reserve_params(head, now, run_id, estimate, transport, model),
                    )
                    row = await cur.fetchone()
                if row is not None and row[0]:
                    if row[2] is None:
                        _, end = period_bounds(head.binding.cadence, now, self.timezone)
                        raise self._exceeded(head.binding, float(row[1]), estimate, end)
                    return result, Reservation(int(row[2]), behavior, estimate)
                self._heads.pop(behavior, None)
        # nothing cached, or the cache is stale: plan on rows read under the key's lock
        for _ in range(3):
            async with _pg_async(self.engine).connection() as conn:
                try:
                    with _migrated():  # a cold cache comes here first
                        row = await _last_row(conn, _PG_LOCKED_HEAD, {"behavior": behavior})
                    if row is None:
                        raise self._missing(behavior)
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
                    f"{_PG_RESERVE_CALL}; COMMIT",
                    self._reserve_params(fresh, now, run_id, estimate, transport, model),
                )
            # the key stays locked from the read to the reservation, so the fingerprint agrees
            # unless a preset version was added while this transaction waited for the lock
            if row[0]:
                self._heads[behavior] = fresh
                if row[2] is None:
                    _, end = period_bounds(binding.cadence, now, self.timezone)
                    raise self._exceeded(binding, float(row[1]), estimate, end)
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
        return {
            "behavior": head.binding.behavior,
            "fp": head.fingerprint,
            "start": start,
            "end": end,
            "live_since": _utc(now) - RESERVATION_TTL,
            "at": _utc(now),
            "run_id": run_id,
            "transport": transport,
            "model": model,
            "estimate": estimate,
        }

    async def settle_async(
        self,
        reservation: Reservation,
        cost_usd: float,
        *,
        status: str = "settled",
        transport: str | None = None,
        model: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
    ) -> None:
        """`settle` from the event loop (SQLite: inline); on PostgreSQL in one round trip,
        without waiting for the disk (see "PostgreSQL from the event loop" for what that
        risks)."""
        if is_sqlite(self.engine):
            self.settle(
                reservation,
                cost_usd,
                status=status,
                transport=transport,
                model=model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
            )
            return
        params = {
            "id": reservation.id,
            "cost": cost_usd,
            "status": status,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "settled_at": _utc(self.clock()),
            "transport": transport,
            "model": model,
        }
        async with _pg_async(self.engine).connection() as conn:
            await conn.execute(_PG_SETTLE, params)

    def settle_soon(
        self,
        reservation: Reservation,
        cost_usd: float,
        *,
        transport: str | None = None,
        model: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
    ) -> None:
        """Settle an answered call without making its caller wait for the database.

        SQLite settles inline (a local write). On PostgreSQL the settlement is a task on the
        running loop that starts at the caller's next await; `drain()` waits for those still
        in flight. Until it lands, the reservation holds its estimate, so no later check
        undercounts the call. If the process dies first, the row stays `reserved` and holds
        the estimate for RESERVATION_TTL, like a process that died mid-call; the call's actual
        cost is then not in the ledger's spend (the provider's own key limit still holds).
        A settlement that fails is logged and leaves the row the same way.
        """
        kwargs: dict[str, Any] = {
            "transport": transport,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
        }
        if is_sqlite(self.engine):
            self.settle(reservation, cost_usd, **kwargs)
            return
        task = asyncio.get_running_loop().create_task(
            self._settle_logged(reservation, cost_usd, kwargs)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_logged(
        self, reservation: Reservation, cost_usd: float, kwargs: dict[str, Any]
    ) -> None:
        try:
            await self.settle_async(reservation, cost_usd, **kwargs)
        except Exception:
            log.exception(
                "settling reservation %s of %s ($%.4f) failed; it holds its estimate until "
                "it expires",
                reservation.id,
                reservation.behavior,
                cost_usd,
            )

    async def drain(self) -> None:
        """Wait for the settlements `settle_soon` started on this loop."""
        loop = asyncio.get_running_loop()
        mine = [t for t in self._pending if t.get_loop() is loop]
        if mine:
            await asyncio.gather(*mine)

    async def release_async(self, reservation: Reservation, *, status: str = "released") -> None:
        await self.settle_async(reservation, 0.0, status=status)

    def settle(
        self,
        reservation: Reservation,
        cost_usd: float,
        *,
        status: str = "settled",
        transport: str | None = None,
        model: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
    ) -> None:
        """Replace the reservation's estimate with what the call actually cost."""
        if is_sqlite(self.engine):
            with self.engine.connect() as sa_conn:
                cur = sa_conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cur.execute("BEGIN IMMEDIATE")
                try:
                    cur.execute(
                        "UPDATE key_spend SET cost_usd = ?, status = ?, tokens_in = ?, "
                        "tokens_out = ?, settled_at = ?, transport = COALESCE(?, transport), "
                        "model = COALESCE(?, model) WHERE id = ?",
                        (
                            cost_usd,
                            status,
                            tokens_in,
                            tokens_out,
                            _sqlite_ts(self.clock()),
                            transport,
                            model,
                            reservation.id,
                        ),
                    )
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            return
        with _pg_connections(self.engine).connection() as pg:
            pg.execute(
                _PG_SETTLE,
                {
                    "id": reservation.id,
                    "cost": cost_usd,
                    "status": status,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "settled_at": _utc(self.clock()),
                    "transport": transport,
                    "model": model,
                },
            )
            pg.commit()

    def release(self, reservation: Reservation, *, status: str = "released") -> None:
        """The call cost nothing (refused, failed, timed out): free its estimate."""
        self.settle(reservation, 0.0, status=status)

    def spend(self, behavior: str, now: datetime | None = None) -> float:
        now = now or self.clock()
        with Session(self.engine) as session:
            binding = session.get(RoutingBinding, behavior)
            if binding is None:
                raise UnknownBehaviorError(f"behavior {behavior!r} has no model key bound")
            start, end = period_bounds(binding.cadence, now, self.timezone)
            return self._spent(session.connection(), behavior, start, end)

    def report(self, now: datetime | None = None) -> list[KeyReport]:
        """Spend, cap, share used and a linear projection to the period's end, per key."""
        now = now or self.clock()
        rows: list[KeyReport] = []
        with Session(self.engine) as session:
            bindings = session.exec(
                select(RoutingBinding).order_by(RoutingBinding.behavior)  # type: ignore[arg-type,call-overload]
            ).all()
            for b in bindings:
                binding = b if isinstance(b, RoutingBinding) else b[0]
                start, end = period_bounds(binding.cadence, now, self.timezone)
                spent = self._spent(session.connection(), binding.behavior, start, end)
                elapsed = max((now - start).total_seconds(), 1.0)
                length = (end - start).total_seconds()
                projected = spent * length / elapsed if elapsed < length else spent
                rows.append(
                    KeyReport(
                        behavior=binding.behavior,
                        key_ref=binding.key_ref,
                        cadence=binding.cadence,
                        cap_usd=binding.cap_usd,
                        spend_usd=spent,
                        share_used=spent / binding.cap_usd if binding.cap_usd else 0.0,
                        projected_usd=projected,
                        period_start=start,
                        period_end=end,
                    )
                )
        return rows
