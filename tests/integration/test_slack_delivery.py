"""The Slack sender (slack-sdk) against the fake Slack, on both back ends: a gate failure's
alert in Block Kit with its outbox ID in metadata and its (channel, ts) kept, paced channels,
429 waited out, and no duplicate after a send whose answer was lost."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday import outbox_admin
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.models import T_OUTBOX
from cleanday.outbox import OutboxDelivery
from cleanday.slack_messages import Composer
from cleanday.slack_sender import METADATA_EVENT, SlackSender, parse_channels, route
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

__all__ = ["_shared_slack", "slack_server"]

UI = "http://temporal-ui.test:8233"


def _setup(
    engine: Engine, tmp_path: Path, server: SlackServer, **sender_kw: float
) -> tuple[LedgerService, OutboxDelivery, FakeClock]:
    clock = FakeClock(at("2026-11-09", 9))
    svc = LedgerService(engine, Policy(timezone="Europe/Berlin"), clock)
    for name in ("tagger", "digest"):
        svc.register(write_work_order(tmp_path, name))
    composer = Composer(
        tz=ZoneInfo("Europe/Berlin"),
        temporal_ui_url=UI,
        notion_row_url=lambda b: f"https://notion.test/{b}" if b == "tagger" else None,
    )
    kw = {"per_channel_s": 1.0, "timeout_s": 1.0, **sender_kw}
    sender = SlackSender(server.token, server.api_url, composer, **kw)
    delivery = OutboxDelivery(
        engine,
        {"slack": sender},
        clock=clock,
        routes={"slack": route("#alerts", {"digest": "#general"})},
        timeout_s=60,
    )
    return svc, delivery, clock


def _slack_rows(engine: Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(T_OUTBOX).where(T_OUTBOX.c.channel == "slack").order_by(T_OUTBOX.c.id)
            )
        )


def _waiting(engine: Engine) -> list[outbox_admin.Waiting]:
    return [w for w in outbox_admin.waiting(engine) if w.channel == "slack"]


async def test_a_gate_failure_alert_reaches_its_channel_once_with_its_outbox_id(
    engine: Engine, tmp_path: Path, slack_server: SlackServer
) -> None:
    svc, delivery, _ = _setup(engine, tmp_path, slack_server)
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="schema"))
    svc.report_run(report("digest", "r2", at("2026-11-09", 10), failed_gate="schema"))
    done = await delivery.drain()
    assert [d.ok for d in done] == [True, True]
    (alert,) = slack_server.messages("#alerts")
    (other,) = slack_server.messages("#general")
    rows = _slack_rows(engine)
    by_target = {r.target: r for r in rows}
    assert set(by_target) == {"#alerts", "#general"}
    tagger = by_target["#alerts"]
    assert alert["metadata"] == {
        "event_type": METADATA_EVENT,
        "event_payload": {
            "outbox_id": tagger.id,
            "dedupe_key": tagger.dedupe_key,
            "rows": [tagger.id],
        },
    }
    assert tagger.receipt == {"channel": slack_server.channel_id("alerts"), "ts": alert["ts"]}
    flat = str(alert["blocks"])
    for expected in ("Gate failure: tagger", "schema said no", "A (unchanged)", "`r1`",
                     f"{UI}/namespaces/default/workflows/wf-r1", "https://notion.test/tagger",
                     "2026-11-09 11:00 CET"):  # fmt: skip
        assert expected in flat, expected
    assert "notion.test" not in str(other["blocks"])  # no Notion row known for digest
    assert await delivery.drain() == []
    assert len(slack_server.requests("chat.postMessage")) == 2


async def test_a_lost_answer_is_found_in_the_history_and_not_posted_again(
    engine: Engine, tmp_path: Path, slack_server: SlackServer
) -> None:
    svc, delivery, clock = _setup(engine, tmp_path, slack_server)
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="schema"))
    await delivery.drain()  # the sender searched #alerts once: nothing there
    svc.report_run(report("tagger", "r2", at("2026-11-09", 10, 5), failed_gate="schema"))
    slack_server.inject("drop_after_write", "chat.postMessage")
    (failed,) = await delivery.drain()
    assert not failed.ok and "no answer from Slack" in (failed.error or "")
    assert len(slack_server.messages("#alerts")) == 2  # it did arrive
    clock.advance(minutes=1)
    (found,) = await delivery.drain()
    assert found.note == "already in Slack"
    assert len(slack_server.messages("#alerts")) == 2
    assert len(slack_server.requests("chat.postMessage")) == 2
    assert _slack_rows(engine)[-1].receipt["ts"] == slack_server.messages("#alerts")[-1]["ts"]


@pytest.mark.parametrize("fault", ["slow", "hang", "error"])
async def test_after_a_timeout_or_a_5xx_the_alert_is_there_exactly_once(
    engine: Engine, tmp_path: Path, slack_server: SlackServer, fault: str
) -> None:
    svc, delivery, clock = _setup(engine, tmp_path, slack_server)
    svc.report_run(report("tagger", "r1", at("2026-11-09", 10), failed_gate="schema"))
    slack_server.inject(fault, "chat.postMessage", delay=3.0, status=503)
    (failed,) = await delivery.drain()
    assert not failed.ok
    slack_server.release_held()
    (line,) = _waiting(engine)
    assert line.attempts == 1 and line.last_error
    clock.advance(minutes=1)
    (done,) = await delivery.drain()
    assert done.ok
    assert len(slack_server.messages("#alerts")) == 1
    assert _waiting(engine) == []


async def test_a_429_is_waited_out_by_the_retry_handler_and_channels_are_paced(
    engine: Engine, tmp_path: Path, slack_server: SlackServer
) -> None:
    svc, delivery, _ = _setup(engine, tmp_path, slack_server, per_channel_s=1.0)
    for i in range(5):
        svc.report_run(report("tagger", f"r{i}", at("2026-11-09", 10, i), failed_gate="schema"))
    fault = slack_server.inject("rate_limited", "chat.postMessage", retry_after=1)
    done = await delivery.drain()
    rows = _slack_rows(engine)
    assert len(rows) >= 5 and [d.ok for d in done] == [True] * len(rows) and fault.hits == 1
    posts = [r for r in slack_server.requests("chat.postMessage") if r.status == 200]
    assert [r.body["metadata"]["event_payload"]["outbox_id"] for r in posts] == [
        r.id for r in _slack_rows(engine)
    ]  # in order
    assert not [r for r in slack_server.requests() if r.status == 429 and r.fault is None]


def test_channels_per_behavior_are_read_from_the_setting() -> None:
    assert parse_channels("a=#x, b = #y") == {"a": "#x", "b": "#y"}
    with pytest.raises(Exception, match="not behavior=#channel"):
        parse_channels("a#x")


def test_without_a_token_slack_delivery_is_off_said_once_and_the_rows_wait(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture, slack_server: SlackServer
) -> None:
    from cleanday.config import Settings
    from cleanday.runtime import wakeups
    from cleanday.service.app import create_app

    svc = LedgerService(engine, Policy(timezone="UTC"), FakeClock(at("2026-11-09", 9)))
    off = Settings(CLEANDAY_DATA_DIR=tmp_path, SLACK_BOT_TOKEN="")  # type: ignore[call-arg]
    app = create_app(off, svc, scheduler=False)
    with caplog.at_level("WARNING", logger="cleanday.outbox"):
        delivery = wakeups.attach(app, off)
    said = [r.message for r in caplog.records if "Slack delivery is off" in r.message]
    assert len(said) == 1 and "keeps every Slack message" in said[0]
    assert "slack" not in delivery.senders
    delivery.close()

    on = Settings(CLEANDAY_DATA_DIR=tmp_path, **slack_server.env())  # type: ignore[arg-type]
    delivery = wakeups.attach(create_app(on, svc, scheduler=False), on)
    assert isinstance(delivery.senders["slack"], SlackSender) and delivery.lease is not None
    delivery.close()
