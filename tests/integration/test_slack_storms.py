"""Storms against the fake Slack (Alertmanager-like grouping per channel): a new group waits
group_wait, later alerts are added to its message each group_interval, past the threshold one
digest lists every alert, and a quarantine notice replaces its failures' alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import outbox
from cleanday.models import T_OUTBOX
from cleanday.outbox import Message, OutboxDelivery
from cleanday.slack_groups import Grouping
from cleanday.slack_messages import Composer
from cleanday.slack_sender import SlackSender, route
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server
from tests.integration.ledger_fixtures import FakeClock

__all__ = ["_shared_slack", "slack_server"]

T0 = datetime(2026, 11, 9, 12, tzinfo=UTC)
GROUPING = Grouping(
    group_wait=timedelta(seconds=10),
    group_interval=timedelta(seconds=30),
    close_after=timedelta(minutes=5),
    threshold=5,
)


def _alert(behavior: str, run: str, clock: FakeClock) -> Message:
    return Message(
        "slack",
        "gate_failure_alert",
        f"gate_alert:{behavior}:{run}",
        {
            "behavior": behavior,
            "at": clock().isoformat(),
            "run_id": run,
            "workflow_id": f"wf-{run}",
            "tier": "B",
            "gates": [{"name": "schema", "reason": f"{run} broke the schema"}],
        },
        behavior,
    )


def _quarantine(behavior: str, clock: FakeClock) -> Message:
    return Message(
        "slack",
        "quarantine_notice",
        f"quarantine:{behavior}",
        {"behavior": behavior, "at": clock().isoformat(), "reason": "3 gate failures at A",
         "last_failure": None},
        behavior,
    )  # fmt: skip


def _write(engine: Engine, clock: FakeClock, *messages: Message) -> None:
    with engine.begin() as conn:
        outbox.write(conn, list(messages), clock())


def _setup(engine: Engine, server: SlackServer) -> tuple[OutboxDelivery, FakeClock]:
    clock = FakeClock(T0)
    composer = Composer(tz=ZoneInfo("UTC"), temporal_ui_url="http://ui.test")
    sender = SlackSender(
        server.token, server.api_url, composer, timeout_s=2, grouping=GROUPING, clock=clock
    )
    delivery = OutboxDelivery(
        engine, {"slack": sender}, clock=clock, routes={"slack": route("#alerts")}
    )
    return delivery, clock


def _undelivered(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(T_OUTBOX)
                .where(T_OUTBOX.c.delivered_at.is_(None))
            ).scalar_one()
        )


async def test_a_burst_waits_group_wait_then_goes_as_one_message_and_grows_by_updates(
    engine: Engine, slack_server: SlackServer
) -> None:
    delivery, clock = _setup(engine, slack_server)
    _write(engine, clock, *(_alert("tagger", f"r{i}", clock) for i in range(3)))
    assert await delivery.drain() == []  # the group gathers
    assert slack_server.messages("#alerts") == []
    clock.advance(seconds=10)
    assert len(await delivery.drain()) == 3
    (message,) = slack_server.messages("#alerts")
    assert all(f"r{i} broke the schema" in str(message["blocks"]) for i in range(3))
    assert message["metadata"]["event_payload"]["rows"] == [1, 2, 3]

    clock.advance(seconds=5)
    _write(engine, clock, _alert("digest", "r9", clock))
    assert await delivery.drain() == []  # waits for the group's interval
    clock.advance(seconds=25)
    (added,) = await delivery.drain()
    assert added.note == "added to its group's message"
    (message,) = slack_server.messages("#alerts")
    assert message["edited"] is not None and "r9 broke the schema" in str(message["blocks"])
    with engine.connect() as conn:
        receipts = {r["ts"] for r in conn.execute(sa.select(T_OUTBOX.c.receipt)).scalars()}
    assert receipts == {message["ts"]} and _undelivered(engine) == 0


async def test_past_the_threshold_one_digest_lists_every_alert(
    engine: Engine, slack_server: SlackServer
) -> None:
    delivery, clock = _setup(engine, slack_server)
    _write(engine, clock, _alert("tagger", "first", clock))
    clock.advance(seconds=10)
    await delivery.drain()
    _write(engine, clock, *(_alert(f"b{i % 4}", f"storm{i}", clock) for i in range(40)))
    clock.advance(seconds=30)
    assert len(await delivery.drain()) == 40
    first, digest = slack_server.messages("#alerts")
    assert "storm" not in str(first["blocks"])
    assert all(f"storm{i} broke" in digest["text"] for i in range(40))
    assert "40 alerts" in str(digest["blocks"])
    assert _undelivered(engine) == 0
    assert not [r for r in slack_server.requests() if r.status == 429]


async def test_a_quarantine_notice_replaces_the_alerts_of_the_failures_behind_it(
    engine: Engine, slack_server: SlackServer
) -> None:
    delivery, clock = _setup(engine, slack_server)
    _write(
        engine, clock,
        _alert("tagger", "r1", clock), _alert("other", "o1", clock),
        _alert("tagger", "r2", clock), _quarantine("tagger", clock),
    )  # fmt: skip
    clock.advance(seconds=10)
    assert len(await delivery.drain()) == 4
    (message,) = slack_server.messages("#alerts")
    flat = str(message["blocks"])
    assert (
        "Quarantined: tagger" in flat and "Replaces 2 alert(s) of its failures: `r1`, `r2`" in flat
    )
    assert "r1 broke the schema" not in flat and "o1 broke the schema" in flat
