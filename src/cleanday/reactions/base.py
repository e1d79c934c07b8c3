"""What a reaction is given: the transaction of the notice it reacts to, and its time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from cleanday.notices import Notice
from cleanday.outbox import Message


@dataclass(frozen=True)
class Context:
    """A reaction runs inside the ledger's transaction: what it writes on `conn` (a preset
    publication) commits with the entries that caused it, and so do the outbox messages it
    returns. A notice it raises (`notify`) is reacted to in the same transaction, after the
    notices already raised. `timezone` is the ledger's (its policy's): the zone of the days and
    budget periods the operator reads."""

    conn: Connection
    now: datetime
    raised: list[Notice] = field(default_factory=list)
    timezone: str = "UTC"

    def notify(self, *notices: Notice) -> None:
        self.raised.extend(notices)


# a reaction: one notice in, the outbox messages it queues out (often none)
Reaction = Callable[[Any, Context], Iterable[Message]]
