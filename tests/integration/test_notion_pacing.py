"""Notion's rate limit, shared by every instance through the ledger database: request slots
spaced by the rate whoever takes them, no 429 for a burst from two instances against the fake
Notion enforcing 3 requests/s, and past the client's own retries the row waits in the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.models import T_OUTBOX
from cleanday.notion.client import async_client, sync_client
from cleanday.notion.pacing import Pacing
from cleanday.notion.sender import CHANNEL, notion_sender
from cleanday.notion.setup import init
from cleanday.notion.store import NotionStore
from cleanday.outbox import OutboxDelivery
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import _shared_notion, notion_server
from tests.integration.ledger_fixtures import FakeClock, at, write_work_order

__all__ = ["_shared_notion", "notion_server"]


def test_slots_are_spaced_by_the_rate_whichever_instance_takes_them(engine: Engine) -> None:
    now = [1_000.0]
    one, two = (Pacing(engine, rate=4.0, clock=lambda: now[0]) for _ in range(2))
    waits = [p.take() for p in (one, two, one, two)]
    assert waits == [0.0, 0.25, 0.5, 0.75]
    now[0] += 10.0  # idle for a while: no credit saved up beyond the next slot
    assert [two.take(), one.take()] == [0.0, 0.25]


def test_a_burst_from_two_instances_gets_no_429_from_notion(
    notion_server: NotionServer, engine: Engine
) -> None:
    settings = Settings(**notion_server.env())  # type: ignore[arg-type]
    parent = notion_server.add_page("Cleanday")
    notion_server.clear_requests()

    async def instance(n: int) -> None:
        client = async_client(settings, Pacing(engine, rate=settings.notion_rate))
        for _ in range(n):
            await client.pages.retrieve(page_id=parent)
        await client.aclose()

    async def burst() -> None:
        await asyncio.gather(instance(9), instance(9))

    asyncio.run(burst())
    statuses = [r.status for r in notion_server.requests()]
    assert len(statuses) == 18
    assert 429 not in statuses


def test_past_the_clients_own_retries_a_rate_limited_row_waits_in_the_outbox(
    notion_server: NotionServer, engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(**notion_server.env(), CLEANDAY_NOTION_RATE="50")  # type: ignore[arg-type]
    notion_server.set_rate_limit(None)
    client = sync_client(settings, None)
    init(client, NotionStore(engine), notion_server.add_page("Cleanday"))
    client.close()
    clock = FakeClock(datetime.now(UTC))
    delivery = OutboxDelivery(engine, {CHANNEL: notion_sender(settings, engine)}, clock=clock)
    try:
        svc = LedgerService(engine, Policy(timezone="UTC"), FakeClock(at("2026-11-09", 9)))
        svc.register(write_work_order(tmp_path, "tagger"))
        fault = notion_server.inject("rate_limited", "POST /v1/pages", times=3, retry_after=1)
        (first,) = delivery.drain_now()
        assert not first.ok and "rate" in (first.error or "").lower()
        assert fault.hits == 3  # the first answer and the client's two retries
        clock.advance(seconds=delivery.backoff.base_s)  # past the row's back-off
        (second,) = delivery.drain_now()
        assert second.ok and len(notion_server.rows("Promotion Ledger")) == 1
        with engine.connect() as conn:
            attempts = conn.execute(
                sa.select(T_OUTBOX.c.attempts).where(T_OUTBOX.c.channel == CHANNEL)
            ).scalar_one()
        assert attempts == 2
    finally:
        delivery.close()
