# ruff: noqa: F401, F811
"""Budgets per key: the cap, its period in the ledger's time zone, racing calls, `keys` report."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from cleanday.budget import SpendStore, period_bounds
from cleanday.domain import Tier
from cleanday.errors import BudgetExceeded, RegistrationError, SecretResolutionError
from cleanday.router import RouterConfig
from cleanday.router.tables import RoutingBinding
from cleanday.secrets import SecretResolver
from tests.fakes.router_fixtures import (
    CANARY,
    MakeRouter,
    Provider,
    _primary_server,
    _secondary_server,
    make_router,
    primary,
    routing_engine,
    secondary,
    sqlite_engine,
    work_order,
)

HELLO = [{"role": "user", "content": "hi"}]
# every call is estimated at $0.10 and the primary provider reports $0.10
PRICED = RouterConfig(default_estimate_usd=0.1)


def _spend(engine: Engine, behavior: str, at: datetime, cost: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into key_spend (behavior, at, estimate_usd, cost_usd, status, "
                "tokens_in, tokens_out, transport, model) "
                "values (:b, :at, :c, :c, 'settled', 0, 0, 'openrouter', 'm')"
            ),
            {"b": behavior, "at": at.astimezone(UTC).replace(tzinfo=None), "c": cost},
        )


async def test_call_landing_exactly_on_the_cap_is_made_and_the_next_is_not(
    make_router: MakeRouter, primary: Provider, routing_engine: Engine
) -> None:
    router = make_router(config=PRICED)
    router.bind_local(work_order(transports={"order": ["openrouter"]}))
    _spend(routing_engine, "seo_audit", datetime.now(UTC) - timedelta(seconds=5), 0.9)
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.cost_usd == pytest.approx(0.1)
    assert router.spend.spend("seo_audit") == pytest.approx(1.0)
    with pytest.raises(BudgetExceeded, match="would pass the cap") as err:
        await router.complete("seo_audit", Tier.A, HELLO)
    assert err.value.gate == "budget"
    assert len(primary.requests()) == 1  # the refused call sent nothing


async def test_fallback_and_retries_each_pass_the_budget_check(
    make_router: MakeRouter, routing_engine: Engine
) -> None:
    router = make_router(config=PRICED)
    router.bind_local(work_order())
    _spend(routing_engine, "seo_audit", datetime.now(UTC) - timedelta(seconds=5), 0.8)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        # another run of the same key spends the last dollars while this attempt is in flight
        _spend(routing_engine, "seo_audit", datetime.now(UTC) - timedelta(seconds=1), 0.15)
        return httpx.Response(503, json={"error": {"message": "overloaded"}})

    router._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with pytest.raises(BudgetExceeded, match="would pass the cap"):
        await router.complete("seo_audit", Tier.A, HELLO)
    assert seen == ["/v1/chat/completions"]  # the Anthropic fallback was never sent


async def test_every_attempt_reserves_before_it_is_sent(
    make_router: MakeRouter, primary: Provider, secondary: Provider
) -> None:
    sleeps: list[float] = []

    async def no_sleep(s: float) -> None:
        sleeps.append(s)

    router = make_router(config=PRICED, sleep=no_sleep)
    router.bind_local(work_order())
    primary.fault("seo_audit", "429", count=2)
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert [a.status for a in done.attempts] == [429, 429, 200]
    primary.fault("seo_audit", "500")
    done = await router.complete("seo_audit", Tier.A, HELLO)
    assert done.fell_back
    await router.drain()
    # one reservation per request sent, each settled with its cost or released
    with router.engine.connect() as conn:
        rows = conn.execute(text("select transport, status from key_spend order by id")).all()
    assert [tuple(r) for r in rows] == [
        ("openrouter", "released"),
        ("openrouter", "released"),
        ("openrouter", "settled"),
        ("openrouter", "released"),
        ("anthropic", "settled"),
    ]


def test_month_rolls_over_at_midnight_in_the_ledger_time_zone(routing_engine: Engine) -> None:
    tz = "America/New_York"
    zone = ZoneInfo(tz)
    now = [datetime(2026, 10, 31, 23, 30, tzinfo=zone)]
    store = SpendStore(routing_engine, timezone=tz, clock=lambda: now[0])
    with routing_engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', 1.0, 'month', '[]', '{}', "
                ":t, :t)"
            ),
            {"t": datetime(2026, 10, 1)},
        )
    # 23:30 on 31 October in New York is already 1 November in UTC
    r = store.reserve("b", 0.8)
    store.settle(r, 0.8)
    with pytest.raises(BudgetExceeded):
        store.reserve("b", 0.3)
    now[0] = datetime(2026, 10, 31, 23, 59, 59, tzinfo=zone)
    assert store.spend("b") == pytest.approx(0.8)
    now[0] = datetime(2026, 11, 1, 0, 0, tzinfo=zone)
    assert store.spend("b") == 0.0
    store.reserve("b", 0.3)  # a new period, a fresh cap


def test_period_bounds_start_at_local_midnight() -> None:
    at = datetime(2026, 3, 8, 12, tzinfo=UTC)  # a Sunday; DST starts that day in New York
    start, end = period_bounds("week", at, "America/New_York")
    assert start == datetime(2026, 3, 2, 5, tzinfo=UTC)  # Monday 00:00 EST
    assert end == datetime(2026, 3, 9, 4, tzinfo=UTC)  # Monday 00:00 EDT
    start, end = period_bounds("day", at, "Europe/Berlin")
    assert (start, end) == (
        datetime(2026, 3, 7, 23, tzinfo=UTC),
        datetime(2026, 3, 8, 23, tzinfo=UTC),
    )
    start, end = period_bounds("month", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Asia/Tokyo")
    assert start == datetime(2026, 12, 31, 15, tzinfo=UTC)  # 1 January 00:00 in Tokyo


async def test_twenty_concurrent_calls_never_take_spend_past_the_cap(
    make_router: MakeRouter, primary: Provider, routing_engine: Engine
) -> None:
    router = make_router(config=PRICED)
    router.bind_local(work_order(transports={"order": ["openrouter"]}))
    _spend(routing_engine, "seo_audit", datetime.now(UTC) - timedelta(seconds=5), 0.55)
    results = await asyncio.gather(
        *(router.complete("seo_audit", Tier.A, HELLO) for _ in range(20)), return_exceptions=True
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(made) + len(refused) == 20
    assert len(made) == 4  # 0.55 + 4 x 0.10 = 0.95; a fifth would pass $1.00
    assert len(primary.requests()) == 4
    assert router.spend.spend("seo_audit") <= 1.0 + 1e-9


def test_reservations_from_many_connections_are_serialized(routing_engine: Engine) -> None:
    with routing_engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', 1.0, 'day', '[]', '{}', "
                ":t, :t)"
            ),
            {"t": datetime(2026, 10, 1)},
        )
    store = SpendStore(routing_engine)
    granted: list[int] = []
    refused: list[int] = []
    barrier = threading.Barrier(20)

    def call(i: int) -> None:
        barrier.wait()
        try:
            store.reserve("b", 0.07)
            granted.append(i)
        except BudgetExceeded:
            refused.append(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 14  # 14 x 0.07 = 0.98
    assert store.spend("b") == pytest.approx(0.98)


def test_keys_report_shows_spend_share_and_projection(routing_engine: Engine) -> None:
    now = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)  # a third of November gone
    with routing_engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', 10.0, 'month', '[]', "
                "'{}', :t, :t)"
            ),
            {"t": datetime(2026, 10, 1)},
        )
    _spend(routing_engine, "b", datetime(2026, 11, 5, tzinfo=UTC), 2.0)
    _spend(routing_engine, "b", datetime(2026, 10, 30, tzinfo=UTC), 5.0)  # last period
    [row] = SpendStore(routing_engine, clock=lambda: now).report()
    assert row.spend_usd == pytest.approx(2.0)
    assert row.share_used == pytest.approx(0.2)
    assert row.projected_usd == pytest.approx(6.0)


def test_one_key_is_bound_to_one_behavior(make_router: MakeRouter) -> None:
    router = make_router()
    router.bind_local(work_order("seo_audit"))
    other = work_order("publish_posts", key={"ref": "env:KEY_SEO_AUDIT", "cap_usd": 2.0})
    with pytest.raises(RegistrationError, match="already bound to behavior seo_audit"):
        router.bind_local(other)


def test_two_workers_binding_one_behavior_at_once_both_start(
    make_router: MakeRouter, routing_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers starting together each read no binding and insert one; the later insert
    meets the row the other made. It updates that row instead of failing the worker's start
    (seen with two workers on PostgreSQL: `routing_bindings_pkey` violated)."""
    first, second = make_router(), make_router()
    first.bind_local(work_order("seo_audit"))
    real_get = Session.get
    missed: list[object] = []

    def read_before_the_other_insert(self: Session, entity: Any, ident: Any, **kw: Any) -> Any:
        if entity is RoutingBinding and not missed:
            missed.append(ident)
            return None
        return real_get(self, entity, ident, **kw)

    monkeypatch.setattr(Session, "get", read_before_the_other_insert)
    second.bind_local(work_order("seo_audit", key={"ref": "env:KEY_SEO_AUDIT", "cap_usd": 3.0}))
    assert missed == ["seo_audit"]
    with routing_engine.connect() as conn:
        rows = conn.execute(
            text("select cap_usd from routing_bindings where behavior = 'seo_audit'")
        ).all()
    assert [r.cap_usd for r in rows] == [3.0]


