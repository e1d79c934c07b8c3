"""The outbox's delivery machinery on both back ends: order per target, back-off per target,
one drainer across instances (a lease taken over when its holder dies), and the operator's
retry and drop."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import outbox, outbox_admin
from cleanday.db import make_engine
from cleanday.errors import OutboxError
from cleanday.models import T_OUTBOX
from cleanday.outbox import Backoff, Message, OutboxDelivery, Pending, Sent
from cleanday.outbox_lease import Lease
from tests.integration.ledger_fixtures import FakeClock

NOW = datetime(2026, 11, 9, 12, tzinfo=UTC)


def _queue(engine: Engine, n: int, targets: tuple[str, ...] = ("a", "b")) -> None:
    with engine.begin() as conn:
        outbox.write(
            conn,
            [Message("chat", "m", f"m{i}", {"i": i, "to": targets[i % len(targets)]})
             for i in range(n)],
            NOW,
        )  # fmt: skip


def _route(row: Pending) -> str:
    return str(row.payload["to"])


def _rows(engine: Engine) -> dict[int, sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return {r.i: r for r in conn.execute(
            sa.select(T_OUTBOX, T_OUTBOX.c.payload["i"].as_integer().label("i"))
        )}  # fmt: skip


async def test_targets_keep_their_own_order_and_a_failing_one_backs_off_alone(
    engine: Engine,
) -> None:
    _queue(engine, 6)  # a: 0 2 4, b: 1 3 5
    sent: list[tuple[str, int]] = []
    down = {"b"}

    async def sender(row: Pending) -> Sent:
        if row.target in down:
            raise ConnectionError(f"{row.target} unreachable")
        sent.append((row.target, row.payload["i"]))
        return Sent("posted", {"where": row.target, "i": row.payload["i"]})

    clock = FakeClock(NOW)
    backoff = Backoff(base_s=2, max_s=5)
    delivery = OutboxDelivery(
        engine, {"chat": sender}, clock=clock, routes={"chat": _route}, backoff=backoff
    )
    first = await delivery.drain()
    assert sent == [("a", 0), ("a", 2), ("a", 4)]
    assert [d.row.payload["i"] for d in first if not d.ok] == [1]
    rows = _rows(engine)
    assert {i: rows[i].target for i in rows} == {0: "a", 1: "b", 2: "a", 3: "b", 4: "a", 5: "b"}
    assert rows[0].receipt == {"where": "a", "i": 0} and rows[0].delivered_at == NOW
    assert rows[1].attempts == 1 and "b unreachable" in rows[1].last_error
    assert rows[1].next_attempt_at == NOW + timedelta(seconds=2)
    assert rows[3].attempts == 0  # behind its head: not tried

    assert await delivery.drain() == []  # b backs off
    for waited in (2, 4, 5, 5):  # doubled each failure, capped at max_s
        clock.advance(seconds=waited)
        await delivery.drain()
        assert _rows(engine)[1].next_attempt_at == clock() + timedelta(
            seconds=min(2 * 2 ** (_rows(engine)[1].attempts - 1), 5)
        )
    assert _rows(engine)[1].attempts == 5

    down.clear()
    assert outbox_admin.retry(engine) == 1  # due now, whatever its back-off
    await delivery.drain()
    assert [i for t, i in sent if t == "b"] == [1, 3, 5]
    assert outbox_admin.waiting(engine) == []


async def test_a_row_routed_once_keeps_its_target(engine: Engine) -> None:
    _queue(engine, 2)
    targets = iter(["x", "y", "z", "w"])

    async def failing(row: Pending) -> str:
        raise TimeoutError("no answer")

    delivery = OutboxDelivery(
        engine, {"chat": failing}, routes={"chat": lambda row: next(targets)}, clock=lambda: NOW
    )
    await delivery.drain()
    await delivery.drain()
    assert {r.target for r in _rows(engine).values()} == {"x", "y"}


def test_the_operator_sees_what_waits_retries_and_drops_with_a_reason(engine: Engine) -> None:
    _queue(engine, 3, targets=("a",))

    async def failing(row: Pending) -> str:
        raise ConnectionError("Slack says 503")

    delivery = OutboxDelivery(engine, {"chat": failing}, routes={"chat": _route}, clock=lambda: NOW)
    delivery.drain_now()
    delivery.close()
    (line,) = outbox_admin.waiting(engine)
    assert (line.channel, line.target, line.rows, line.attempts) == ("chat", "a", 3, 1)
    assert line.since == NOW and "503" in (line.last_error or "")
    assert line.next_attempt_at is not None and line.as_json()["since"] == NOW.isoformat()
    head = line.head_id
    with pytest.raises(OutboxError, match="needs a reason"):
        outbox_admin.drop(engine, head, reason=" ", by="op", now=NOW)
    outbox_admin.drop(engine, head, reason="channel archived", by="op", now=NOW)
    with pytest.raises(OutboxError, match="was dropped"):
        outbox_admin.drop(engine, head, reason="again", by="op", now=NOW)
    with pytest.raises(OutboxError, match="no outbox row 999"):
        outbox_admin.retry(engine, 999)
    (line,) = outbox_admin.waiting(engine)
    assert line.rows == 2 and line.head_id != head and line.attempts == 0
    row = _rows(engine)[0]
    assert (row.dropped_by, row.drop_reason, row.delivered_at) == ("op", "channel archived", None)


def test_one_lease_holder_at_a_time_and_a_dead_holders_lease_is_taken_over(
    engine: Engine,
) -> None:
    clock = FakeClock(NOW)
    first = Lease(engine, ttl_s=30, holder="first", clock=clock)
    second = Lease(engine, ttl_s=30, holder="second", clock=clock)
    assert first.held() and not second.held()
    clock.advance(seconds=20)
    assert first.held()  # renewed: good until NOW + 50 s
    clock.advance(seconds=25)
    assert not second.held()
    # first dies here: it renews no more
    clock.advance(seconds=6)
    assert second.held() and second.current_holder()[0] == "second"
    assert not first.held()  # woke up: it finds its lease taken and stops
    second.release()
    assert first.held()


async def test_only_the_lease_holder_drains_and_takes_over_when_the_holder_dies(
    engine: Engine,
) -> None:
    _queue(engine, 4)
    clock = FakeClock(NOW)
    got: list[tuple[str, int]] = []

    def sender_for(name: str) -> outbox.Sender:
        async def send(row: Pending) -> str:
            got.append((name, row.payload["i"]))
            return "sent"

        return send

    def instance(name: str) -> OutboxDelivery:
        lease = Lease(engine, ttl_s=30, holder=name, clock=clock)
        return OutboxDelivery(
            engine, {"chat": sender_for(name)}, wait_for=(), lease=lease, clock=clock,
            routes={"chat": _route},
        )  # fmt: skip

    one, two = instance("one"), instance("two")
    assert one.lease is not None and one.lease.held()  # one takes the lease, then dies
    assert await two.drain() == [] and got == []
    clock.advance(seconds=31)
    assert len(await two.drain()) == 4
    assert sorted(i for _, i in got) == [0, 1, 2, 3] and {n for n, _ in got} == {"two"}


def test_two_drainers_racing_deliver_every_row_exactly_once(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(2)]
    _queue(engines[0], 120, targets=("a", "b", "c"))
    got: dict[int, list[str]] = defaultdict(list)
    lock = threading.Lock()

    def instance(n: int) -> OutboxDelivery:
        async def send(row: Pending) -> str:
            await asyncio.sleep(0)
            with lock:
                got[row.payload["i"]].append(f"instance{n}")
            return "sent"

        return OutboxDelivery(
            engines[n], {"chat": send}, wait_for=(), routes={"chat": _route},
            lease=Lease(engines[n], ttl_s=30, holder=f"instance{n}"), timeout_s=60,
        )  # fmt: skip

    deliveries = [instance(0), instance(1)]
    start = threading.Barrier(2)

    def drain(d: OutboxDelivery) -> None:
        start.wait()
        for _ in range(5):
            d.drain_now()

    threads = [threading.Thread(target=drain, args=(d,)) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for d in deliveries:
        d.close()
    try:
        assert sorted(got) == list(range(120))
        assert {i: len(v) for i, v in got.items() if len(v) != 1} == {}
        assert len({v[0] for v in got.values()}) == 1  # one drainer did it all
        assert outbox_admin.waiting(engines[0]) == []
    finally:
        for e in engines:
            e.dispose()
