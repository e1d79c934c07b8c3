"""Notion's webhook: absent unless turned on; the verification token Notion sends is kept in the
ledger database and then verifies every event's signature; on Sunday a person's page edit
records the decision at once, the same as the poll would, and a burst of events is one read."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cleanday.cli import app
from cleanday.config import Settings
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.notion.jobs import READ_SOON, REVIEW_READ_JOB, add_review_reads
from cleanday.notion.store import NotionStore
from cleanday.service.app import create_app
from tests.fakes.notion import NotionServer
from tests.integration.ledger_fixtures import FakeClock, at
from tests.integration.test_notion_reviews import SUNDAY, Review, make_notion_server, review

__all__ = ["make_notion_server", "review"]

WEBHOOK = "/notion/webhook"
TOKEN = "secret_tZ9vKqg3Xw0mJ2hLrS5yB8nE1cD4fA7u"
QUERIES = "POST /v1/data_sources/*/query"


def signed(body: bytes, token: str = TOKEN) -> dict[str, str]:
    digest = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Notion-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def event(page_id: str, kind: str = "page.properties_updated", author: str = "person") -> bytes:
    """An event as Notion sends it: IDs, a type, who did it; never what changed."""
    return json.dumps({
        "id": "0c8e4a2b-7d1f-4c55-9a3e-2f6b8d0e1a47",
        "timestamp": "2026-11-22T09:30:00.000Z",
        "workspace_id": "13950b26-c203-4f3b-b97d-93ec06319565",
        "subscription_id": "29d75c0d-5546-4d2b-8a0e-7d2c9f3e4b1a",
        "integration_id": "18d75c0d-5546-4d2b-8a0e-7d2c9f3e4b1a",
        "type": kind,
        "authors": [{"id": "c7c11cca-1d73-471d-9b6e-bdef51470190", "type": author}],
        "attempt_number": 1,
        "entity": {"id": page_id, "type": "page"},
        "data": {"updated_properties": ["Decision"]},
    }).encode()  # fmt: skip


class Hook:
    """The ledger service with the webhook on, beside a scheduler holding the review reads as
    the service's lifespan wires them (reading every 30 minutes of Sunday, wall time)."""

    def __init__(self, review: Review, tmp_path: Path) -> None:
        self.review, self.server = review, review.server
        settings = Settings(  # type: ignore[call-arg]
            **self.server.env(), CLEANDAY_NOTION_RATE="200", CLEANDAY_NOTION_WEBHOOK="1",
            CLEANDAY_NOTION_REVIEW_READ_MINUTES="30", CLEANDAY_DATA_DIR=tmp_path,
        )  # fmt: skip
        self.scheduler = BackgroundScheduler(
            timezone=ZoneInfo("UTC"), job_defaults={"coalesce": True, "max_instances": 1}
        )
        add_review_reads(self.scheduler, review.svc, settings)
        self.scheduler.start()
        app = create_app(settings, review.svc, scheduler=False)
        app.state.scheduler = self.scheduler
        self.client = TestClient(app)
        assert self.client.post(WEBHOOK, json={"verification_token": TOKEN}).status_code == 200

    def send(self, body: bytes, headers: dict[str, str] | None = None) -> Any:
        if headers is None:
            headers = signed(body)
        return self.client.post(WEBHOOK, content=body, headers=headers)

    def page_of(self, behavior: str) -> str:
        return str(self.review.row(behavior)["_id"])

    def recorded(self) -> list[tuple[str, str, str, str]]:
        return [
            (d.behavior, d.decision.value, d.by, d.door) for d in self.review.svc.decisions(SUNDAY)
        ]

    def wait_recorded(self, count: int = 1) -> list[tuple[str, str, str, str]]:
        deadline = time.monotonic() + 15
        while len(self.recorded()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.recorded()

    def close(self) -> None:
        self.client.close()
        self.scheduler.shutdown(wait=True)


@pytest.fixture
def hook(review: Review, tmp_path: Path) -> Iterator[Hook]:
    h = Hook(review, tmp_path)
    yield h
    h.close()


def test_the_webhook_is_absent_unless_turned_on_with_a_notion_token(
    engine: Engine, tmp_path: Path, make_notion_server: Any
) -> None:
    server: NotionServer = make_notion_server()
    svc = LedgerService(engine, Policy(timezone="UTC"), FakeClock(at("2026-11-22", 9)))
    for env in (
        {**server.env()},  # NOTION_TOKEN alone
        {"CLEANDAY_NOTION_WEBHOOK": "1"},  # no NOTION_TOKEN: nothing to read with
    ):
        settings = Settings(**env, CLEANDAY_DATA_DIR=tmp_path)  # type: ignore[arg-type]
        with TestClient(create_app(settings, svc, scheduler=False)) as client:
            answer = client.post(WEBHOOK, json={"verification_token": TOKEN})
        assert answer.status_code == 404
    assert NotionStore(engine).verification_token() is None


def test_the_verification_token_is_kept_unlogged_and_then_verifies_the_events(
    review: Review, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    hook = Hook(review, tmp_path)  # posts TOKEN as Notion does when the operator subscribes
    try:
        assert NotionStore(review.engine).verification_token() == TOKEN
        assert "cleanday notion webhook-token" in caplog.text and TOKEN not in caplog.text
        resent = hook.client.post(WEBHOOK, json={"verification_token": TOKEN})
        assert resent.status_code == 200  # Notion's "resend token": the same one
        other = hook.client.post(WEBHOOK, json={"verification_token": "secret_someone_else"})
        assert other.status_code == 409 and "--forget" in other.json()["detail"]
        assert NotionStore(review.engine).verification_token() == TOKEN  # the first stands
        body = event(hook.page_of("tagger"))
        assert hook.send(body).status_code == 200
        assert hook.send(body, signed(body, "secret_someone_else")).status_code == 401
    finally:
        hook.close()


def test_an_event_before_any_token_or_with_a_bad_or_missing_signature_is_refused_401(
    review: Review, tmp_path: Path
) -> None:
    hook = Hook(review, tmp_path)
    try:
        NotionStore(review.engine).forget_verification_token()
        body = event(hook.page_of("tagger"))
        unverified = hook.send(body)
        assert unverified.status_code == 401
        assert "no verification token" in unverified.json()["detail"]
        hook.client.post(WEBHOOK, json={"verification_token": TOKEN})
        missing = hook.send(body, {"Content-Type": "application/json"})
        assert missing.status_code == 401
        assert "missing X-Notion-Signature" in missing.json()["detail"]
        wrong = hook.send(body + b" ", signed(body))  # the body changed after Notion signed it
        assert wrong.status_code == 401 and "wrong X-Notion-Signature" in wrong.json()["detail"]
        huge = hook.send(b"{" + b" " * (65 * 1024) + b"}")
        assert huge.status_code == 413
    finally:
        hook.close()


def test_a_signed_edit_on_sunday_records_the_decision_without_waiting_for_the_poll(
    hook: Hook,
) -> None:
    review = hook.review
    review.clock.set(at("2026-11-22", 9, 30))
    review.decide_in_notion("tagger", "Promote")
    review.clock.set(at("2026-11-22", 9, 31))
    answer = hook.send(event(hook.page_of("tagger")))
    assert answer.status_code == 200 and answer.json() == {"read": True}
    operator = hook.server.operator.name
    assert hook.wait_recorded() == [("tagger", "promote", operator, "notion")]
    # the reads every few minutes of Sunday go on after it
    job = hook.scheduler.get_job(REVIEW_READ_JOB)
    assert job.next_run_time > datetime.now(UTC) + timedelta(minutes=1)


def test_a_burst_of_twenty_events_is_one_read(hook: Hook) -> None:
    review = hook.review
    review.clock.set(at("2026-11-22", 9, 30))
    review.decide_in_notion("tagger", "Promote")
    review.decide_in_notion("poster", "Hold")
    review.clock.set(at("2026-11-22", 9, 31))
    hook.server.clear_requests()
    started = time.monotonic()
    for i in range(20):
        page = hook.page_of("tagger" if i % 2 else "poster")
        assert hook.send(event(page)).json() == {"read": True}
    assert time.monotonic() - started < READ_SOON.total_seconds()  # all within one window
    assert {(b, d) for b, d, _, _ in hook.wait_recorded(2)} == {("tagger", "promote"),
                                                                ("poster", "hold")}  # fmt: skip
    time.sleep(READ_SOON.total_seconds() + 0.5)  # a second read would have come by now
    assert len(hook.server.requests(QUERIES)) == 1


def test_events_that_carry_no_decision_are_answered_and_read_nothing(hook: Hook) -> None:
    review = hook.review
    review.clock.set(at("2026-11-22", 9, 30))
    review.decide_in_notion("tagger", "Promote")
    hook.server.clear_requests()
    page = hook.page_of("tagger")
    for body in (
        event(page, kind="page.content_updated"),
        event(page, author="bot"),  # cleanday's own writes to the ledger's rows
    ):
        assert hook.send(body).json() == {"read": False}
    review.clock.set(at("2026-11-23", 9, 30))  # Monday: the review is closed
    assert hook.send(event(page)).json() == {"read": False}
    time.sleep(READ_SOON.total_seconds() + 0.5)
    assert hook.server.requests(QUERIES) == [] and hook.recorded() == []


def test_the_cli_prints_the_kept_token_for_notions_verify_form_and_forgets_it(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    none = runner.invoke(app, ["notion", "webhook-token"])
    assert none.exit_code == 1 and "no verification token yet" in none.output
    NotionStore(engine).keep_verification_token(TOKEN)
    printed = runner.invoke(app, ["notion", "webhook-token"])
    assert printed.exit_code == 0 and printed.output.strip() == TOKEN
    assert runner.invoke(app, ["notion", "webhook-token", "--forget"]).output.strip() == "forgotten"
    assert NotionStore(engine).verification_token() is None
    assert NotionStore(engine).keep_verification_token("secret_new") == "secret_new"  # anew