def test_unresolvable_reference_names_the_reference_never_a_value(tmp_path: object) -> None:
    resolver = SecretResolver(env={"OTHER": CANARY})
    with pytest.raises(SecretResolutionError, match="env:MISSING") as err:
        resolver.resolve("env:MISSING")
    assert CANARY not in str(err.value)
    with pytest.raises(SecretResolutionError, match="unknown secret scheme 'vault'"):
        resolver.resolve("vault:secret/x")
    resolver.register("vault", lambda path: CANARY if path == "secret/x" else "")
    secret = resolver.resolve("vault:secret/x")
    assert secret.reveal() == CANARY
    assert CANARY not in repr(secret) and CANARY not in str(secret)
    assert resolver.redactor(f"boom {CANARY} boom") == "boom [redacted] boom"


def _bind_plain(engine: Engine, cap: float = 1.0, cadence: str = "month") -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', :cap, :cadence, '[]', "
                "'{}', :t, :t)"
            ),
            {"t": datetime(2026, 10, 1), "cap": cap, "cadence": cadence},
        )


def test_reservation_of_a_process_that_died_stops_holding_budget(routing_engine: Engine) -> None:
    _bind_plain(routing_engine)
    now = [datetime(2026, 11, 10, 12, 0, tzinfo=UTC)]
    store = SpendStore(routing_engine, clock=lambda: now[0])
    store.reserve("b", 0.9)  # never settled: its process died
    with pytest.raises(BudgetExceeded):
        store.reserve("b", 0.2)
    now[0] += timedelta(minutes=16)
    store.reserve("b", 0.2)
    assert store.spend("b") == pytest.approx(0.2)


