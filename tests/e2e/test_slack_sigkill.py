"""The ledger service killed with SIGKILL in the middle of draining to Slack (a subprocess
`cleanday serve`, both back ends): the next instance takes the lease over, finds the message
the dead one posted without hearing the answer, and every alert is there exactly once, in
order per channel."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from cleanday import outbox, outbox_admin
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server
from tests.integration.ledger_fixtures import FakeClock
from tests.integration.test_slack_outage import CHANNELS, alert, delivered_once_in_order

__all__ = ["_shared_slack", "slack_server"]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cleanday.cli", "serve", "--port", str(_free_port())],
        env={**os.environ, **env}, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _until(what: str, done: Callable[[], bool], procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 90
    while not done():
        for p in procs:
            assert p.poll() is None, f"the service exited ({p.returncode}) before {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_a_service_killed_mid_drain_leaves_every_alert_there_once(
    engine: Engine, database_url: str, slack_server: SlackServer, tmp_path: Path
) -> None:
    clock = FakeClock(datetime.now(UTC))
    with engine.begin() as conn:
        outbox.write(conn, [alert(i, clock) for i in range(40)], clock())
    # the first post takes effect at once and its answer never comes in time
    slack_server.inject("slow", "chat.postMessage", delay=60)
    env = {
        **slack_server.env(),
        "DATABASE_URL": database_url,
        "CLEANDAY_DATA_DIR": str(tmp_path / "data"),
        "CLEANDAY_TOKEN": "operator-token",
        "CLEANDAY_OUTBOX_LEASE_SECONDS": "3",
        "CLEANDAY_OUTBOX_POLL_SECONDS": "0.5",
        "CLEANDAY_SLACK_CHANNELS": ",".join(f"{b}={c}" for b, c in CHANNELS.items()),
        "CLEANDAY_SLACK_GROUP_WAIT_SECONDS": "0",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",  # nobody: wake-ups are not needed
    }
    log = tmp_path / "service.log"
    first = _serve(env, log)
    procs = [first]
    try:
        _until("the first post", lambda: bool(slack_server.requests("chat.postMessage")), procs)
        _until("the post to take effect", lambda: any(
            slack_server.messages(c) for c in ("#alerts", "#general")), procs)  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        procs = []
        posted = [m for c in ("#alerts", "#general") for m in slack_server.messages(c)]
        assert 1 <= len(posted) <= 2  # the other channel's group may have gone through
        waiting = sum(w.rows for w in outbox_admin.waiting(engine) if w.channel == "slack")
        assert waiting >= 20  # the dead instance never heard the slow answer

        second = _serve(env, log)
        procs = [second]
        _until("the outbox to drain", lambda: not [
            w for w in outbox_admin.waiting(engine) if w.channel == "slack"], procs)  # fmt: skip
        delivered_once_in_order(engine, slack_server)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    assert "Slack delivery is off" not in log.read_text()
