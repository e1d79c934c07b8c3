"""The ledger service killed with SIGKILL in the middle of draining a burst to Notion and Slack (a
subprocess `cleanday serve`, both back ends): the dead instance's Notion create took effect but
its answer never came; the next instance takes the lease over, finds that row by its key
instead of creating it again, and afterwards every Notion row and every Slack alert is there
exactly once, in order per target."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from cleanday import outbox_admin
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from tests.e2e.test_slack_sigkill import _serve, _until
from tests.fakes.notion import NotionServer
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_notion, _shared_slack, notion_server, slack_server
from tests.integration.ledger_fixtures import FakeClock, write_work_order
from tests.integration.test_surface_outage import (
    BEHAVIORS,
    CHANNELS,
    UI,
    burst,
    init_notion,
    notion_delivered_once_in_order,
    settings_for,
    slack_delivered_once_in_order,
)

__all__ = ["_shared_notion", "_shared_slack", "notion_server", "slack_server"]

FAILURES = 40


def _waiting(engine: Engine) -> int:
    return sum(w.rows for w in outbox_admin.waiting(engine) if w.channel in ("notion", "slack"))


def test_a_service_killed_mid_drain_leaves_every_notion_row_and_alert_there_once(
    engine: Engine,
    database_url: str,
    notion_server: NotionServer,
    slack_server: SlackServer,
    tmp_path: Path,
) -> None:
    notion_server.set_rate_limit(None)
    init_notion(notion_server, engine, settings_for(notion_server))
    clock = FakeClock(datetime.now(UTC))
    svc = LedgerService(engine, Policy(timezone="UTC"), clock)
    for name in BEHAVIORS:
        svc.register(write_work_order(tmp_path, name))
    burst(svc, clock, FAILURES)  # queued by this process, which delivers nothing
    notion_server.clear_requests()
    # the first row's create takes effect at once and its answer never comes in time
    notion_server.inject("slow", "POST /v1/pages", delay=60)
    env = {
        **notion_server.env(),
        **slack_server.env(),
        "DATABASE_URL": database_url,
        "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        "CLEANDAY_TOKEN": "operator-token",
        "CLEANDAY_TEMPORAL_UI_URL": UI,
        "CLEANDAY_NOTION_RATE": "500",
        "CLEANDAY_OUTBOX_LEASE_SECONDS": "3",
        "CLEANDAY_OUTBOX_POLL_SECONDS": "0.5",
        "CLEANDAY_SLACK_CHANNELS": ",".join(f"{b}={c}" for b, c in CHANNELS.items()),
        "CLEANDAY_SLACK_GROUP_WAIT_SECONDS": "0",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # nobody: wake-ups are not needed
    }
    log = tmp_path / "service.log"
    first = _serve(env, log)
    procs = [first]
    try:
        _until("the first create", lambda: bool(notion_server.requests("POST /v1/pages")), procs)
        _until("the create to take effect", lambda: bool(
            notion_server.rows("Promotion Ledger")), procs)  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        procs = []
        assert len(notion_server.rows("Promotion Ledger")) == 1
        assert _waiting(engine) > FAILURES * 2  # the dead instance never heard the slow answer

        second = _serve(env, log)
        procs = [second]
        _until("the outbox to drain", lambda: _waiting(engine) == 0, procs)
        notion_delivered_once_in_order(engine, notion_server, FAILURES, redelivered=True)
        # the second instance looked the unanswered create up by its key before going on
        (lookup, *_) = notion_server.requests("POST /v1/data_sources/*/query")
        assert lookup.status == 200 and lookup.answer["results"]
        slack_delivered_once_in_order(engine, slack_server, FAILURES)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    text = log.read_text()
    assert "Slack delivery is off" not in text
    assert text.count("drains the outbox now") == 2  # one holder, then the other
