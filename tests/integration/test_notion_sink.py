"""The Notion sink for acts: content_pipeline's post and morning_digest's digest become pages
under the parent, keyed by the action so a retried act never writes twice (an uncertain create
is found again by its marker); other behaviors, and no token, land in files as before."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.notion.client import sync_client
from cleanday.notion.setup import init
from cleanday.notion.sink import NotionSink, sink_for
from cleanday.notion.store import NotionStore
from cleanday.sinks import FileSink
from cleanday.steps import Action
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import _shared_notion, notion_server

__all__ = ["_shared_notion", "notion_server"]

POST = Action(
    "publish", "posts/2026-11-09-hello.md", {"content": "Hello.\n\nSecond.", "title": "Hello"}
)


def _settings(server: NotionServer, tmp_path: Path, **extra: str) -> Settings:
    return Settings(**server.env(), CLEANDAY_DATA_DIR=str(tmp_path), **extra)  # type: ignore[arg-type]


def _sink(server: NotionServer, engine: Engine, tmp_path: Path, **extra: str) -> NotionSink:
    server.set_rate_limit(None)
    settings = _settings(server, tmp_path, CLEANDAY_NOTION_RATE="200", **extra)
    client = sync_client(settings, None)
    init(client, NotionStore(engine), server.add_page("Cleanday"))
    sink = sink_for(settings, engine)
    assert isinstance(sink, NotionSink)
    return sink


def _pages_titled(server: NotionServer, title: str) -> list[str]:
    found = server.requests("POST /v1/pages")
    return [r.answer["id"] for r in found if r.status == 200 and title in str(r.body)]


def test_a_post_becomes_a_page_and_a_retried_act_writes_nothing_twice(
    notion_server: NotionServer, engine: Engine, tmp_path: Path
) -> None:
    sink = _sink(notion_server, engine, tmp_path)
    first = sink.act("content_pipeline", POST)
    again = sink.act("content_pipeline", POST)
    assert first == again and first.startswith("https://www.notion.so/")
    (page_id,) = _pages_titled(notion_server, "Hello")
    texts = [b["text"] for b in notion_server.blocks_of(page_id)]
    assert texts[1:] == ["Hello.", "Second."]


def test_after_an_uncertain_create_the_page_is_found_not_written_again(
    notion_server: NotionServer, engine: Engine, tmp_path: Path
) -> None:
    sink = _sink(notion_server, engine, tmp_path, CLEANDAY_NOTION_TIMEOUT_SECONDS="0.5")
    notion_server.inject("drop_after_write", "POST /v1/pages")
    with pytest.raises(httpx.HTTPError):  # the connection closed after the page was made
        sink.act("morning_digest", Action("write", "digests/2026-11-09.md", {"content": "Day."}))
    reference = sink.act(
        "morning_digest", Action("write", "digests/2026-11-09.md", {"content": "Day."})
    )
    assert len(notion_server.requests("POST /v1/pages")) == 1
    assert reference.startswith("https://www.notion.so/")


def test_other_behaviors_and_no_token_land_in_files(
    notion_server: NotionServer, engine: Engine, tmp_path: Path
) -> None:
    sink = _sink(notion_server, engine, tmp_path)
    reference = sink.act("tag_audit", Action("write", "tags/x.json", {"content": "{}"}))
    assert Path(reference).read_text() == "{}"
    plain = Settings(CLEANDAY_DATA_DIR=str(tmp_path))  # type: ignore[call-arg]
    assert isinstance(sink_for(plain, engine), FileSink)
