"""When each behavior runs next: Temporal's own schedules when they can be read, else worked out
from the Work Order's trigger. A page never waits for Temporal: it reads what was last listed,
and a stale list is refreshed in the background."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from croniter import croniter

log = logging.getLogger("cleanday.pane")

SCHEDULE_PREFIX = "cleanday-"  # cleanday.runtime.schedules.schedule_id
Source = Literal["temporal", "trigger", "webhook", "paused", "none"]


@dataclass(frozen=True)
class NextRun:
    at: datetime | None
    source: Source  # temporal: the schedule says so; trigger: computed from the Work Order


def from_trigger(trigger: Mapping[str, Any], now: datetime) -> NextRun:
    """The next firing of a cron or interval trigger after `now`, as Temporal fires them (an
    interval spec fires at multiples of its period counted from the epoch)."""
    kind = trigger.get("type")
    if kind == "cron":
        zone = ZoneInfo(str(trigger.get("timezone") or "UTC"))
        nxt = croniter(str(trigger["cron"]), now.astimezone(zone)).get_next(datetime)
        return NextRun(nxt.astimezone(UTC), "trigger")
    if kind == "interval":
        every = float(trigger["every_seconds"])
        at = math.floor(now.timestamp() / every + 1) * every
        return NextRun(datetime.fromtimestamp(at, UTC), "trigger")
    if kind == "webhook":
        return NextRun(None, "webhook")
    return NextRun(None, "none")


Connect = Callable[[], Awaitable[Any]]  # -> temporalio.client.Client


class NextRuns:
    """The next action time of every cleanday schedule, listed from Temporal at most every
    `ttl`; `lookup` answers from that list at once and starts a refresh when it is stale.

    A failed listing (Temporal down, no client) is remembered for `ttl` too, so a page does
    not set off a connection attempt per request; meanwhile lookups fall back to the trigger.
    """

    def __init__(
        self,
        connect: Connect | None,
        *,
        ttl: timedelta = timedelta(seconds=30),
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connect = connect
        self.ttl = ttl
        self.timeout_s = timeout_s
        self.clock = clock
        self.listed: dict[str, tuple[datetime | None, bool]] = {}  # behavior -> (next, paused)
        self.listed_at: datetime | None = None
        self.tried_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def lookup(
        self, behavior: str, trigger: Mapping[str, Any], active: bool, now: datetime
    ) -> NextRun:
        if not active:
            return NextRun(None, "paused")
        listed = self.listed.get(behavior) if self._fresh(now) else None
        if listed is not None:
            at, paused = listed
            return NextRun(None, "paused") if paused else NextRun(at, "temporal")
        return from_trigger(trigger, now)

    def _fresh(self, now: datetime) -> bool:
        # a listing older than a few periods is not trusted over the trigger
        return self.listed_at is not None and now - self.listed_at < 4 * self.ttl

    def refresh_soon(self) -> None:
        """Start a background listing if the last one (or the last attempt) is stale; call
        from a running event loop. Never waits for it."""
        if self.connect is None or (self._task is not None and not self._task.done()):
            return
        now = self.clock()
        if self.tried_at is not None and now - self.tried_at < self.ttl:
            return
        self.tried_at = now
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            await asyncio.wait_for(self._list(), self.timeout_s)
        except Exception as exc:  # Temporal unreachable: the triggers answer meanwhile
            log.info("pane: Temporal schedules not listed (%s); next runs from triggers", exc)

    async def _list(self) -> None:
        assert self.connect is not None
        client = await self.connect()
        found: dict[str, tuple[datetime | None, bool]] = {}
        async for s in await client.list_schedules():
            if not s.id.startswith(SCHEDULE_PREFIX):
                continue
            times = sorted(t.astimezone(UTC) for t in (s.info.next_action_times if s.info else ()))
            paused = bool(s.schedule is not None and s.schedule.state.paused)
            found[s.id[len(SCHEDULE_PREFIX) :]] = (times[0] if times else None, paused)
        self.listed, self.listed_at = found, self.clock()
