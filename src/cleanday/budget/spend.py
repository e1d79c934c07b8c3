"""Spend per key: reservations before each call, settlements after, and the `cleanday keys`
report. One `SpendStore` for callers; the database's own module runs the transactions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, select

from cleanday.budget.base import (
    RESERVATION_TTL,
    BudgetBackend,
    KeyReport,
    Prepare,
    Reservation,
    Settlement,
)
from cleanday.budget.periods import as_utc, period_bounds
from cleanday.budget.postgres import DEFAULT_POOL_SIZE, PostgresBudget
from cleanday.budget.sql import SqlAlchemyTx
from cleanday.budget.sqlite import SqliteBudget
from cleanday.db import is_sqlite
from cleanday.errors import UnknownBehaviorError
from cleanday.router.tables import RoutingBinding

T = TypeVar("T")


class SpendStore:
    """Budget reservations and spend per key, atomic across processes.

    Reserving takes the database's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL a row
    lock on the behavior's binding) so that the check of spend + estimate against the cap and
    the insert of the reservation are one step: concurrent calls can overshoot the cap only by
    the difference between an estimate and the actual cost.

    The synchronous methods and their `_async` twins give the same guarantees; the router uses
    the latter (inline on SQLite, the event loop's own connections on PostgreSQL: see
    `cleanday.budget.postgres`).
    """

    def __init__(
        self,
        engine: Engine,
        timezone: str = "UTC",
        clock: Callable[[], datetime] | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        """`pool_size`: PostgreSQL's budget connections per event loop (SQLite needs none)."""
        self.engine = engine
        self.timezone = timezone
        self.clock = clock or (lambda: datetime.now(UTC))
        self._backend: BudgetBackend = (
            SqliteBudget(engine, timezone)
            if is_sqlite(engine)
            else PostgresBudget(engine, timezone, pool_size)
        )

    # --- reserving ------------------------------------------------------------------

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
        self, behavior: str, prepare: Prepare[T], *, run_id: str | None = None
    ) -> tuple[T, Reservation]:
        """Reserve under the key's lock, asking `prepare(tx, binding)` for the estimate.

        `prepare` returns (anything, estimate, transport, model); it may read through `tx`
        (the preset) and may raise (a policy violation, say), in which case nothing is
        reserved. One transaction instead of two keeps the check cheap on every call.
        """
        return self._backend.reserve(behavior, prepare, self.clock(), run_id)

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
        self, behavior: str, prepare: Prepare[T], *, run_id: str | None = None
    ) -> tuple[T, Reservation]:
        """`reserve_with` from the event loop, with the same guarantee. On PostgreSQL
        `prepare` may run twice (on cached rows, then on rows read under the lock), so it must
        not have side effects."""
        return await self._backend.reserve_async(behavior, prepare, self.clock(), run_id)

    # --- settling -------------------------------------------------------------------

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
        settlement = Settlement(cost_usd, status, transport, model, tokens_in, tokens_out)
        self._backend.settle(reservation, settlement, self.clock())

    def release(self, reservation: Reservation, *, status: str = "released") -> None:
        """The call cost nothing (refused, failed, timed out): free its estimate."""
        self._backend.settle(reservation, Settlement(0.0, status), self.clock())

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
        without waiting for the disk."""
        settlement = Settlement(cost_usd, status, transport, model, tokens_in, tokens_out)
        await self._backend.settle_async(reservation, settlement, self.clock())

    async def release_async(self, reservation: Reservation, *, status: str = "released") -> None:
        await self._backend.settle_async(reservation, Settlement(0.0, status), self.clock())

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
        settlement = Settlement(cost_usd, "settled", transport, model, tokens_in, tokens_out)
        self._backend.settle_soon(reservation, settlement, self.clock())

    async def drain(self) -> None:
        """Wait for the settlements `settle_soon` started on this loop."""
        await self._backend.drain()

    # --- reading --------------------------------------------------------------------

    def _spent(self, session: Session, behavior: str, start: datetime, end: datetime) -> float:
        live_since = as_utc(self.clock()) - RESERVATION_TTL
        return SqlAlchemyTx(session.connection()).spent(
            behavior, as_utc(start), as_utc(end), live_since
        )

    def spend(self, behavior: str, now: datetime | None = None) -> float:
        now = now or self.clock()
        with Session(self.engine) as session:
            binding = session.get(RoutingBinding, behavior)
            if binding is None:
                raise UnknownBehaviorError(f"behavior {behavior!r} has no model key bound")
            start, end = period_bounds(binding.cadence, now, self.timezone)
            return self._spent(session, behavior, start, end)

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
                spent = self._spent(session, binding.behavior, start, end)
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
