# ruff: noqa: F401, F811
"""The running spend total per key and period (migration 0010b_spend_totals): a budget check
reads it instead of summing the period's calls, and it always agrees with the sum."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from cleanday.budget import SpendStore
from cleanday.errors import BudgetExceeded
from tests.fakes.router_fixtures import routing_engine

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _bind(engine: Engine, cap: float, cadence: str = "day", behavior: str = "b") -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values (:b, :ref, :cap, :cadence, '[]', "
                "'{}', :now, :now)"
            ),
            {"b": behavior, "ref": f"env:K_{behavior}", "cap": cap, "cadence": cadence,
             "now": NOW},
        )  # fmt: skip


def _total(engine: Engine, behavior: str = "b") -> float | None:
    with engine.connect() as conn:
        value = conn.execute(
            text("select settled_usd from key_spend_totals where behavior = :b"), {"b": behavior}
        ).scalar()
    return None if value is None else float(value)


def _settled_sum(engine: Engine, behavior: str = "b") -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(
                text(
                    "select coalesce(sum(cost_usd), 0) from key_spend "
                    "where behavior = :b and status <> 'reserved'"
                ),
                {"b": behavior},
            ).scalar_one()
        )


async def test_the_total_stays_exact_under_a_100_call_race_and_holds_the_cap(
    routing_engine: Engine,
) -> None:
    _bind(routing_engine, cap=0.5)
    store = SpendStore(routing_engine, clock=Clock(NOW))
    costs = random.Random(7)

    async def call() -> bool:
        try:
            reservation = await store.reserve_async("b", 0.01)
        except BudgetExceeded:
            return False
        await asyncio.sleep(0)
        cost = costs.choice([0.0, 0.004, 0.01])  # some released, some under their estimate
        if cost:
            await store.settle_async(reservation, cost)
        else:
            await store.release_async(reservation)
        return True

    results = await asyncio.gather(*[call() for _ in range(100)])
    await store.drain()
    assert any(results) and _total(routing_engine) == pytest.approx(_settled_sum(routing_engine))
    assert store.spend("b") == pytest.approx(_settled_sum(routing_engine))
    assert store.spend("b") <= 0.5 + 1e-9
    # fill the rest of the cap exactly: the total and the rows agree on what is left
    left = 0.5 - store.spend("b")
    if left > 1e-9:
        last = await store.reserve_async("b", left)
        await store.settle_async(last, left)
    with pytest.raises(BudgetExceeded):
        await store.reserve_async("b", 0.001)
    assert store.spend("b") == pytest.approx(0.5)


async def test_a_new_period_and_a_changed_cadence_start_from_the_rows(
    routing_engine: Engine,
) -> None:
    _bind(routing_engine, cap=1.0, cadence="day")
    clock = Clock(NOW)
    store = SpendStore(routing_engine, clock=clock)
    r = await store.reserve_async("b", 0.3)
    await store.settle_async(r, 0.3)
    assert _total(routing_engine) == pytest.approx(0.3)
    clock.at = NOW + timedelta(days=1)  # the next day: a period of its own
    r = await store.reserve_async("b", 0.9)
    await store.settle_async(r, 0.9)
    assert _total(routing_engine) == pytest.approx(0.9)
    with pytest.raises(BudgetExceeded, match=r"\$0\.9000"):
        await store.reserve_async("b", 0.2)
    with routing_engine.begin() as conn:
        conn.execute(text("update routing_bindings set cadence = 'month'"))
    # the month holds both days: summed afresh from the rows, not carried over from the day
    store = SpendStore(routing_engine, clock=clock)
    with pytest.raises(BudgetExceeded, match=r"\$1\.2000"):
        await store.reserve_async("b", 0.01)
    assert _total(routing_engine) == pytest.approx(1.2)


async def test_a_settlement_from_the_last_period_does_not_count_in_the_new_one(
    routing_engine: Engine,
) -> None:
    _bind(routing_engine, cap=1.0, cadence="day")
    clock = Clock(NOW.replace(hour=23, minute=59))
    store = SpendStore(routing_engine, clock=clock)
    late = await store.reserve_async("b", 0.5)  # reserved just before midnight
    clock.at = NOW + timedelta(days=1)
    fresh = await store.reserve_async("b", 0.4)  # the new day's total: nothing yet
    await store.settle_async(late, 0.5)  # lands after midnight, belongs to yesterday
    await store.settle_async(fresh, 0.4)
    assert _total(routing_engine) == pytest.approx(0.4)
    assert store.spend("b") == pytest.approx(0.4)


async def test_rows_written_or_removed_directly_move_the_total_too(routing_engine: Engine) -> None:
    _bind(routing_engine, cap=1.0, cadence="day")
    store = SpendStore(routing_engine, clock=Clock(NOW))
    r = await store.reserve_async("b", 0.1)
    await store.settle_async(r, 0.1)
    with routing_engine.begin() as conn:
        conn.execute(
            text(
                "insert into key_spend (behavior, at, transport, model, estimate_usd, cost_usd, "
                "status, tokens_in, tokens_out) values ('b', :at, '', '', 0.2, 0.2, 'settled', "
                "0, 0)"
            ),
            {"at": NOW - timedelta(hours=1)},
        )
    assert _total(routing_engine) == pytest.approx(0.3)
    with routing_engine.begin() as conn:
        conn.execute(text("update key_spend set cost_usd = 0.15 where cost_usd > 0.19"))
    assert _total(routing_engine) == pytest.approx(0.25)
    with routing_engine.begin() as conn:
        conn.execute(text("delete from key_spend where cost_usd > 0.14"))
    assert _total(routing_engine) == pytest.approx(0.1)
    assert _total(routing_engine) == pytest.approx(store.spend("b"))
