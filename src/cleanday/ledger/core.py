"""What every ledger use case shares: the engine, the policy, the clock, the reactions, and the
lookups that name a behavior that does not exist."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from cleanday import ladder
from cleanday.domain import BehaviorState, IdlePolicy, Policy
from cleanday.errors import UnknownBehaviorError
from cleanday.ledger import store
from cleanday.models import T_BEHAVIORS

if TYPE_CHECKING:  # a read never opens a unit of work: it needs neither notices nor the outbox
    from cleanday.ledger.unit_of_work import Reactions, Subscriber, UnitOfWork
    from cleanday.notices import Notice


# the door a sign-off came through when the caller does not say (cli, api, a form, ...); here,
# not in `items`, so that the facade's defaults do not import that use case
DEFAULT_DOOR = "api"


class _DefaultReactions:
    """`cleanday.reactions`, imported when a commit first raises notices: a process that only
    reads (the CLI's read verbs) never loads the reactions, the outbox senders or the budget."""

    def __init__(self, timezone: Callable[[], str]) -> None:
        self._timezone = timezone  # the ledger's, read when the reactions are first needed
        self._reactions: Reactions | None = None

    def __call__(self, notices: Sequence[Notice], conn: Connection, now: datetime) -> Any:
        if not notices:
            return []
        if self._reactions is None:
            from cleanday.reactions import Reactions as DefaultReactions

            self._reactions = DefaultReactions(timezone=self._timezone())
        return self._reactions(notices, conn, now)


class LedgerCore:
    """The ledger over one engine. `clock` gives "now" (aware); `policy` is the ladder's rules;
    `reactions` react to the notices of every commit (default: `cleanday.reactions`);
    `review_hour` is the hour the Sunday review is posted (`CLEANDAY_REVIEW_HOUR`)."""

    def __init__(
        self,
        engine: Engine,
        policy: Policy | None = None,
        clock: Callable[[], datetime] | None = None,
        reactions: Reactions | None = None,
        *,
        review_hour: int = 8,
    ) -> None:
        self.engine = engine
        # when the Sunday review is posted (ledger time zone): a refused decision names it
        self.review_hour = review_hour
        self.policy = policy or Policy()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.reactions = (
            reactions if reactions is not None else _DefaultReactions(lambda: self.policy.timezone)
        )
        self.subscribers: list[Subscriber] = []
        # the batch ingest's decoded states, kept between batches (cleanday.ledger.runs)
        self.accumulators = store.AccumulatorCache()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber` after every commit that queued outbox rows, with those rows."""
        self.subscribers.append(subscriber)

    def now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the ledger clock must return timezone-aware datetimes")
        return now

    def unit_of_work(self, now: datetime | None = None, *, lock_chain: bool = True) -> UnitOfWork:
        from cleanday.ledger.unit_of_work import UnitOfWork

        return UnitOfWork(
            self.engine,
            now or self.now(),
            self.reactions,
            self.subscribers,
            lock_chain=lock_chain,
        )

    def policy_of(self, conn: Connection) -> Policy:
        """The service policy with every Work Order's idle-day rule merged in."""
        breakers = conn.execute(
            sa.select(T_BEHAVIORS.c.name).where(T_BEHAVIORS.c.idle_days == IdlePolicy.BREAK.value)
        ).scalars()
        extra = {n: IdlePolicy.BREAK for n in breakers if n not in self.policy.idle_by_behavior}
        if not extra:
            return self.policy
        return replace(self.policy, idle_by_behavior={**extra, **self.policy.idle_by_behavior})

    def policy_for(self, row: Any) -> Policy:
        """The policy for one behavior's state row (which carries its Work Order's idle rule);
        cheaper than `policy_of` on the per-run path."""
        if row.idle_days != IdlePolicy.BREAK.value or row.behavior in self.policy.idle_by_behavior:
            return self.policy
        by = {**self.policy.idle_by_behavior, row.behavior: IdlePolicy.BREAK}
        return replace(self.policy, idle_by_behavior=by)

    def view(self, conn: Connection, name: str, now: datetime) -> BehaviorState:
        """What the ladder says about `name` at `now`, from its folded accumulator."""
        row = state_row(conn, name)
        acc = ladder.Accumulator.from_json(row.accumulator)
        return ladder.view(acc, self.policy_for(row), now)


def behavior(conn: Connection, name: str) -> Any:
    """The behavior's row; UnknownBehaviorError names it when it is not registered."""
    row = conn.execute(sa.select(T_BEHAVIORS).where(T_BEHAVIORS.c.name == name)).first()
    if row is None:
        raise UnknownBehaviorError(
            f"no behavior named {name!r} is registered; `cleanday ledger` lists them"
        )
    return row


def state_row(conn: Connection, name: str) -> Any:
    """The behavior's state row with its behavior columns (`store.state_row`), or an
    UnknownBehaviorError saying why there is none."""
    row = store.state_row(conn, name)
    if row is None:
        behavior(conn, name)
        raise UnknownBehaviorError(f"behavior {name!r} has no state row; run ledger rebuild")
    return row
