"""Notion and Slack both away for a simulated hour (Notion answering 503 to everything, Slack
refusing connections) while the ledger reports a burst of 200 gate failures and pauses and
resumes behaviors, then back but losing the answers to their first writes (both back ends):
afterwards every Notion row and every Slack alert is there exactly once, in order per target,
with the default back-off and grouping settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import outbox_admin
from cleanday.config import Settings
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.models import T_OUTBOX
from cleanday.notion.client import sync_client
from cleanday.notion.rows import notion_row
from cleanday.notion.sender import notion_sender
from cleanday.notion.setup import init
from cleanday.notion.store import NotionStore
from cleanday.outbox import Backoff, OutboxDelivery
from cleanday.slack_messages import Composer
from cleanday.slack_sender import SlackSender, grouping_of, route
from tests.fakes.notion import NotionServer
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_notion, _shared_slack, notion_server, slack_server
from tests.integration.ledger_fixtures import FakeClock, report, write_work_order

__all__ = ["_shared_notion", "_shared_slack", "notion_server", "slack_server"]

T0 = datetime(2026, 11, 9, 12, tzinfo=UTC)
UI = "http://temporal-ui.test:8233"
BEHAVIORS = [f"b{i:02d}" for i in range(20)]
# half the behaviors alert in #alerts, half in #general
CHANNELS = {b: ("#alerts" if i % 2 else "#general") for i, b in enumerate(BEHAVIORS)}


def settings_for(notion: NotionServer) -> Settings:
    # cleanday's pacing and the fake's limit are loosened: this test is about order and
    # once-only delivery (the rate is the benchmark's); the back-off and grouping are defaults
    return Settings(**notion.env(), CLEANDAY_TEMPORAL_UI_URL=UI, CLEANDAY_NOTION_RATE="500")  # type: ignore[arg-type]


def init_notion(notion: NotionServer, engine: Engine, settings: Settings) -> None:
    client = sync_client(settings, None)
    try:
        init(client, NotionStore(engine), notion.add_page("Cleanday"))
    finally:
        client.close()


def burst(svc: LedgerService, clock: FakeClock, n: int, offset: int = 0) -> None:
    """`n` gate failures, round-robin over the behaviors, and a pause and resume every tenth:
    each its own transaction, a second apart."""
    for i in range(offset, offset + n):
        name = BEHAVIORS[i % len(BEHAVIORS)]
        svc.report_run(report(name, f"run{i:03d}", clock(), failed_gate="schema"))
        clock.advance(seconds=1)
        if i % 10 == 9:
            svc.pause(name, by="outage-test")
            clock.advance(seconds=1)
            svc.resume(name, by="outage-test")
            clock.advance(seconds=1)


def notion_delivered_once_in_order(
    engine: Engine, notion: NotionServer, failures: int = 200, *, redelivered: bool = False
) -> None:
    """Every Notion outbox row was written by exactly one successful request, in ID order (the
    channel's one target), and the rows in Notion are those the ledger says. `redelivered`:
    a write whose answer was lost (a killed process) may have been sent again right after, as
    the same upsert."""
    o = T_OUTBOX.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.kind, o.payload).where(o.channel == "notion").order_by(o.id)
        ).all()
    expected = [notion_row(r.kind, r.payload, UI, "default").properties for r in rows]
    writes = [
        r.body["properties"]
        for r in notion.requests()
        if (r.status == 200 or r.fault == "slow")  # a slow answer is recorded once sent
        and (r.key == "POST /v1/pages" or r.key.startswith("PATCH /v1/pages/"))
    ]
    if redelivered:
        writes = [w for i, w in enumerate(writes) if i == 0 or w != writes[i - 1]]
    assert len(writes) == len(expected)
    assert writes == expected
    gate_rows = [r.payload for r in rows if r.kind == "gate_failure_row"]
    found = notion.rows("Gate Failures")
    assert len(gate_rows) == failures
    # oldest first: created in the order the ledger queued them
    assert [f["Failure ID"] for f in found] == [
        f"{p['behavior']}:{p['run_id']}:{p['gate']}" for p in gate_rows
    ]
    found_ledger = notion.rows("Promotion Ledger")
    ledger = {r["Behavior ID"]: r for r in found_ledger}
    assert sorted(ledger) == BEHAVIORS and len(found_ledger) == len(BEHAVIORS)
    last = {r.payload["behavior"]: r.payload for r in rows if r.kind == "ledger_row"}
    for name, p in last.items():
        assert ledger[name]["Status"] == p["status"] == "active"
        assert ledger[name]["Last failure reason"] == f"schema: {p['last_failure_reason']}"


def slack_delivered_once_in_order(engine: Engine, slack: SlackServer, count: int = 200) -> None:
    """Every alert row is listed by exactly one message of its channel, in ID order there, and
    its run is named once in that channel's messages."""
    o = T_OUTBOX.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(o.id, o.target, o.payload)
            .where(o.kind == "gate_failure_alert")
            .order_by(o.id)
        ).all()
    assert len(rows) == count
    alerts = {r.id for r in rows}
    for channel in ("#alerts", "#general"):
        messages = slack.messages(channel)
        listed = [i for m in messages for i in m["metadata"]["event_payload"]["rows"]]
        assert [i for i in listed if i in alerts] == [r.id for r in rows if r.target == channel]
        texts = " ".join(m["text"] for m in messages)
        for r in rows:
            if r.target == channel:
                assert texts.count(f"`{r.payload['run_id']}`") == 1