def _reserve_in_child(url: str, n: int, start: float, out: Any) -> None:
    from cleanday.db import make_engine

    engine = make_engine(url)
    store = SpendStore(engine)
    while time.time() < start:
        time.sleep(0.001)
    granted = 0
    for _ in range(n):
        try:
            store.reserve("b", 0.05)
            granted += 1
        except BudgetExceeded:
            pass
    out.put(granted)
    engine.dispose()


def test_reservations_from_several_processes_never_pass_the_cap(sqlite_engine: Engine) -> None:
    _bind_plain(sqlite_engine)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    url = sqlite_engine.url.render_as_string(hide_password=False)
    start = time.time() + 1.0
    procs = [ctx.Process(target=_reserve_in_child, args=(url, 8, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    granted = sum(out.get(timeout=5) for _ in procs)
    assert granted == 20  # 20 x 0.05 = 1.00 of the 32 attempts
    assert SpendStore(sqlite_engine).spend("b") == pytest.approx(1.0)


def test_a_refused_reservation_leaves_the_key_unlocked_for_the_next_call(
    routing_engine: Engine,
) -> None:
    # the budget transaction runs on connections kept open between calls (PostgreSQL): a
    # refusal must roll back and free the binding's row lock, or the next call would hang
    with routing_engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values ('b', 'env:K', 0.1, 'day', '[]', '{}', "
                ":t, :t)"
            ),
            {"t": datetime(2026, 10, 1)},
        )
    store = SpendStore(routing_engine)
    first = store.reserve("b", 0.08)
    with pytest.raises(BudgetExceeded):
        store.reserve("b", 0.05)
    done: list[float] = []

    def other_process_call() -> None:
        other = SpendStore(routing_engine)
        other.reserve("b", 0.02)
        done.append(other.spend("b"))

    t = threading.Thread(target=other_process_call)
    t.start()
    t.join(timeout=10)
    assert done == [pytest.approx(0.10)]
    store.settle(first, 0.03)
    assert store.spend("b") == pytest.approx(0.05)


async def test_racers_on_the_cached_path_and_the_locked_path_never_pass_the_cap(
    routing_engine: Engine,
) -> None:
    # On PostgreSQL a warm cache makes the reservation one statement after the key's lock;
    # racing it against cold stores (the locked read) and other threads must still grant
    # exactly what fits: 14 x 0.07 = 0.98 of $1.00.
    _bind_plain(routing_engine, cadence="day")
    warm = SpendStore(routing_engine)
    other = SpendStore(routing_engine)  # another process's router, say
    for store in (warm, other):
        await store.release_async(await store.reserve_async("b", 0.01))  # rows cached
    cold = [SpendStore(routing_engine) for _ in range(5)]

    async def on_loop(store: SpendStore) -> bool:
        try:
            await store.reserve_async("b", 0.07)
            return True
        except BudgetExceeded:
            return False

    def in_thread() -> bool:
        try:
            SpendStore(routing_engine).reserve("b", 0.07)
            return True
        except BudgetExceeded:
            return False

    results = await asyncio.gather(
        *(on_loop(store) for _ in range(20) for store in (warm, other)),
        *(on_loop(store) for store in cold),
        *(asyncio.to_thread(in_thread) for _ in range(5)),
    )
    assert sum(results) == 14
    assert warm.spend("b") == pytest.approx(0.98)


async def test_a_lowered_cap_is_seen_by_the_very_next_reservation(routing_engine: Engine) -> None:
    _bind_plain(routing_engine, cap=1.0, cadence="day")
    store = SpendStore(routing_engine)
    await store.settle_async(await store.reserve_async("b", 0.2), 0.2)
    with routing_engine.begin() as conn:
        conn.execute(text("update routing_bindings set cap_usd = 0.3 where behavior = 'b'"))
    with pytest.raises(BudgetExceeded, match=r"cap \$0\.30"):
        await store.reserve_async("b", 0.2)
    await store.reserve_async("b", 0.1)  # what still fits under the new cap


async def test_an_answered_call_holds_its_estimate_until_its_settlement_lands(
    routing_engine: Engine,
) -> None:
    _bind_plain(routing_engine, cadence="day")
    store = SpendStore(routing_engine)
    reservation = await store.reserve_async("b", 0.3)
    store.settle_soon(reservation, 0.1)
    # PostgreSQL: the settlement is a task that has not run yet, so the estimate still counts
    # (as it would if the process died now); SQLite settles inline
    held = 0.1 if routing_engine.dialect.name == "sqlite" else 0.3
    assert store.spend("b") == pytest.approx(held)
    await store.drain()
    assert store.spend("b") == pytest.approx(0.1)
