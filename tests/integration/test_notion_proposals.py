"""Tier A's elevated report in Notion: pending proposals become one page per batch with an
Approve / Reject to-do per item, and a checked to-do signs the item off through the ledger's
own sign-off call: the same entries and the same wake-ups as `cleanday batch approve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.domain import Policy
from cleanday.ledger import LedgerService
from cleanday.models import T_ENTRIES, T_OUTBOX
from cleanday.notion.client import sync_client
from cleanday.notion.jobs import proposals_job
from cleanday.notion.proposals import ProposalPages
from cleanday.notion.setup import init
from cleanday.notion.store import NotionStore
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import _shared_notion, notion_server
from tests.integration.ledger_fixtures import FakeClock, at, report, write_work_order

__all__ = ["_shared_notion", "notion_server"]


@pytest.fixture
def pages(notion_server: NotionServer, engine: Engine, tmp_path: Path) -> Iterator[ProposalPages]:
    notion_server.set_rate_limit(None)
    client = sync_client(Settings(**notion_server.env()), None)  # type: ignore[arg-type]
    init(client, NotionStore(engine), notion_server.add_page("Cleanday"))
    svc = LedgerService(engine, Policy(timezone="UTC"), FakeClock(at("2026-11-09", 12)))
    svc.register(write_work_order(tmp_path, "tagger"))
    for run in ("r1", "r2"):
        svc.report_run(report("tagger", run, at("2026-11-09", 12), outcome="proposed"))
    yield ProposalPages(svc, client, NotionStore(engine))
    client.close()


def _todos(server: NotionServer, page_id: str) -> dict[str, str]:
    return {b["text"]: b["id"] for b in server.blocks_of(page_id) if b["type"] == "to_do"}


def test_pending_proposals_become_one_page_per_batch_with_a_decision_per_item(
    pages: ProposalPages, notion_server: NotionServer
) -> None:
    page_id = pages.post("tagger")
    assert page_id is not None
    assert set(_todos(notion_server, page_id)) == {
        "Approve r1", "Reject r1", "Approve r2", "Reject r2"
    }  # fmt: skip
    assert pages.post("tagger") is None  # nothing new: no second page
    pages.ledger.report_run(report("tagger", "r3", at("2026-11-09", 12), outcome="proposed"))
    second = pages.post("tagger")
    assert second is not None and set(_todos(notion_server, second)) == {"Approve r3", "Reject r3"}


def test_a_checked_to_do_signs_off_like_the_cli_with_its_entries_and_wake_ups(
    pages: ProposalPages, notion_server: NotionServer, engine: Engine
) -> None:
    page_id = pages.post("tagger")
    assert page_id is not None
    todos = _todos(notion_server, page_id)
    notion_server.check_as_person(todos["Approve r1"], True)
    notion_server.check_as_person(todos["Reject r2"], True)
    result = pages.read("tagger")
    assert (result.approved, result.rejected, result.left) == (["r1"], ["r2"], [])
    by = f"notion:{notion_server.operator.name}"
    status = {i.item_id: (i.status, i.decided_by) for i in pages.ledger.items("tagger")}
    assert status == {"r1": ("approved", by), "r2": ("rejected", by)}
    with engine.connect() as conn:
        wakes = conn.execute(
            sa.select(T_OUTBOX.c.payload["action"].as_string()).where(T_OUTBOX.c.kind == "wake_run")
        ).scalars()
        assert sorted(wakes) == ["approved", "rejected"]
        assert "override" in set(conn.execute(sa.select(T_ENTRIES.c.kind)).scalars())
    assert pages.read("tagger").approved == []  # read again: nothing is signed off twice


def test_an_item_with_both_to_dos_checked_is_left_for_the_operator(
    pages: ProposalPages, notion_server: NotionServer
) -> None:
    page_id = pages.post("tagger")
    assert page_id is not None
    todos = _todos(notion_server, page_id)
    notion_server.check_as_person(todos["Approve r1"], True)
    notion_server.check_as_person(todos["Reject r1"], True)
    result = pages.read("tagger")
    assert result.left == [("r1", "both Approve and Reject are checked")]
    assert {i.item_id: i.status for i in pages.ledger.items("tagger")}["r1"] == "pending"


def test_the_job_posts_new_proposals_and_signs_off_what_was_checked(
    pages: ProposalPages, notion_server: NotionServer
) -> None:
    proposals_job(pages)
    (page,) = [r for r in notion_server.requests("POST /v1/pages")]
    page_id = page.answer["id"]
    notion_server.check_as_person(_todos(notion_server, page_id)["Approve r2"], True)
    proposals_job(pages)
    assert {i.item_id: i.status for i in pages.ledger.items("tagger")} == {
        "r1": "pending", "r2": "approved"
    }  # fmt: skip
    assert len(notion_server.requests("POST /v1/pages")) == 1
