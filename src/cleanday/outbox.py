"""The outbox: messages for the world outside the ledger (Slack, Notion, Temporal, OpenRouter),
written in the transaction that caused them and delivered after it commits.

A reaction (`cleanday.reactions`) returns `Message`s; `write` queues them on the caller's
connection, once per dedupe key, so that what happened and what must be said about it commit
or roll back together. `OutboxDelivery` delivers the queued rows of every channel it has a
sender for: right after the commit that wrote them (`after_commit`, which the ledger calls), and
from a periodic job for whatever is left (a sender that was down, a process that died). A row
is marked delivered once its sender returned; a sender that raises leaves its row, and the rest
of its channel, for the next drain. Redelivery must be harmless: a sender is an upsert, a
signal that only wakes, a message carrying its outbox ID.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from cleanday.models import T_OUTBOX

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
    """A queued row, as a sender receives it."""

    id: int
    channel: str
    kind: str
    dedupe_key: str
    behavior: str | None
    payload: dict[str, Any]
    attempts: int


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


# A sender delivers one row; it returns a short note, or raises to leave the row queued.
Sender = Callable[[Pending], Awaitable[str | None]]


class OutboxDelivery:
    """Delivers the outbox rows of the channels in `senders`, in ID order per channel.

    The senders run on this object's own event loop, in a thread it starts on first use, so
    that any caller can deliver and wait: a sync route's worker thread, the CLI, the
    scheduler's thread. After a commit, the committing caller waits (at most `timeout_s`) only
    for the channels in `wait_for`, whose delivery its answer should follow (a sign-off's
    wake-ups); the others are delivered meanwhile. What is not delivered stays queued for the
    next drain.
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
    ) -> None:
        self.engine = engine
        self.senders = dict(senders)
        self.wait_for = frozenset(self.senders if wait_for is None else wait_for)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.timeout_s = timeout_s
        self.batch = batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        # one drain of a channel at a time, so that no row is sent twice by this process
        self._locks: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Lock] = {}

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
        """Deliver everything queued for the channels with a sender (the periodic job)."""
        return self.run(self.drain())

    def run(self, coro: Coroutine[Any, Any, list[Delivered]]) -> list[Delivered]:
        """Run a drain on the delivery loop and wait for it (at most `timeout_s`)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        try:
            return future.result(self.timeout_s)
        except FutureTimeout:
            log.warning("outbox delivery still running after %.0f s; it goes on", self.timeout_s)
            return []

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._loop = self._thread = None

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

    async def drain(
        self, channel: str | None = None, *, keys: Collection[str] | None = None
    ) -> list[Delivered]:
        """Deliver the queued rows of `channel` (default: every channel with a sender), or only
        those with the given dedupe keys. A channel stops at its first failure, so its rows
        keep their order and a sender that is down is asked once."""
        loop = asyncio.get_running_loop()
        out: list[Delivered] = []
        for ch in [channel] if channel is not None else sorted(self.senders):
            lock = self._locks.setdefault((loop, ch), asyncio.Lock())
            async with lock:
                out.extend(await self._drain_channel(ch, keys))
        return out

    async def _drain_channel(self, channel: str, keys: Collection[str] | None) -> list[Delivered]:
        send = self.senders[channel]
        out: list[Delivered] = []
        for row in self._queued(channel, keys):
            try:
                note = await send(row)
            except Exception as exc:  # the row waits; the error is kept for the operator
                error = f"{type(exc).__name__}: {exc}"[:2000]
                self._mark(row, error=error)
                out.append(Delivered(row, error=error))
                break
            self._mark(row, error=None)
            out.append(Delivered(row, note=note))
        return out

    def _queued(self, channel: str, keys: Collection[str] | None) -> list[Pending]:
        o = T_OUTBOX.c
        query = (
            sa.select(o.id, o.channel, o.kind, o.dedupe_key, o.behavior, o.payload, o.attempts)
            .where(o.channel == channel, o.delivered_at.is_(None))
            .order_by(o.id)
            .limit(self.batch)
        )
        if keys is not None:
            query = query.where(o.dedupe_key.in_(sorted(keys)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Pending(r.id, r.channel, r.kind, r.dedupe_key, r.behavior, dict(r.payload), r.attempts)
            for r in rows
        ]

    def _mark(self, row: Pending, *, error: str | None) -> None:
        o = T_OUTBOX.c
        values: dict[str, Any] = {"attempts": o.attempts + 1, "last_error": error}
        if error is None:
            values["delivered_at"] = self.clock()
        with self.engine.begin() as conn:
            conn.execute(sa.update(T_OUTBOX).where(o.id == row.id).values(**values))
