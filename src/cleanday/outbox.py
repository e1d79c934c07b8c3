"""The outbox: messages for the world outside the ledger (Slack, Notion, Temporal, OpenRouter),
written in the transaction that caused them and delivered after it commits.

A reaction (`cleanday.reactions`) returns `Message`s; `write` queues them on the caller's
connection, once per dedupe key, so that what happened and what must be said about it commit
or roll back together. `OutboxDelivery` delivers the queued rows of every channel it has a
sender for: right after the commit that wrote them (`after_commit`, which the ledger calls), and
from a periodic job for whatever is left (a sender that was down, a process that died). A row
is marked delivered once its sender returned; a sender that raises leaves its row, and the rest
of its target (a Slack channel, a Notion data source), for the next drain after the target's
back-off. With a lease, one process across the service's instances drains the channels that
must keep one order (`cleanday.outbox_lease`). Redelivery must be harmless: a sender is an
upsert, a signal that only wakes, a message carrying its outbox ID.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from cleanday.db import write_connection
from cleanday.errors import Hold
from cleanday.models import T_OUTBOX

if TYPE_CHECKING:
    from cleanday.outbox_lease import Lease

log = logging.getLogger("cleanday.outbox")

# Keep IN (...) lists well under SQLite's and psycopg's parameter limits.
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Message:
    """One outbox row to write. `dedupe_key` makes it once-only: a message whose key is
    already queued (or delivered) is not queued again."""

    channel: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    behavior: str | None = None
    # where it goes within its channel (a Slack channel, a Notion data source), when the
    # reaction knows; otherwise the delivery's route for the channel names it
    target: str | None = None


def write(conn: Connection, messages: Sequence[Message], now: datetime) -> list[Message]:
    """Queue `messages` on `conn` (the first of each dedupe key, unless already in the
    outbox); returns those queued now, in order."""
    if not messages:
        return []
    first: dict[str, Message] = {}
    for m in messages:
        first.setdefault(m.dedupe_key, m)
    keys = list(first)
    existing: set[str] = set()
    for i in range(0, len(keys), _CHUNK):
        part = keys[i : i + _CHUNK]
        existing.update(
            conn.execute(
                sa.select(T_OUTBOX.c.dedupe_key).where(T_OUTBOX.c.dedupe_key.in_(part))
            ).scalars()
        )
    fresh = [m for k, m in first.items() if k not in existing]
    if fresh:
        conn.execute(
            sa.insert(T_OUTBOX),
            [
                {
                    "channel": m.channel,
                    "kind": m.kind,
                    "dedupe_key": m.dedupe_key,
                    "behavior": m.behavior,
                    "target": m.target,
                    "payload": m.payload,
                    "created_at": now,
                    "delivered_at": None,
                    "attempts": 0,
                    "last_error": None,
                }
                for m in fresh
            ],
        )
    return fresh


@dataclass(frozen=True, slots=True)
class Pending:
    """A queued row, as a sender receives it; `target` is where it goes within its channel."""

    id: int
    channel: str
    kind: str
    dedupe_key: str
    behavior: str | None
    payload: dict[str, Any]
    attempts: int
    target: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """What a sender may return instead of a bare note: the note and a receipt to keep with
    the row (Slack's `{"channel": ..., "ts": ...}`, Notion's page ID)."""

    note: str | None = None
    receipt: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """What became of one row in a drain: `note` is the sender's word on it ("told",
    "no run in flight"); `error` says why it is still waiting."""

    row: Pending
    note: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# A sender delivers one row; it returns a short note (or a `Sent`), or raises to leave the row
# queued (its target then backs off).
Sender = Callable[[Pending], Awaitable[str | Sent | None]]


@runtime_checkable
class GroupSender(Protocol):
    """A sender that may deliver several of a target's leading rows as one message (Slack's
    grouped alerts): `send_many` gets the rows waiting, in order, and returns how many of the
    first ones it delivered, with what it answered; or raises `Hold`, or fails as a Sender."""

    async def send_many(self, rows: Sequence[Pending]) -> tuple[int, Sent]: ...


# A route names the target of a row that has none yet (once; the row keeps it).
Route = Callable[[Pending], str]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long a target waits after a failure: `base_s`, doubled per failed attempt of its
    head row, at most `max_s`."""

    base_s: float = 2.0
    max_s: float = 300.0
    factor: float = 2.0

    def delay(self, attempts: int) -> timedelta:
        seconds = self.base_s * self.factor ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.max_s))


