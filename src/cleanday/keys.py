"""Model keys: resolving a key reference to its secret, and the budget each key may spend."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, case, func, select, update
from sqlmodel import Session

from cleanday.errors import BudgetExceeded, SecretResolutionError, UnknownBehaviorError
from cleanday.router.tables import KeySpend, RoutingBinding

REDACTED = "[redacted]"


class Secret:
    """A resolved secret; its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class Redactor:
    """Remembers every secret this process resolved and strikes them out of any text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if value:
            with self._lock:
                self._values.add(value)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


SchemeResolver = Callable[[str], str]


class SecretResolver:
    """Turns `env:NAME`, `file:/path` or `<scheme>:<rest>` into a Secret.

    Further schemes (a secret manager, a vault) plug in with `register(scheme, fn)`; errors
    name the reference, never a value.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._env = env if env is not None else os.environ
        self.redactor = redactor or Redactor()
        self._schemes: dict[str, SchemeResolver] = {"env": self._from_env, "file": self._from_file}

    def register(self, scheme: str, resolver: SchemeResolver) -> None:
        self._schemes[scheme] = resolver

    def resolve(self, ref: str) -> Secret:
        scheme, sep, rest = ref.partition(":")
        if not sep or not rest:
            raise SecretResolutionError(
                f"key reference {ref!r} has no scheme; write env:NAME, file:/path "
                f"or one of {sorted(self._schemes)}"
            )
        resolver = self._schemes.get(scheme)
        if resolver is None:
            raise SecretResolutionError(
                f"key reference {ref!r}: unknown scheme {scheme!r}; known: {sorted(self._schemes)}"
            )
        value = resolver(rest).strip()
        if not value:
            raise SecretResolutionError(f"key reference {ref!r} resolved to an empty value")
        self.redactor.add(value)
        return Secret(value)

    def _from_env(self, name: str) -> str:
        value = self._env.get(name)
        if value is None:
            raise SecretResolutionError(f"key reference env:{name}: environment variable not set")
        return value

    def _from_file(self, path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise SecretResolutionError(
                f"key reference file:{path}: cannot read the file ({exc.strerror})"
            ) from None


# --- periods ---------------------------------------------------------------------------


def period_bounds(cadence: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The budget period containing `now`: starts 00:00 local time, as aware UTC datetimes."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start: date
    end: date
    if cadence == "day":
        start, end = today, today + timedelta(days=1)
    elif cadence == "week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    elif cadence == "month":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown cadence {cadence!r}; use day, week or month")
    return (
        datetime.combine(start, time(), tzinfo=zone).astimezone(UTC),
        datetime.combine(end, time(), tzinfo=zone).astimezone(UTC),
    )


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime")
    return dt.astimezone(UTC)


# --- spend -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    id: int
    behavior: str
    estimate_usd: float


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


# spend of a row: a live reservation counts its estimate, anything else its actual cost
_ROW_SPEND = case(
    (KeySpend.status == "reserved", KeySpend.estimate_usd),  # type: ignore[arg-type]
    else_=KeySpend.cost_usd,
)


class SpendStore:
    """Budget reservations and spend per key, atomic across processes.

    Reserving takes the database's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL a row
    lock on the behavior's binding) so that the check of spend + estimate against the cap and
    the insert of the reservation are one step: concurrent calls can overshoot the cap only by
    the difference between an estimate and the actual cost.
    """

    def __init__(
        self, engine: Engine, timezone: str = "UTC", clock: Callable[[], datetime] | None = None
    ) -> None:
        self.engine = engine
        self.timezone = timezone
        self.clock = clock or (lambda: datetime.now(UTC))

    @contextmanager
    def _locked(self, behavior: str) -> Iterator[tuple[Connection, RoutingBinding]]:
        with self.engine.connect() as conn:
            stmt = select(RoutingBinding).where(RoutingBinding.behavior == behavior)  # type: ignore[arg-type]
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).first()
            if row is None:
                conn.rollback()
                raise UnknownBehaviorError(
                    f"behavior {behavior!r} has no model key bound; register its Work Order first"
                )
            binding = RoutingBinding.model_validate(row._mapping)
            try:
                yield conn, binding
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _spent(self, conn: Connection, behavior: str, start: datetime, end: datetime) -> float:
        total = conn.execute(
            select(func.coalesce(func.sum(_ROW_SPEND), 0.0)).where(
                KeySpend.behavior == behavior,  # type: ignore[arg-type]
                KeySpend.at >= _utc(start),  # type: ignore[arg-type]
                KeySpend.at < _utc(end),  # type: ignore[arg-type]
            )
        ).scalar_one()
        return float(total)

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
        now = self.clock()
        with self._locked(behavior) as (conn, binding):
            start, end = period_bounds(binding.cadence, now, self.timezone)
            spent = self._spent(conn, behavior, start, end)
            # a hair of tolerance so that a call landing exactly on the cap is allowed
            if spent + estimate_usd > binding.cap_usd + 1e-9:
                reset_on = end.astimezone(ZoneInfo(self.timezone))
                raise BudgetExceeded(
                    f"key {binding.key_ref} of {behavior}: spend this {binding.cadence} "
                    f"${spent:.4f} + next call's estimate ${estimate_usd:.4f} would pass the cap "
                    f"${binding.cap_usd:.2f}; no call was made. Raise the cap in the Work Order "
                    f"or wait for the period to reset on {reset_on:%Y-%m-%d}"
                )
            result = conn.execute(
                KeySpend.__table__.insert().values(  # type: ignore[attr-defined]
                    behavior=behavior,
                    at=_utc(now),
                    run_id=run_id,
                    transport=transport,
                    model=model,
                    estimate_usd=estimate_usd,
                    cost_usd=0.0,
                    status="reserved",
                    tokens_in=0,
                    tokens_out=0,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return Reservation(id=int(pk[0]), behavior=behavior, estimate_usd=estimate_usd)

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
        values: dict[str, object] = {
            "cost_usd": cost_usd,
            "status": status,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "settled_at": _utc(self.clock()),
        }
        if transport is not None:
            values["transport"] = transport
        if model is not None:
            values["model"] = model
        with self.engine.begin() as conn:
            conn.execute(
                update(KeySpend).where(KeySpend.id == reservation.id).values(**values)  # type: ignore[arg-type]
            )

    def release(self, reservation: Reservation, *, status: str = "released") -> None:
        """The call cost nothing (refused, failed, timed out): free its estimate."""
        self.settle(reservation, 0.0, status=status)

    def spend(self, behavior: str, now: datetime | None = None) -> float:
        now = now or self.clock()
        with Session(self.engine) as session:
            binding = session.get(RoutingBinding, behavior)
            if binding is None:
                raise UnknownBehaviorError(f"behavior {behavior!r} has no model key bound")
            start, end = period_bounds(binding.cadence, now, self.timezone)
            return self._spent(session.connection(), behavior, start, end)

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
                spent = self._spent(session.connection(), binding.behavior, start, end)
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
