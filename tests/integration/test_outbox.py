"""The unit of work's reactions and the outbox on both back ends: what a commit queues commits
with it, a failing reaction rolls the cause back, delivery keeps order and records failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import outbox
from cleanday.domain import Policy, Tier
from cleanday.ledger import LedgerService
from cleanday.models import T_ENTRIES, T_OUTBOX, T_RUNS
from cleanday.notices import GateFailed, RunReported
from cleanday.outbox import Message, OutboxDelivery, Pending
from cleanday.reactions import HANDLERS, Context, Reactions
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

NOW = datetime(2026, 11, 9, 12, tzinfo=UTC)


def _count(engine: Engine, table: sa.Table, *where: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        )


def _ledger(engine: Engine, tmp_path: Path, reactions: Reactions | None = None) -> LedgerService:
    svc = LedgerService(engine, Policy(timezone="UTC"), FakeClock(at("2026-11-09", 9)), reactions)
    svc.register(write_work_order(tmp_path, "tagger"))
    return svc


def test_a_new_reaction_is_one_line_in_the_table_and_commits_with_its_cause(
    engine: Engine, tmp_path: Path
) -> None:
    def run_log(n: RunReported, ctx: Context) -> Iterator[Message]:
        yield Message("log", "run_line", f"run_line:{n.run_id}", {"outcome": n.outcome}, n.behavior)

    svc = _ledger(engine, tmp_path, Reactions({**HANDLERS, RunReported: [run_log]}))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10)))
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10)))  # already recorded: no notice
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_OUTBOX.c.channel, T_OUTBOX.c.payload).where(T_OUTBOX.c.channel == "log")
        ).all()
    assert [tuple(r) for r in rows] == [("log", {"outcome": "succeeded"})]


def test_a_failing_reaction_rolls_back_the_report_that_caused_it(
    engine: Engine, tmp_path: Path
) -> None:
    def broken(n: GateFailed, ctx: Context) -> Iterator[Message]:
        raise RuntimeError("reaction failed")

    svc = _ledger(engine, tmp_path, Reactions({**HANDLERS, GateFailed: [broken]}))
    entries, queued = _count(engine, T_ENTRIES), _count(engine, T_OUTBOX)
    with pytest.raises(RuntimeError, match="reaction failed"):
        svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="schema"))
    assert _count(engine, T_RUNS) == 0
    assert _count(engine, T_ENTRIES) == entries
    assert _count(engine, T_OUTBOX) == queued
    svc.report_run(report("tagger", "r2", at("2026-11-09", 10)))  # no gate failed: no reaction
    assert _count(engine, T_RUNS) == 1


def test_subscribers_hear_of_a_commits_outbox_rows_after_it_and_never_of_a_rollback(
    engine: Engine, tmp_path: Path
) -> None:
    svc = _ledger(engine, tmp_path)
    heard: list[list[str]] = []

    def subscriber(written: Any) -> None:
        with engine.connect() as conn:  # committed already: visible from another connection
            keys = set(conn.execute(sa.select(T_OUTBOX.c.dedupe_key)).scalars())
        assert {m.dedupe_key for m in written} <= keys
        heard.append([m.kind for m in written if m.kind != "ledger_row"])

    svc.subscribe(subscriber)
    svc.report_run(report("tagger", "clean", at("2026-11-09", 10)))  # nothing queued
    svc.override("tagger", "trusted", tier=Tier.C)
    svc.report_run(report("tagger", "r1", at("2026-11-09", 11), failed_gate="schema"))
    with pytest.raises(Exception, match="no behavior named"):
        svc.report_runs([report("tagger", "r2", at("2026-11-09", 12), failed_gate="schema"),
                         report("other", "r1", at("2026-11-09", 12))])  # fmt: skip
    assert [h for h in heard if h] == [["promotion_notice"], ["gate_failure_row", "demotion_alert"]]


def test_a_sign_off_queues_one_wake_up_per_run_in_its_transaction(
    engine: Engine, tmp_path: Path
) -> None:
    svc = _ledger(engine, tmp_path)
    for run in ("r1", "r2"):
        svc.report_run(report("tagger", run, at("2026-11-09", 10), outcome="proposed"))
    svc.approve("tagger")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_OUTBOX.c.kind, T_OUTBOX.c.payload)
            .where(T_OUTBOX.c.channel == "temporal", T_OUTBOX.c.kind == "wake_run")
            .order_by(T_OUTBOX.c.id)
        ).all()
    assert [(k, p["workflow_id"], p["action"]) for k, p in rows] == [
        ("wake_run", "r1", "approved"),
        ("wake_run", "r2", "approved"),
    ]


async def test_delivery_keeps_each_channels_order_and_stops_at_a_failure_until_the_next_drain(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        outbox.write(conn, [Message("test", "m", f"m{i}", {"i": i}) for i in range(3)], NOW)
        outbox.write(conn, [Message("test", "m", "m1", {"i": 99})], NOW)  # a repeat: not queued
    sent: list[int] = []
    fail_once = {1}

    async def sender(row: Pending) -> str:
        i = row.payload["i"]
        if i in fail_once:
            fail_once.discard(i)
            raise ConnectionError("channel down")
        sent.append(i)
        return "sent"

    clock = FakeClock(NOW)
    delivery = OutboxDelivery(engine, {"test": sender}, clock=clock)
    first = await delivery.drain()
    assert [(d.row.payload["i"], d.ok) for d in first] == [(0, True), (1, False)]
    assert "channel down" in (first[1].error or "")
    assert await delivery.drain() == []  # the channel's target backs off
    clock.advance(seconds=delivery.backoff.base_s)
    second = await delivery.drain()
    assert [(d.row.payload["i"], d.note) for d in second] == [(1, "sent"), (2, "sent")]
    assert sent == [0, 1, 2] and await delivery.drain() == []
    with engine.connect() as conn:
        attempts = dict(conn.execute(sa.select(T_OUTBOX.c.dedupe_key, T_OUTBOX.c.attempts)).all())
    assert attempts == {"m0": 1, "m1": 2, "m2": 1}


def test_after_a_commit_the_caller_waits_only_for_the_channels_it_must(engine: Engine) -> None:
    release = threading.Event()

    async def slow(row: Pending) -> str:
        await asyncio.to_thread(release.wait, 10)
        return "published"

    async def quick(row: Pending) -> str:
        return "told"

    delivery = OutboxDelivery(engine, {"slow": slow, "quick": quick}, wait_for={"quick"})
    with engine.begin() as conn:
        written = outbox.write(
            conn, [Message("slow", "m", "s1", {}), Message("quick", "m", "q1", {})], NOW
        )
    started = time.monotonic()
    done = delivery.after_commit(written)
    assert time.monotonic() - started < 5  # not held by the slow channel
    assert [(d.row.dedupe_key, d.note) for d in done] == [("q1", "told")]
    release.set()
    for _ in range(100):
        if _count(engine, T_OUTBOX, T_OUTBOX.c.delivered_at.is_(None)) == 0:
            break
        time.sleep(0.05)
    assert _count(engine, T_OUTBOX, T_OUTBOX.c.delivered_at.is_(None)) == 0
    delivery.close()
