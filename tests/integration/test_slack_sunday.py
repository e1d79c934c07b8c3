"""Sunday's Slack messages against the fake Slack: the candidates summary with a link to the
week's review, and a line per C or Wings behavior that ran clean saying what it did."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from cleanday.domain import Policy, Tier
from cleanday.ledger import LedgerService
from cleanday.outbox import OutboxDelivery
from cleanday.slack_messages import Composer, weekly_line
from cleanday.slack_sender import SlackSender, route
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import _shared_slack, slack_server
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

__all__ = ["_shared_slack", "slack_server"]


def test_a_weekly_line_says_what_was_done() -> None:
    line = {"behavior": "publish_posts", "runs": 21, "outcomes": {"succeeded": 21}, "anomalies": 0}
    assert weekly_line(line) == "publish_posts: 21 runs, 21 published. No anomalies."
    two = {"behavior": "b", "runs": 3, "outcomes": {"blocked": 1, "succeeded": 2}, "anomalies": 1}
    assert weekly_line(two) == "b: 3 runs, 2 published, 1 blocked. 1 anomaly."


async def test_sunday_posts_the_summary_and_the_clean_behaviors_lines(
    engine: Engine, tmp_path: Path, slack_server: SlackServer
) -> None:
    clock = FakeClock(at("2026-11-09", 9))
    svc = LedgerService(engine, Policy(timezone="UTC"), clock)
    for name in ("publish_posts", "flaky", "idle", "newcomer"):
        svc.register(write_work_order(tmp_path, name))
    for name in ("publish_posts", "flaky", "idle"):
        svc.override(name, "trusted", tier=Tier.C)
    for day in range(10, 15):
        svc.report_run(report("publish_posts", f"p{day}", at(f"2026-11-{day}", 10)))
        svc.report_run(report("newcomer", f"n{day}", at(f"2026-11-{day}", 10)))  # tier A
        gate = "schema" if day == 12 else None
        svc.report_run(report("flaky", f"f{day}", at(f"2026-11-{day}", 10), failed_gate=gate))
    clock.set(at("2026-11-15", 8))
    svc.post_review(date(2026, 11, 15))

    composer = Composer(ZoneInfo("UTC"), "http://ui.test", review_url="http://svc.test/review")
    sender = SlackSender(slack_server.token, slack_server.api_url, composer, timeout_s=2)
    delivery = OutboxDelivery(
        engine, {"slack": sender}, clock=clock, routes={"slack": route("#alerts")}
    )
    await delivery.drain()
    texts = [m["text"] for m in slack_server.messages("#alerts")]
    (weekly,) = [t for t in texts if "runs," in t]
    assert weekly == "publish_posts: 5 runs, 5 published. No anomalies."
    (summary,) = [m for m in slack_server.messages("#alerts") if "Sunday review" in m["text"]]
    assert "http://svc.test/review?week=2026-11-15" in str(summary["blocks"])