class OutboxDelivery:
    """Delivers the outbox rows of the channels in `senders`, in ID order per target.

    A row's target (a Slack channel, a Notion data source) is the message's own, or what the
    channel's `routes` entry names for it at its first drain (default: the channel's name).
    Targets are drained side by side; within one, a failure stops the target, and its head row
    records the attempt, the error and its next attempt (`backoff`), so a target that is down is
    asked again later while the others go on.

    With a `lease` (`cleanday.outbox_lease.Lease`), the channels in `leased` (default: those not
    in `wait_for`) are drained only while this process holds it: one drainer across service
    instances. The others (a sign-off's wake-ups, which its answer waits for) are delivered by
    whichever process committed them.

    The senders run on this object's own event loop, in a thread it starts on first use, so
    that any caller can deliver and wait: a sync route's worker thread, the CLI, the
    scheduler's thread. After a commit, the committing caller waits (at most `timeout_s`) only
    for the channels in `wait_for`, whose delivery its answer should follow; the others are
    delivered meanwhile. What is not delivered stays queued for the next drain.
    """

    def __init__(
        self,
        engine: Engine,
        senders: Mapping[str, Sender],
        *,
        wait_for: Collection[str] | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout_s: float = 15.0,
        batch: int = 200,
        routes: Mapping[str, Route] | None = None,
        backoff: Backoff | None = None,
        lease: Lease | None = None,
        leased: Collection[str] | None = None,
    ) -> None:
        self.engine = engine
        self.senders = dict(senders)
        self.wait_for = frozenset(self.senders if wait_for is None else wait_for)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.timeout_s = timeout_s
        self.batch = batch
        self.routes = dict(routes or {})
        self.backoff = backoff or Backoff()
        self.lease = lease
        if lease is None:
            self.leased: frozenset[str] = frozenset()
        else:
            self.leased = frozenset(set(self.senders) - self.wait_for if leased is None else leased)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._periodic: Future[list[Delivered]] | None = None
        # one drain of a target at a time, so that no row is sent twice by this process
        self._locks: dict[tuple[asyncio.AbstractEventLoop, str, str], asyncio.Lock] = {}

    # -- the ledger's hook and the periodic job --------------------------------------------

    def after_commit(self, written: Sequence[Message]) -> list[Delivered]:
        """Deliver at once what a commit just queued for a channel with a sender; returns what
        became of the rows of the channels it waited for."""
        by_channel: dict[str, set[str]] = {}
        for m in written:
            if m.channel in self.senders:
                by_channel.setdefault(m.channel, set()).add(m.dedupe_key)
        out: list[Delivered] = []
        for channel in sorted(by_channel, key=lambda c: c in self.wait_for):  # waited for last
            coro = self.drain(channel, keys=by_channel[channel])
            if channel in self.wait_for:
                out.extend(self.run(coro))
            else:
                asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        return out

    def drain_now(self) -> list[Delivered]:
        """Deliver everything queued for the channels with a sender (the periodic job). While
        the previous periodic drain still runs (a long backlog), this one does nothing."""
        if self._periodic is not None and not self._periodic.done():
            return []
        self._periodic = asyncio.run_coroutine_threadsafe(self.drain(), self._ensure_loop())
        return self._wait(self._periodic)

    def run(self, coro: Coroutine[Any, Any, list[Delivered]]) -> list[Delivered]:
        """Run a drain on the delivery loop and wait for it (at most `timeout_s`)."""
        return self._wait(asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()))

    def _wait(self, future: Future[list[Delivered]]) -> list[Delivered]:
        try:
            return future.result(self.timeout_s)
        except FutureTimeout:
            log.warning("outbox delivery still running after %.0f s; it goes on", self.timeout_s)
            return []

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            self._loop = self._thread = None
        if self.lease is not None:
            self.lease.release()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._started:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="cleanday-outbox", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    # -- draining ---------------------------------------------------------------------------

    def _holds(self, channel: str) -> bool:
        return channel not in self.leased or (self.lease is not None and self.lease.held())

    async def drain(
        self, channel: str | None = None, *, keys: Collection[str] | None = None
    ) -> list[Delivered]:
        """Deliver the queued rows of `channel` (default: every channel with a sender), or the
        targets of the rows with the given dedupe keys (and everything queued before them
        there). A target stops at its first failure, so its rows keep their order and a
        target that is down is asked once, then after its back-off."""
        out: list[Delivered] = []
        for ch in [channel] if channel is not None else sorted(self.senders):
            if not self._holds(ch):
                continue  # another instance holds the lease: it delivers
            self._route(ch)
            targets = self._waiting_targets(ch, keys)
            for part in await asyncio.gather(*(self._drain_target(ch, t) for t in targets)):
                out.extend(part)
        return out

    async def _drain_target(self, channel: str, target: str) -> list[Delivered]:
        lock = self._locks.setdefault((asyncio.get_running_loop(), channel, target), asyncio.Lock())
        send = self.senders[channel]
        out: list[Delivered] = []
        async with lock:
            while True:
                rows = self._queued(channel, target)
                if not rows:
                    return out
                i = 0
                while i < len(rows):
                    row, next_attempt = rows[i]
                    if next_attempt is not None and next_attempt > self.clock():
                        return out  # backing off, or a group still gathering
                    if not self._holds(channel):
                        return out  # the lease went to another instance
                    try:
                        if isinstance(send, GroupSender):
                            n, sent = await send.send_many([r for r, _ in rows[i:]])
                            n = max(1, min(n, len(rows) - i))
                        else:
                            answer = await send(row)
                            n, sent = 1, answer if isinstance(answer, Sent) else Sent(answer)
                    except Hold as hold:
                        self._held(row, hold.until)
                        return out
                    except Exception as exc:  # the row waits; the error is kept for the operator
                        error = f"{type(exc).__name__}: {exc}"[:2000]
                        self._failed(row, error)
                        out.append(Delivered(row, error=error))
                        return out
                    for done, _ in rows[i : i + n]:
                        self._delivered(done, sent)
                        out.append(Delivered(done, note=sent.note))
                    i += n
                if len(rows) < self.batch:
                    return out

    def _route(self, channel: str) -> None:
        """Give the rows of `channel` that have no target yet theirs, in ID order."""
        o = T_OUTBOX.c
        route = self.routes.get(channel)
        with self.engine.connect() as conn:
            rows = conn.execute(
                _pending_columns()
                .where(o.channel == channel, o.target.is_(None), o.delivered_at.is_(None))
                .order_by(o.id)
                .limit(_CHUNK)
            ).all()
        if not rows:
            return
        by_target: dict[str, list[int]] = {}
        for r in rows:
            target = route(_pending(r)) if route is not None else channel
            by_target.setdefault(target, []).append(r.id)
        with write_connection(self.engine) as conn:
            for target, ids in by_target.items():
                conn.execute(
                    sa.update(T_OUTBOX)
                    .where(o.id.in_(ids), o.target.is_(None))
                    .values(target=target)
                )

    def _waiting_targets(self, channel: str, keys: Collection[str] | None) -> list[str]:
        o = T_OUTBOX.c
        query = (
            sa.select(o.target)
            .where(
                o.channel == channel,
                o.delivered_at.is_(None),
                o.dropped_at.is_(None),
                o.target.is_not(None),
            )
            .group_by(o.target)
            .order_by(sa.func.min(o.id))
        )
        if keys is not None:
            query = query.where(o.dedupe_key.in_(sorted(keys)))
        with self.engine.connect() as conn:
            return [t for t in conn.execute(query).scalars() if t is not None]

    def _queued(self, channel: str, target: str) -> list[tuple[Pending, datetime | None]]:
        o = T_OUTBOX.c
        query = (
            _pending_columns()
            .add_columns(o.next_attempt_at)
            .where(
                o.channel == channel,
                o.target == target,
                o.delivered_at.is_(None),
                o.dropped_at.is_(None),
            )
            .order_by(o.id)
            .limit(self.batch)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(_pending(r), r.next_attempt_at) for r in rows]

    def _delivered(self, row: Pending, sent: Sent) -> None:
        o = T_OUTBOX.c
        with write_connection(self.engine) as conn:
            conn.execute(
                sa.update(T_OUTBOX)
                .where(o.id == row.id, o.delivered_at.is_(None))
                .values(
                    attempts=o.attempts + 1,
                    last_error=None,
                    next_attempt_at=None,
                    delivered_at=self.clock(),
                    receipt=sent.receipt,
                )
            )

    def _held(self, row: Pending, until: datetime) -> None:
        o = T_OUTBOX.c
        with write_connection(self.engine) as conn:
            conn.execute(sa.update(T_OUTBOX).where(o.id == row.id).values(next_attempt_at=until))

    def _failed(self, row: Pending, error: str) -> None:
        o = T_OUTBOX.c
        retry_at = self.clock() + self.backoff.delay(row.attempts + 1)
        with write_connection(self.engine) as conn:
            conn.execute(
                sa.update(T_OUTBOX)
                .where(o.id == row.id)
                .values(attempts=o.attempts + 1, last_error=error, next_attempt_at=retry_at)
            )


def _pending_columns() -> sa.Select[Any]:
    o = T_OUTBOX.c
    return sa.select(
        o.id, o.channel, o.kind, o.dedupe_key, o.behavior, o.payload, o.attempts, o.target,
        o.created_at,
    )  # fmt: skip


def _pending(r: Any) -> Pending:
    return Pending(
        r.id, r.channel, r.kind, r.dedupe_key, r.behavior, dict(r.payload), r.attempts,
        r.target or "", r.created_at,
    )  # fmt: skip
