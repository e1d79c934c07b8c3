"""Notion and Slack delivery latency on `/metrics` (both back ends): the real senders deliver to
the fake Notion and the fake Slack, and the histogram per channel counts each delivered row from
its outbox row's creation to its delivery, in the bucket of that many seconds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from cleanday import outbox
from cleanday.config import Settings
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.notion.sender import notion_sender
from cleanday.outbox import OutboxDelivery
from cleanday.service import create_app
from cleanday.slack_messages import Composer
from cleanday.slack_sender import SlackSender, route
from tests.fakes.notion import NotionServer
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_notion, _shared_slack, notion_server, slack_server
from tests.integration.ledger_fixtures import FakeClock, write_work_order
from tests.integration.test_notion_sender import _init, settings_for
from tests.integration.test_slack_outage import CHANNELS, alert

__all__ = ["_shared_notion", "_shared_slack", "notion_server", "slack_server"]

T0 = datetime(2026, 11, 9, 12, tzinfo=UTC)
METRIC = "cleanday_outbox_delivery_latency_seconds"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def delivery(
    engine: Engine, notion_server: NotionServer, slack_server: SlackServer, clock: FakeClock
) -> Iterator[OutboxDelivery]:
    notion_server.set_rate_limit(None)
    settings = settings_for(notion_server, CLEANDAY_NOTION_RATE="200")
    _init(notion_server, engine, settings)
    slack = SlackSender(
        slack_server.token, slack_server.api_url, Composer(ZoneInfo("UTC"), "http://ui.test"),
        timeout_s=5, clock=clock,
    )  # fmt: skip
    d = OutboxDelivery(
        engine,
        {"notion": notion_sender(settings, engine), "slack": slack},
        routes={"slack": route("#alerts", CHANNELS)},
        clock=clock,
    )
    yield d
    d.close()


def latency(client: TestClient) -> dict[str, dict[str, float]]:
    """Per channel: each bucket's count (by `le`), and `count` and `sum`."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(r.text):
        if family.name != METRIC:
            continue
        assert family.type == "histogram"
        for s in family.samples:
            line = out.setdefault(s.labels["channel"], {})
            line[s.labels.get("le", s.name.rsplit("_", 1)[1])] = s.value
    return out


async def test_delivery_latency_per_channel_from_the_rows_creation_to_its_delivery(
    engine: Engine,
    delivery: OutboxDelivery,
    clock: FakeClock,
    slack_server: SlackServer,
    tmp_path: Path,
) -> None:
    service = LedgerService(engine, Policy(timezone="UTC"), clock)
    app = create_app(Settings(CLEANDAY_TOKEN="ops-token", CLEANDAY_SCHEDULER=False), service)
    with TestClient(app) as client:
        nothing = latency(client)  # both channels are there from the start, empty
        assert nothing["notion"]["count"] == nothing["slack"]["count"] == 0
        assert nothing["slack"]["+Inf"] == 0 and nothing["notion"]["sum"] == 0

        service.register(write_work_order(tmp_path, "tagger"))  # queues its Notion row
        with engine.begin() as conn:
            outbox.write(conn, [alert(i, clock) for i in range(3)], clock())
        clock.advance(seconds=3)
        done = await delivery.drain()
        assert sorted(d.row.channel for d in done if d.ok) == ["notion", "slack", "slack", "slack"]

        with engine.begin() as conn:
            outbox.write(conn, [alert(3, clock)], clock())
        clock.advance(seconds=40)
        assert [d.row.channel for d in await delivery.drain() if d.ok] == ["slack"]

        seen = latency(client)
    assert len(slack_server.messages("#alerts")) + len(slack_server.messages("#general")) >= 2
    notion, slack = seen["notion"], seen["slack"]
    assert notion["count"] == 1 and notion["sum"] == pytest.approx(3.0, abs=0.01)
    assert notion["2.5"] == 0 and notion["5.0"] == 1 and notion["+Inf"] == 1
    assert slack["count"] == 4 and slack["sum"] == pytest.approx(3 * 3.0 + 40.0, abs=0.05)
    assert slack["2.5"] == 0 and slack["5.0"] == 3 and slack["30.0"] == 3
    assert slack["60.0"] == 4 and slack["+Inf"] == 4
