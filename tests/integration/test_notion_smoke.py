"""`cleanday smoke notion --parent PAGE_ID` against the fake Notion: a scratch data source and
row are made, read back and moved to the trash, each step reported, the token never printed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cleanday.cli import app
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import _shared_notion, notion_server

__all__ = ["_shared_notion", "notion_server"]


def _env(server: NotionServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)


def test_smoke_notion_writes_a_scratch_row_reads_it_back_and_cleans_up(
    notion_server: NotionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(notion_server, monkeypatch)
    parent = notion_server.add_page("Cleanday")
    out = CliRunner().invoke(app, ["smoke", "notion", "--parent", parent])
    assert out.exit_code == 0, out.output
    assert [line.split()[:3] for line in out.output.splitlines()] == [
        ["notion", "auth", "ok"], ["notion", "parent", "ok"], ["notion", "create", "ok"],
        ["notion", "write", "ok"], ["notion", "read", "ok"], ["notion", "cleanup", "ok"],
    ]  # fmt: skip
    assert notion_server.token not in out.output
    (db,) = notion_server.databases.values()
    assert db.in_trash and "cleanday smoke" in "".join(t["plain_text"] for t in db.title)
    (row,) = [p for p in notion_server.pages.values() if p.id != parent]
    assert row.in_trash
    # the client waits out the fake's 429s (3 requests/s) and asks again
    assert [r.key for r in notion_server.requests() if r.status != 429] == [
        "GET /v1/users/me", f"GET /v1/pages/{parent}", "POST /v1/databases", "POST /v1/pages",
        f"POST /v1/data_sources/{db.data_source_ids[0]}/query",
        f"PATCH /v1/pages/{row.id}",
        f"PATCH /v1/databases/{db.id}",
    ]  # fmt: skip


def test_smoke_notion_reports_a_parent_it_cannot_see_without_the_token(
    notion_server: NotionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(notion_server, monkeypatch)
    out = CliRunner().invoke(
        app, ["smoke", "notion", "--parent", "00000000-0000-4000-8000-000000000000"]
    )
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0].split()[:3] == ["notion", "auth", "ok"]
    assert lines[1].split()[:3] == ["notion", "parent", "failed"] and len(lines) == 2
    assert notion_server.token not in out.output
    assert not notion_server.databases  # nothing was made


def test_smoke_notion_cleans_up_when_the_row_cannot_be_written(
    notion_server: NotionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(notion_server, monkeypatch)
    monkeypatch.setenv("CLEANDAY_NOTION_TIMEOUT_SECONDS", "2")
    parent = notion_server.add_page("Cleanday")
    notion_server.set_rate_limit(None)  # the 500s are the point here, not the pacing
    notion_server.inject("error", "POST /v1/pages", times=None, status=500)
    out = CliRunner().invoke(app, ["smoke", "notion", "--parent", parent])
    assert out.exit_code == 1
    steps = [line.split()[:3] for line in out.output.splitlines()]
    assert ["notion", "write", "failed"] in steps and steps[-1] == ["notion", "cleanup", "ok"]
    (db,) = notion_server.databases.values()
    assert db.in_trash


def test_smoke_notion_needs_a_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test")
    out = CliRunner().invoke(app, ["smoke", "notion"])
    assert out.exit_code == 2 and "--parent PAGE_ID" in out.output
