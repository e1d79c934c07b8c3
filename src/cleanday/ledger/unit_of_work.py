"""One ledger transaction: the write connection, the chain head, the entries it appends, the
notices it raises, and the commit that writes their reactions with them.

Use cases open one (`with ledger.unit_of_work() as uow:`), read and write through `uow.conn`,
append entries with `uow.append` and say what happened with `uow.notify`. On a clean exit the
unit of work inserts the entries, moves the chain head, hands the notices to the reactions
(which write their outbox rows on the same connection), commits, and then tells its
subscribers what the commit queued, so a process that can deliver does so at once. An
exception rolls everything back, reactions included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from cleanday import chain
from cleanday.bulk import raw_insert
from cleanday.chain import NewEntry
from cleanday.db import write_connection
from cleanday.models import T_ENTRIES
from cleanday.notices import Notice
from cleanday.outbox import Message

log = logging.getLogger("cleanday.ledger")


class Reactions(Protocol):
    """Runs the reactions to `notices` on `conn` and returns the outbox messages it queued."""

    def __call__(
        self, notices: Sequence[Notice], conn: Connection, now: datetime
    ) -> Sequence[Message]: ...


# told, after a commit, what it queued in the outbox
Subscriber = Callable[[Sequence[Message]], object]


class UnitOfWork:
    """One write transaction over the ledger, at one `now`."""

    def __init__(
        self,
        engine: Engine,
        now: datetime,
        reactions: Reactions,
        subscribers: Sequence[Subscriber] = (),
        *,
        lock_chain: bool = True,
    ) -> None:
        self.engine, self.now = engine, now
        self._reactions, self._subscribers = reactions, subscribers
        self._lock_chain = lock_chain
        self._cm: AbstractContextManager[Connection] | None = None
        self._head: chain.Head | None = None
        self._head_moved = False
        self._rows: list[dict[str, Any]] = []  # entries linked, not yet inserted
        self.notices: list[Notice] = []
        self.written: list[Message] = []

    def __enter__(self) -> UnitOfWork:
        self._cm = write_connection(self.engine)
        self.conn = self._cm.__enter__()
        if self._lock_chain:
            # taken first: every state row read after it is the latest committed one
            self._head = chain.lock_head(self.conn, self.now)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._cm is not None
        if exc_type is None:
            try:
                self.flush()
                if self._head_moved:
                    chain.set_head(self.conn, self.head, self.now)
                self.publish()
            except BaseException as failed:
                self._cm.__exit__(type(failed), failed, failed.__traceback__)
                raise
        self._cm.__exit__(exc_type, exc, tb)  # commits, or rolls back on an exception
        if exc_type is None and self.written:
            self._tell_subscribers()

    @property
    def head(self) -> chain.Head:
        if self._head is None:
            raise RuntimeError("this unit of work did not lock the chain; it cannot append")
        return self._head

    def append(self, entries: Sequence[NewEntry]) -> list[dict[str, Any]]:
        """Chain `entries` after the head (seq and hashes assigned); inserted at `flush` or at
        the commit. Returns their rows."""
        if not entries:
            return []
        self._head, rows = chain.link(self.head, entries, self.now)
        self._head_moved = True
        self._rows.extend(rows)
        return rows

    def flush(self) -> None:
        """Insert the entries appended so far (before reading a behavior's entries back)."""
        if self._rows:
            raw_insert(self.conn, T_ENTRIES, self._rows)
            self._rows = []

    def notify(self, *notices: Notice) -> None:
        self.notices.extend(notices)

    def publish(self) -> int:
        """Run the reactions to the notices raised so far (they write their outbox rows in this
        transaction); returns how many outbox rows they queued."""
        notices, self.notices = self.notices, []
        if not notices:
            return 0
        written = self._reactions(notices, self.conn, self.now)
        self.written.extend(written)
        return len(written)

    def _tell_subscribers(self) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(self.written)
            except Exception:  # committed already: a delivery that fails is retried later
                log.exception("after-commit subscriber %r failed", subscriber)
