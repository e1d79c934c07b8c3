"""What a reaction is given: the transaction of the notice it reacts to, and its time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from cleanday.outbox import Message


@dataclass(frozen=True)
class Context:
    """A reaction runs inside the ledger's transaction: what it writes on `conn` (a preset
    publication) commits with the entries that caused it, and so do the outbox messages it
    returns."""

    conn: Connection
    now: datetime


# a reaction: one notice in, the outbox messages it queues out (often none)
Reaction = Callable[[Any, Context], Iterable[Message]]