@pytest.fixture
def services(
    engine: Engine, tmp_path: Path, notion_server: NotionServer, slack_server: SlackServer
) -> Iterator[tuple[LedgerService, OutboxDelivery, FakeClock]]:
    notion_server.set_rate_limit(None)
    settings = settings_for(notion_server)
    init_notion(notion_server, engine, settings)
    clock = FakeClock(T0)
    svc = LedgerService(engine, Policy(timezone="UTC", quarantine_failures=10_000), clock)
    for name in BEHAVIORS:
        svc.register(write_work_order(tmp_path, name))
    slack = SlackSender(
        slack_server.token, slack_server.api_url, Composer(ZoneInfo("UTC"), UI),
        timeout_s=2, grouping=grouping_of(settings), clock=clock,
    )  # fmt: skip
    delivery = OutboxDelivery(
        engine, {"notion": notion_sender(settings, engine), "slack": slack}, clock=clock,
        routes={"slack": route("#alerts", CHANNELS)},
        backoff=Backoff(settings.outbox_backoff_s, settings.outbox_backoff_max_s),
    )  # fmt: skip
    yield svc, delivery, clock
    delivery.close()


def _waiting(engine: Engine) -> dict[str, Any]:
    return {w.target: w for w in outbox_admin.waiting(engine) if w.channel in ("notion", "slack")}


async def test_an_hour_without_notion_and_slack_loses_nothing_and_doubles_nothing(
    engine: Engine,
    notion_server: NotionServer,
    slack_server: SlackServer,
    services: tuple[LedgerService, OutboxDelivery, FakeClock],
) -> None:
    svc, delivery, clock = services
    notion_server.clear_requests()
    notion_server.inject("error", None, times=None, status=503)
    slack_server.go_down()
    for part in range(10):  # 200 gate failures, and state changes, over the hour both are away
        burst(svc, clock, 20, offset=part * 20)
        for _ in range(6):
            await delivery.drain()
            clock.advance(seconds=60)
    assert slack_server.requests() == []
    assert not [r for r in notion_server.requests() if r.status == 200]
    waiting = _waiting(engine)
    assert set(waiting) == {"notion", "#alerts", "#general"}
    assert waiting["notion"].attempts > 3 and "unavailable" in (waiting["notion"].last_error or "")
    assert waiting["#alerts"].rows == waiting["#general"].rows == 100

    notion_server.clear_faults()
    slack_server.come_up()
    # and they come back flaky: writes that take effect while their answers are lost
    notion_server.inject("drop_after_write", "POST /v1/pages", times=3)
    slack_server.inject("drop_after_write", "chat.postMessage", times=1)
    for _ in range(30):
        await delivery.drain()
        if not _waiting(engine):
            break
        clock.advance(seconds=60)
    assert _waiting(engine) == {}
    assert len([r for r in notion_server.requests() if r.fault == "drop_after_write"]) == 3
    assert notion_server.requests("POST /v1/data_sources/*/query")  # looked up, not made again
    assert slack_server.requests("conversations.history")  # searched, not posted again
    notion_delivered_once_in_order(engine, notion_server, redelivered=True)
    slack_delivered_once_in_order(engine, slack_server)
    assert not [r for r in slack_server.requests() if r.status == 429]
