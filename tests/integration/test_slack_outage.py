"""Slack unreachable for a simulated hour during a burst of 200 gate failures (both back ends):
afterwards every alert is in Slack exactly once, in order per channel, with the default
grouping and back-off settings."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import outbox, outbox_admin
from cleanday.config import Settings
from cleanday.models import T_OUTBOX
from cleanday.outbox import Backoff, Message, OutboxDelivery
from cleanday.slack_messages import Composer
from cleanday.slack_sender import SlackSender, grouping_of, route
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server
from tests.integration.ledger_fixtures import FakeClock

__all__ = ["_shared_slack", "slack_server"]

T0 = datetime(2026, 11, 9, 12, tzinfo=UTC)
CHANNELS = {"b0": "#alerts", "b1": "#alerts", "b2": "#general", "b3": "#general"}


def alert(i: int, clock: FakeClock) -> Message:
    behavior = f"b{i % 4}"
    return Message(
        "slack", "gate_failure_alert", f"gate_alert:{behavior}:run{i:03d}",
        {"behavior": behavior, "at": clock().isoformat(), "run_id": f"run{i:03d}",
         "workflow_id": f"wf-run{i:03d}", "tier": "B",
         "gates": [{"name": "schema", "reason": f"run{i:03d} failed"}]},
        behavior,
    )  # fmt: skip


def delivered_once_in_order(engine: Engine, server: SlackServer) -> None:
    """Every alert row is listed by exactly one message of its channel, in ID order there."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_OUTBOX.c.id, T_OUTBOX.c.target, T_OUTBOX.c.payload).where(
                T_OUTBOX.c.kind == "gate_failure_alert"
            )
        ).all()
    alerts = {r.id for r in rows}
    for channel in ("#alerts", "#general"):
        expected = [r.id for r in sorted(rows, key=lambda r: r.id) if r.target == channel]
        listed: list[int] = []
        for m in server.messages(channel):
            listed.extend(i for i in m["metadata"]["event_payload"]["rows"] if i in alerts)
        assert listed == expected, channel
        texts = " ".join(m["text"] for m in server.messages(channel))
        for r in rows:
            if r.target == channel:
                assert texts.count(f"{r.payload['run_id']} failed") == 1


async def test_an_hour_without_slack_during_a_burst_loses_nothing_and_doubles_nothing(
    engine: Engine, slack_server: SlackServer
) -> None:
    settings = Settings()
    clock = FakeClock(T0)
    sender = SlackSender(
        slack_server.token, slack_server.api_url,
        Composer(ZoneInfo("UTC"), "http://ui.test"),
        timeout_s=2, grouping=grouping_of(settings), clock=clock,
    )  # fmt: skip
    delivery = OutboxDelivery(
        engine, {"slack": sender}, clock=clock,
        routes={"slack": route("#alerts", CHANNELS)},
        backoff=Backoff(settings.outbox_backoff_s, settings.outbox_backoff_max_s),
    )  # fmt: skip
    slack_server.go_down()
    for burst in range(10):  # 200 alerts over the hour Slack is away
        with engine.begin() as conn:
            outbox.write(conn, [alert(burst * 20 + i, clock) for i in range(20)], clock())
        for _ in range(6):
            await delivery.drain()
            clock.advance(seconds=60)
    assert slack_server.requests() == []  # nothing got through
    (line_a, line_g) = sorted(outbox_admin.waiting(engine), key=lambda w: w.target)
    assert line_a.rows == line_g.rows == 100 and line_a.attempts > 3 and line_a.last_error
    slack_server.come_up()
    for _ in range(30):
        await delivery.drain()
        if not outbox_admin.waiting(engine):
            break
        clock.advance(seconds=60)
    assert outbox_admin.waiting(engine) == []
    delivered_once_in_order(engine, slack_server)
    assert not [r for r in slack_server.requests() if r.status == 429]
