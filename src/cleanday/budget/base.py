"""What a budget check reads and decides, whichever database runs it: the rows, the statements a
store's transaction offers, and the reservation itself (the cap rule)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from cleanday.budget.periods import as_utc, period_bounds
from cleanday.errors import BudgetExceeded, UnknownBehaviorError

T = TypeVar("T")

# A live reservation counts its estimate, anything else its actual cost. A reservation older
# than RESERVATION_TTL belongs to a process that died mid-call (no call lasts that long: the
# longest timeout class is minutes), so it stops holding budget.
RESERVATION_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class Reservation:
    id: int
    behavior: str
    estimate_usd: float


@dataclass(frozen=True)
class Settlement:
    """What a call came to, in place of its reservation's estimate."""

    cost_usd: float
    # settled | released | refused_402
    status: str = "settled"
    transport: str | None = None
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0

    def params(self, reservation: Reservation, settled_at: object) -> dict[str, Any]:
        """The settlement statement's parameters (every store runs the same UPDATE), with
        `settled_at` as the store's driver takes it."""
        return {
            "id": reservation.id,
            "cost": self.cost_usd,
            "status": self.status,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "settled_at": settled_at,
            "transport": self.transport,
            "model": self.model,
        }


@dataclass(frozen=True)
class KeyReport:
    """One row of `cleanday keys`."""

    behavior: str
    key_ref: str
    cadence: str
    cap_usd: float
    spend_usd: float
    share_used: float
    projected_usd: float
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True)
class BindingRow:
    """A behavior's routing binding as read on the hot path (no secret: a reference)."""

    behavior: str
    key_ref: str
    cap_usd: float
    cadence: str
    transports: list[str]
    guardrails: dict[str, Any]
    openrouter_key_hash: str | None
    preset_slug: str | None


@dataclass(frozen=True)
class PresetHead:
    """The latest preset version's row; `content` is JSON text or already a dict."""

    version: int
    content_hash: str
    source: str
    created_at: datetime
    content: Any


class PresetReader(Protocol):
    """What `PresetStore.current` needs from a transaction: the latest preset version's row."""

    def latest_preset(self, behavior: str) -> PresetHead | None: ...


class BudgetTx(PresetReader, Protocol):
    """The statements of one budget transaction, the key's lock held."""

    def binding(self, behavior: str) -> BindingRow | None: ...

    def spent(
        self, behavior: str, start: datetime, end: datetime, live_since: datetime
    ) -> float: ...

    def running_spent(
        self, behavior: str, start: datetime, end: datetime, live_since: datetime
    ) -> float:
        """`spent`, from the key's running total (kept by key_spend's triggers) plus its live
        reservations; the total is summed afresh when it holds another period."""
        ...

    def insert_reservation(
        self,
        behavior: str,
        at: datetime,
        run_id: str | None,
        transport: str,
        model: str,
        estimate: float,
    ) -> int: ...


@dataclass(frozen=True)
class PrefetchedTx:
    """The preset head already read (in the reservation's round trip, or cached): planning
    needs no further database access."""

    head: PresetHead | None

    def latest_preset(self, behavior: str) -> PresetHead | None:
        return self.head


# `prepare(tx, binding)` returns (anything, estimate, transport, model); see SpendStore
Prepare = Callable[[PresetReader, BindingRow], tuple[T, float, str, str]]


class BudgetBackend(Protocol):
    """One database's way of running the budget transactions (`sqlite`, `postgres`)."""

    def reserve(
        self, behavior: str, prepare: Prepare[T], now: datetime, run_id: str | None
    ) -> tuple[T, Reservation]: ...

    async def reserve_async(
        self, behavior: str, prepare: Prepare[T], now: datetime, run_id: str | None
    ) -> tuple[T, Reservation]: ...

    def settle(self, reservation: Reservation, settlement: Settlement, at: datetime) -> None: ...

    async def settle_async(
        self, reservation: Reservation, settlement: Settlement, at: datetime
    ) -> None: ...

    def settle_soon(
        self, reservation: Reservation, settlement: Settlement, at: datetime
    ) -> None: ...

    async def drain(self) -> None: ...


def unbound(behavior: str) -> UnknownBehaviorError:
    return UnknownBehaviorError(
        f"behavior {behavior!r} has no model key bound; register its Work Order first"
    )


def fits(spent: float, estimate_usd: float, cap_usd: float) -> bool:
    """The cap rule: spend so far plus this call's estimate stays within the cap."""
    # a hair of tolerance so that a call landing exactly on the cap is allowed
    return spent + estimate_usd <= cap_usd + 1e-9


def over_cap(
    binding: BindingRow, spent: float, estimate_usd: float, end: datetime, timezone: str
) -> BudgetExceeded:
    reset_on = end.astimezone(ZoneInfo(timezone))
    return BudgetExceeded(
        f"key {binding.key_ref} of {binding.behavior}: spend this {binding.cadence} "
        f"${spent:.4f} + next call's estimate ${estimate_usd:.4f} would pass the cap "
        f"${binding.cap_usd:.2f}; no call was made. Raise the cap in the Work Order "
        f"or wait for the period to reset on {reset_on:%Y-%m-%d}"
    )


def reserve_in(
    tx: BudgetTx,
    behavior: str,
    prepare: Prepare[T],
    now: datetime,
    timezone: str,
    run_id: str | None,
) -> tuple[T, Reservation]:
    """The reservation inside a transaction that holds the key's lock: read the binding, ask
    `prepare` for the estimate, check the cap, insert. `prepare` may raise (a policy
    violation, say); then nothing is reserved."""
    binding = tx.binding(behavior)
    if binding is None:
        raise unbound(behavior)
    result, estimate_usd, transport, model = prepare(tx, binding)
    start, end = period_bounds(binding.cadence, now, timezone)
    at = as_utc(now)
    spent = tx.running_spent(behavior, start, end, at - RESERVATION_TTL)
    if not fits(spent, estimate_usd, binding.cap_usd):
        raise over_cap(binding, spent, estimate_usd, end, timezone)
    pk = tx.insert_reservation(behavior, at, run_id, transport, model, estimate_usd)
    return result, Reservation(id=pk, behavior=behavior, estimate_usd=estimate_usd)
