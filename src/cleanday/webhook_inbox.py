"""The webhook inbox: an accepted delivery is stored in the ledger database before it is answered,
then started as a run; one that Temporal cannot take yet waits there until Temporal answers.

Why one row for both: the signature of a delivery is what refuses its replay, so once it is
recorded the sender can never send that delivery again. Recording it and promising to start it
must therefore be the same write, made before the 202 (a delivery refused after its signature
was recorded would be lost: its retry is a replay).

- `accept` stores a verified delivery, or raises WebhookRejected(409) when its signature is
  already stored: a replay, whichever service instance on this database received the first copy.
- `submit` starts a stored delivery, after every older one still waiting, and says whether it
  started within the time the caller waits; it goes on starting after the caller stops waiting.
- Starts run one at a time per process, in ID order. A start that fails (Temporal down, or
  slower than `start_timeout_s`) leaves its row, and the rows after it, for the next round.
  Starting a delivery twice is harmless: its workflow ID derives from its signature, and
  Temporal refuses a second workflow with that ID (REJECT_DUPLICATE), which the starter takes
  as "already started".
- `run(every_s)` is the background round (`cleanday.runtime.starter` runs it in the service):
  start what waits, and forget started deliveries whose signatures can no longer verify (past
  their timestamp's tolerance they are refused as stale, so the replay check needs them no
  longer). A delivery that never started is never forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from cleanday.db import write_connection
from cleanday.errors import WebhookRejected
from cleanday.models import T_WEBHOOK_DELIVERIES as T
from cleanday.webhooks import Verified

log = logging.getLogger("cleanday.webhooks")


class RunStarter(Protocol):
    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        """Start a run of `behavior` under `workflow_id` (also the ledger's run ID) and return
        it; a workflow of that ID that already exists counts as started."""
        ...


def workflow_id_for(behavior: str, signature: str) -> str:
    """A delivery's run: the signature is unique per delivery (replays are refused)."""
    return f"{behavior}-hook-{signature[:24]}"


@dataclass(frozen=True)
class Delivery:
    id: int
    behavior: str
    workflow_id: str
    payload: dict[str, Any]


class WebhookInbox:
    """Accepted deliveries in `engine`'s `webhook_deliveries`, started through `start_run`."""

    def __init__(
        self,
        engine: Engine,
        start_run: RunStarter,
        *,
        clock: Callable[[], datetime] | None = None,
        start_timeout_s: float = 10.0,
        batch: int = 100,
    ) -> None:
        self.engine = engine
        self.start_run = start_run
        self.clock = clock or (lambda: datetime.now(UTC))
        self.start_timeout_s = start_timeout_s
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._again = False
        # what a request waits for: True once its delivery started, False when the round that
        # reached it failed (Temporal down: the answer need not wait any longer)
        self._waiters: dict[int, asyncio.Future[bool]] = {}

    # --- storing ---------------------------------------------------------------------

    def accept(
        self, behavior: str, verified: Verified, payload: dict[str, Any], tolerance_s: int
    ) -> Delivery:
        """Store a verified delivery (blocking: call it from a worker thread on a loop)."""
        signed_at = datetime.fromtimestamp(verified.timestamp, UTC)
        workflow_id = workflow_id_for(behavior, verified.signature)
        row = {
            "signature": verified.signature,
            "behavior": behavior,
            "workflow_id": workflow_id,
            "payload": payload,
            "signed_at": signed_at,
            "expires_at": signed_at + timedelta(seconds=tolerance_s),
            "received_at": self.clock(),
            "started_at": None,
            "attempts": 0,
            "last_error": None,
        }
        try:
            with write_connection(self.engine) as conn:
                result = conn.execute(sa.insert(T).values(**row))
                (pk,) = result.inserted_primary_key or (None,)
        except IntegrityError:
            raise WebhookRejected(
                409,
                f"this signature was already accepted (run {workflow_id}): replay refused",
            ) from None
        assert pk is not None
        return Delivery(int(pk), behavior, workflow_id, payload)

    def waiting(self) -> list[Delivery]:
        """Deliveries not started yet, oldest first (at most `batch`)."""
        c = T.c
        query = (
            sa.select(c.id, c.behavior, c.workflow_id, c.payload)
            .where(c.started_at.is_(None))
            .order_by(c.id)
            .limit(self.batch)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Delivery(r.id, r.behavior, r.workflow_id, dict(r.payload)) for r in rows]

    def _mark(self, delivery: Delivery, error: str | None) -> None:
        c = T.c
        values: dict[str, Any] = {"attempts": c.attempts + 1, "last_error": error}
        if error is None:
            values["started_at"] = self.clock()
        with write_connection(self.engine) as conn:
            conn.execute(sa.update(T).where(c.id == delivery.id).values(**values))

    def forget_expired(self) -> int:
        """Delete started deliveries whose signatures can no longer verify; how many."""
        c = T.c
        with write_connection(self.engine) as conn:
            result = conn.execute(
                sa.delete(T).where(c.started_at.is_not(None), c.expires_at < self.clock())
            )
        return int(result.rowcount or 0)

    # --- starting --------------------------------------------------------------------

    async def submit(self, delivery: Delivery, wait_s: float) -> bool:
        """Start `delivery` (after the older ones waiting); whether it started within
        `wait_s`. It stays stored, and is started later, when it did not."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[delivery.id] = future
        task = self.kick()
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait_s)
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(delivery.id, None)
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("webhook start round failed: %s", task.exception())

    def kick(self) -> asyncio.Task[None]:
        """A round of starts in the background; one at a time (a kick during a round makes it
        look again once it is done, so nothing stored meanwhile waits for the next tick)."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            self._again = True
            return task
        self._task = loop.create_task(self._rounds())
        return self._task

    async def _rounds(self) -> None:
        while True:
            self._again = False
            await self.start_waiting()
            if not self._again:
                return

    async def start_waiting(self) -> int:
        """Start stored deliveries in order until one fails; how many started. Call it through
        `kick` unless nothing else starts deliveries in this process."""
        started = 0
        while True:
            batch = await asyncio.to_thread(self.waiting)
            for delivery in batch:
                try:
                    await asyncio.wait_for(
                        self.start_run(delivery.behavior, delivery.payload, delivery.workflow_id),
                        self.start_timeout_s,
                    )
                except Exception as exc:  # Temporal down or slow: the row waits, in order
                    error = f"{type(exc).__name__}: {exc}"[:2000]
                    log.warning(
                        "webhook delivery %s of %s not started yet (%s); it is stored and "
                        "starts when Temporal answers",
                        delivery.workflow_id,
                        delivery.behavior,
                        error,
                        extra={"run_id": delivery.workflow_id},  # the run it is about
                    )
                    await asyncio.to_thread(self._mark, delivery, error)
                    for pending in self._waiters.values():
                        if not pending.done():
                            pending.set_result(False)
                    return started
                await asyncio.to_thread(self._mark, delivery, None)
                started += 1
                waiter = self._waiters.get(delivery.id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(True)
            if len(batch) < self.batch:
                return started

    async def run(self, every_s: float) -> None:
        """Forever: start what waits, forget what can no longer be replayed, sleep."""
        while True:
            try:
                await self.kick()
                await asyncio.to_thread(self.forget_expired)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: the next round tries again
                log.exception("webhook inbox round failed; retrying in %.0f s", every_s)
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
