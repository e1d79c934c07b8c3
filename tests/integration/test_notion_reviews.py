"""The Sunday review in Notion: the candidates' rows carry their evidence and an empty Decision,
and the operator's decisions are read back by a query filtered on last_edited_time (overlapping
the previous read), recorded "decided by" the page's last editor through the door `notion`;
when another door and Notion both decide, the later decision stands and both are in the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import notion_client
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.domain import Decision, Policy
from cleanday.ledger import LedgerService
from cleanday.notion.client import sync_client
from cleanday.notion.jobs import REVIEW_LAST_READ_JOB, REVIEW_READ_JOB, add_review_reads, read_job
from cleanday.notion.reviews import ReviewReader
from cleanday.notion.sender import CHANNEL, notion_sender
from cleanday.notion.setup import init
from cleanday.notion.store import NotionStore
from cleanday.outbox import OutboxDelivery
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import MakeNotion, make_notion_server
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

__all__ = ["make_notion_server"]

SUNDAY = date(2026, 11, 22)


class Review:
    """Two behaviors seven days clean, the review posted on Sunday morning and its rows in
    Notion; the ledger and the fake Notion read the same clock."""

    def __init__(self, server: NotionServer, engine: Engine, tmp_path: Path, clock: FakeClock):
        self.server, self.engine, self.clock = server, engine, clock
        self.svc = LedgerService(engine, Policy(timezone="UTC"), self.clock)
        self.settings = Settings(**server.env(), CLEANDAY_NOTION_RATE="200")  # type: ignore[arg-type]
        self.client: notion_client.Client = sync_client(self.settings, None)
        init(self.client, NotionStore(engine), server.add_page("Cleanday"))
        self.delivery = OutboxDelivery(engine, {CHANNEL: notion_sender(self.settings, engine)})
        for name in ("tagger", "poster"):
            self.svc.register(write_work_order(tmp_path, name))
        for i in range(7):
            d = date(2026, 11, 9) + timedelta(days=i)
            self.clock.set(at(d.isoformat(), 12))
            for name in ("tagger", "poster"):
                self.svc.report_run(report(name, f"{name}-{d}", at(d.isoformat(), 12)))
            self.clock.set(at((d + timedelta(days=1)).isoformat(), 0, 5))
            self.svc.close_day(d)
        self.clock.set(at("2026-11-22", 8))
        self.svc.post_review(SUNDAY)
        self.delivery.drain_now()
        self.reader = ReviewReader(self.svc, self.client, NotionStore(engine))

    def row(self, behavior: str) -> dict[str, object]:
        (row,) = [r for r in self.server.rows("Promotion Reviews") if r["Behavior"] == behavior]
        return row

    def decide_in_notion(self, behavior: str, decision: str) -> None:
        self.server.edit_as_person(
            str(self.row(behavior)["_id"]), {"Decision": {"select": {"name": decision}}}
        )

    def close(self) -> None:
        self.delivery.close()
        self.client.close()


@pytest.fixture
def review(make_notion_server: MakeNotion, engine: Engine, tmp_path: Path) -> Iterator[Review]:
    clock = FakeClock(at("2026-11-08", 10))
    r = Review(make_notion_server(clock=clock, rate_limit=None), engine, tmp_path, clock)
    yield r
    r.close()


def test_the_review_rows_hold_the_streaks_evidence_and_an_empty_decision(review: Review) -> None:
    row = review.row("tagger")
    assert row["Week"] == "2026-11-22" and row["From tier"] == "A" and row["To tier"] == "B"
    assert row["Clean days"] == 7 and row["Runs"] == 7
    assert row["Spend"] == pytest.approx(0.07) and row["Anomalies"] == 0
    assert row["Overrides"] == 0 and row["Decision"] is None


def test_a_decision_made_in_notion_is_recorded_decided_by_its_editor(review: Review) -> None:
    review.clock.set(at("2026-11-22", 9, 30))
    review.decide_in_notion("tagger", "Promote")
    review.clock.set(at("2026-11-22", 9, 35))
    first = review.reader.read(SUNDAY)
    operator = review.server.operator.name
    assert first.recorded == [("tagger", "promote", operator)]
    (recorded,) = review.svc.decisions(SUNDAY)
    assert (recorded.by, recorded.door, recorded.decided_at) == (
        operator, "notion", at("2026-11-22", 9, 30)
    )  # fmt: skip
    decisions = {r.name: r.decision for r in review.svc.candidates(SUNDAY)}
    assert decisions["tagger"] == Decision.PROMOTE
    review.clock.set(at("2026-11-22", 9, 40))
    assert review.reader.read(SUNDAY).recorded == []  # read again (overlap): nothing twice
    review.clock.set(at("2026-11-22", 9, 41))
    review.decide_in_notion("tagger", "Hold")  # the operator changed their mind
    review.clock.set(at("2026-11-22", 9, 45))
    assert review.reader.read(SUNDAY).recorded == [("tagger", "hold", operator)]
    review.clock.set(at("2026-11-23", 0, 10))
    closed = review.svc.close_sunday(SUNDAY)
    assert closed.promoted == [] and "tagger" in closed.held


def test_an_edit_in_the_same_minute_as_the_previous_read_is_not_missed(review: Review) -> None:
    review.clock.set(at("2026-11-22", 9, 30) + timedelta(seconds=10))
    assert review.reader.read(SUNDAY).recorded == []
    review.clock.set(at("2026-11-22", 9, 30) + timedelta(seconds=40))  # stored as 9:30
    review.decide_in_notion("poster", "Promote")
    review.clock.set(at("2026-11-22", 9, 35))
    assert [b for b, _, _ in review.reader.read(SUNDAY).recorded] == ["poster"]


def test_when_the_cli_decides_later_the_cli_decision_stands_and_both_are_in_the_ledger(
    review: Review,
) -> None:
    review.clock.set(at("2026-11-22", 9, 30))
    review.decide_in_notion("tagger", "Promote")
    review.clock.set(at("2026-11-22", 10, 0))
    review.svc.decide("tagger", SUNDAY, Decision.HOLD, by="ops", door="cli")  # later
    review.clock.set(at("2026-11-22", 10, 5))
    result = review.reader.read(SUNDAY)
    operator = review.server.operator.name
    assert result.recorded == [] and result.skipped == []
    assert result.superseded == [("tagger", "promote", operator)]
    assert {r.name: r.decision for r in review.svc.candidates(SUNDAY)}["tagger"] == Decision.HOLD
    cli, notion = review.svc.decisions(SUNDAY)  # both in the ledger, the older one superseded
    assert (cli.door, cli.stands) == ("cli", True)
    assert (notion.door, notion.by, notion.stands) == ("notion", operator, False)
    assert notion.superseded_by is not None and notion.superseded_by.startswith("hold by ops")
    review.clock.set(at("2026-11-22", 10, 8))
    assert review.reader.read(SUNDAY).superseded == []  # read again: not recorded twice
    # the other way round: Notion decides after the CLI, and Notion's stands
    review.clock.set(at("2026-11-22", 10, 10))
    review.decide_in_notion("tagger", "Promote")
    review.clock.set(at("2026-11-22", 10, 15))
    assert [d for _, d, _ in review.reader.read(SUNDAY).recorded] == ["promote"]
    assert {r.name: r.decision for r in review.svc.candidates(SUNDAY)}["tagger"] == (
        Decision.PROMOTE
    )


def test_the_read_job_reads_on_sunday_and_not_after_the_close(review: Review) -> None:
    tz = ZoneInfo("UTC")
    review.clock.set(at("2026-11-22", 9, 30))
    review.decide_in_notion("poster", "Hold")
    review.clock.set(at("2026-11-22", 23, 58))  # the last read, just before the close
    result = read_job(review.reader, tz)
    assert result is not None and [b for b, _, _ in result.recorded] == ["poster"]
    review.clock.set(at("2026-11-23", 0, 3))
    assert read_job(review.reader, tz) is None


def test_the_reads_run_every_few_minutes_of_sunday_and_once_before_the_close(
    review: Review,
) -> None:
    scheduler = BackgroundScheduler(timezone=ZoneInfo("UTC"))
    settings = Settings(  # type: ignore[call-arg]
        **review.server.env(), CLEANDAY_NOTION_REVIEW_READ_MINUTES="10"
    )
    add_review_reads(scheduler, review.svc, settings)
    saturday = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    every = scheduler.get_job(REVIEW_READ_JOB).trigger
    first = every.get_next_fire_time(None, saturday)
    assert (first, every.get_next_fire_time(first, first + timedelta(seconds=1))) == (
        datetime(2026, 11, 22, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 22, 0, 10, tzinfo=UTC),
    )
    last = scheduler.get_job(REVIEW_LAST_READ_JOB).trigger
    assert last.get_next_fire_time(None, saturday) == datetime(2026, 11, 22, 23, 58, tzinfo=UTC)
