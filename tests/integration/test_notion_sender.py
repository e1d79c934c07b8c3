"""The Notion sender with the real notion-client against the fake Notion: every state change
upserts the behavior's Promotion Ledger row (one request each), every gate failure adds a Gate
Failures row with its run link, and an uncertain create never duplicates a row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.models import T_OUTBOX
from cleanday.notion.client import sync_client
from cleanday.notion.sender import CHANNEL, NotionSender, notion_row_url, notion_sender
from cleanday.notion.setup import init
from cleanday.notion.store import NotionStore
from cleanday.outbox import OutboxDelivery
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import _shared_notion, notion_server
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

__all__ = ["_shared_notion", "notion_server"]


def settings_for(server: NotionServer, **extra: str) -> Settings:
    return Settings(**server.env(), CLEANDAY_TEMPORAL_UI_URL="http://ui.test", **extra)  # type: ignore[arg-type]


@pytest.fixture
def quick(notion_server: NotionServer) -> NotionServer:
    """The fake without its rate limit, and cleanday pacing fast: these tests are about rows
    (the pacing has its own tests and benchmark)."""
    notion_server.set_rate_limit(None)
    return notion_server


def _init(server: NotionServer, engine: Engine, settings: Settings) -> str:
    parent = server.add_page("Cleanday")
    client = sync_client(settings, None)
    try:
        init(client, NotionStore(engine), parent)
    finally:
        client.close()
    return parent


@pytest.fixture
def delivery(quick: NotionServer, engine: Engine) -> Iterator[OutboxDelivery]:
    settings = settings_for(quick, CLEANDAY_NOTION_RATE="200")
    _init(quick, engine, settings)
    d = OutboxDelivery(engine, {CHANNEL: notion_sender(settings, engine)})
    yield d
    d.close()


def _ledger(engine: Engine, tmp_path: Path) -> LedgerService:
    svc = LedgerService(engine, Policy(timezone="UTC"), FakeClock(at("2026-11-09", 9)))
    svc.register(write_work_order(tmp_path, "tagger"))
    return svc


def _queued(engine: Engine) -> list[tuple[str, str | None]]:
    o = T_OUTBOX.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.kind, o.last_error)
            .where(o.channel == CHANNEL, o.delivered_at.is_(None))
            .order_by(o.id)
        ).all()
    return [(r.kind, r.last_error) for r in rows]


def test_each_state_change_upserts_the_ledger_row_with_one_request(
    quick: NotionServer, engine: Engine, delivery: OutboxDelivery, tmp_path: Path
) -> None:
    svc = _ledger(engine, tmp_path)
    quick.clear_requests()
    delivered = delivery.drain_now()
    assert [(d.row.kind, d.note) for d in delivered] == [("ledger_row", "created")]
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="policy"))
    delivered = delivery.drain_now()
    assert sorted(d.row.kind for d in delivered) == ["gate_failure_row", "ledger_row"]
    writes = [r for r in quick.requests() if r.path.startswith("/v1/pages")]
    assert [r.method for r in writes] == ["POST", "POST", "PATCH"] or sorted(
        r.method for r in writes
    ) == ["PATCH", "POST", "POST"]
    assert len(quick.requests()) == 3  # one request per row, nothing else
    (row,) = quick.rows("Promotion Ledger")
    assert row["Name"] == "tagger" and row["Behavior ID"] == "tagger"
    assert row["Tier"] == "A" and row["Status"] == "active"
    assert row["Last failure reason"] == "policy: policy said no"
    assert row["Last gate failure"] == "2026-11-09"
    assert row["Cap"] == 5.0
    assert notion_row_url(engine, "tagger") == (
        "https://www.notion.so/" + row["_id"].replace("-", "")
    )
    (failure,) = quick.rows("Gate Failures")
    assert failure["Behavior"] == "tagger" and failure["Gate"] == "policy"
    assert failure["Reason"] == "policy said no"
    assert failure["Run"] == "http://ui.test/namespaces/default/workflows/wf-r1"
    assert _queued(engine) == []


def test_redelivery_changes_nothing_and_writes_no_second_row(
    quick: NotionServer, engine: Engine, delivery: OutboxDelivery, tmp_path: Path
) -> None:
    svc = _ledger(engine, tmp_path)
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="policy"))
    delivery.drain_now()
    with engine.begin() as conn:  # as if the drainer died before marking them delivered
        conn.execute(sa.update(T_OUTBOX).values(delivered_at=None))
    delivery.drain_now()
    assert len(quick.rows("Promotion Ledger")) == 1
    assert len(quick.rows("Gate Failures")) == 1
    assert _queued(engine) == []


@pytest.mark.parametrize("fault", ["drop_after_write", "slow"])
def test_after_an_uncertain_create_the_row_is_looked_up_by_key_not_created_again(
    quick: NotionServer, engine: Engine, tmp_path: Path, fault: str
) -> None:
    settings = settings_for(
        quick, CLEANDAY_NOTION_RATE="200", CLEANDAY_NOTION_TIMEOUT_SECONDS="0.5"
    )
    _init(quick, engine, settings)
    clock = FakeClock(datetime.now(UTC))
    delivery = OutboxDelivery(engine, {CHANNEL: notion_sender(settings, engine)}, clock=clock)
    try:
        _ledger(engine, tmp_path)
        quick.inject(fault, "POST /v1/pages", delay=2.0)  # created, but no answer in time
        first = delivery.drain_now()
        assert [d.ok for d in first] == [False]
        assert _queued(engine)[0][1] is not None  # the error is kept for the operator
        quick.release_held()
        assert delivery.drain_now() == []  # the row backs off before it is tried again
        clock.advance(seconds=delivery.backoff.base_s)
        second = delivery.drain_now()
        assert [(d.row.kind, d.note) for d in second] == [("ledger_row", "updated")]
        assert len(quick.rows("Promotion Ledger")) == 1
        assert quick.requests("POST /v1/data_sources/*/query")
    finally:
        delivery.close()


def test_before_notion_init_the_rows_wait_and_say_what_to_run(
    quick: NotionServer, engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(quick, CLEANDAY_NOTION_RATE="200")
    delivery = OutboxDelivery(engine, {CHANNEL: notion_sender(settings, engine)})
    try:
        _ledger(engine, tmp_path)
        assert [d.ok for d in delivery.drain_now()] == [False]
        ((kind, error),) = _queued(engine)
        assert kind == "ledger_row" and error is not None
        assert "cleanday notion init --parent PAGE_ID" in error
        assert not quick.requests()
    finally:
        delivery.close()


def test_a_ledger_row_deleted_in_notion_is_written_again(
    quick: NotionServer, engine: Engine, delivery: OutboxDelivery, tmp_path: Path
) -> None:
    quick.invalid_allowed = True  # the update of the trashed page is refused, as Notion does
    svc = _ledger(engine, tmp_path)
    delivery.drain_now()
    (row,) = quick.rows("Promotion Ledger")
    sender = delivery.senders[CHANNEL]
    assert isinstance(sender, NotionSender)
    sync = sync_client(settings_for(quick), None)
    sync.pages.update(page_id=row["_id"], in_trash=True)
    sync.close()
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="policy"))
    delivery.drain_now()
    (again,) = quick.rows("Promotion Ledger")
    assert again["_id"] != row["_id"] and again["Last gate failure"] == "2026-11-09"
