"""Notion's rate limit, shared by every service instance: one schedule of request slots in the
ledger database.

Notion allows an average of 3 requests per second per integration, counted across every
process that uses its token. Each HTTP request first takes the next free slot from the
`notion_pacing` row (an UPDATE, so the row's lock orders the instances: PostgreSQL's row lock,
SQLite's write lock) and waits for it. That is a token bucket with a burst of one (GCRA): a
burst of 500 rows is sent at exactly the rate, never faster, whichever instance sends them.
The pacing hooks into httpx's request event, so the notion-client's own retries after a 429
take their slots too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine

from cleanday.models import T_NOTION_PACING

NOTION_RATE = 3.0  # requests per second, Notion's documented average

_TAKE = sa.text(
    "UPDATE notion_pacing SET next_at = "
    "(CASE WHEN next_at > :now THEN next_at ELSE :now END) + :interval "
    "WHERE name = :name RETURNING next_at"
)


class Pacing:
    """The request slots of one integration (`name`), at `rate` requests per second."""

    def __init__(
        self,
        engine: Engine,
        *,
        rate: float = NOTION_RATE,
        name: str = "notion",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate <= 0:
            raise ValueError("the Notion request rate must be positive")
        self.engine = engine
        self.interval = 1.0 / rate
        self.name = name
        self.clock = clock
        self.taken = 0  # slots this process took (the benchmark's request count)

    def take(self) -> float:
        """Take the next free slot; returns how many seconds to wait before sending."""
        now = self.clock()
        with self.engine.begin() as conn:
            next_at = conn.execute(
                _TAKE, {"now": now, "interval": self.interval, "name": self.name}
            ).scalar()
            if next_at is None:  # first use of this name
                conn.execute(
                    sa.insert(T_NOTION_PACING).values(name=self.name, next_at=now + self.interval)
                )
                next_at = now + self.interval
        self.taken += 1
        return max(0.0, float(next_at) - self.interval - now)

    def wait(self) -> None:
        time.sleep(self.take())

    async def await_slot(self) -> None:
        await asyncio.sleep(await asyncio.to_thread(self.take))

    # httpx event hooks: every request the client sends, retries included, takes a slot
    def sync_hook(self, request: httpx.Request) -> None:
        self.wait()

    async def async_hook(self, request: httpx.Request) -> None:
        await self.await_slot()
