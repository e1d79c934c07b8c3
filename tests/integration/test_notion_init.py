"""`cleanday notion init` against the fake Notion with the real notion-client: it creates the
three data sources with their initial data source, adopts them when present, reports a missing
or wrong-typed property by name, and changes nothing when run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import notion_client
import pytest
from sqlalchemy.engine import Engine

from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.errors import NotionSetupError
from cleanday.notion.client import sync_client
from cleanday.notion.pacing import Pacing
from cleanday.notion.schema import GATE_FAILURES, LEDGER, REVIEWS
from cleanday.notion.setup import init
from cleanday.notion.store import NotionStore
from tests.fakes.notion import NotionServer
from tests.fakes.surface_fixtures import _shared_notion, notion_server

__all__ = ["_shared_notion", "notion_server"]


def settings_for(server: NotionServer) -> Settings:
    return Settings(**server.env())  # type: ignore[arg-type]


@pytest.fixture
def client(notion_server: NotionServer, engine: Engine) -> Iterator[notion_client.Client]:
    c = sync_client(settings_for(notion_server), Pacing(engine))
    yield c
    c.close()


def test_init_creates_three_data_sources_under_the_parent_and_keeps_their_ids(
    notion_server: NotionServer, engine: Engine, client: notion_client.Client
) -> None:
    parent = notion_server.add_page("Cleanday")
    store = NotionStore(engine)
    results = init(client, store, parent)
    assert [(r.title, r.action) for r in results] == [
        ("Promotion Ledger", "created"),
        ("Gate Failures", "created"),
        ("Promotion Reviews", "created"),
    ]
    for spec in (LEDGER, GATE_FAILURES, REVIEWS):
        ds = notion_server.data_source_id(spec.title)
        assert store.data_sources()[spec.role].data_source_id == ds
        assert notion_server.schema(ds) == spec.types()
    assert len(notion_server.requests("POST /v1/databases")) == 3


def test_running_init_again_changes_nothing(
    notion_server: NotionServer, engine: Engine, client: notion_client.Client
) -> None:
    parent = notion_server.add_page("Cleanday")
    store = NotionStore(engine)
    first = init(client, store, parent)
    notion_server.clear_requests()
    again = init(client, store, parent)
    assert [r.action for r in again] == ["kept"] * 3
    assert [r.data_source_id for r in again] == [r.data_source_id for r in first]
    assert {r.method for r in notion_server.requests()} == {"GET"}


def test_init_adopts_data_sources_found_under_the_parent_by_title(
    notion_server: NotionServer, engine: Engine, client: notion_client.Client, tmp_path: Path
) -> None:
    parent = notion_server.add_page("Cleanday")
    init(client, NotionStore(engine), parent)  # an earlier install, its database since lost
    other = make_engine(f"sqlite:///{tmp_path}/other.db")
    migrate(other)
    notion_server.clear_requests()
    results = init(client, NotionStore(other), parent)
    assert [r.action for r in results] == ["adopted"] * 3
    assert not notion_server.requests("POST /v1/databases")
    assert NotionStore(other).data_sources()["ledger"].data_source_id == (
        notion_server.data_source_id("Promotion Ledger")
    )
    other.dispose()


def test_a_missing_or_wrong_typed_property_is_reported_by_name_and_nothing_is_changed(
    notion_server: NotionServer, engine: Engine, client: notion_client.Client
) -> None:
    parent = notion_server.add_page("Cleanday")
    props = {k: v for k, v in LEDGER.properties.items() if k != "Cap"}
    props["Tier"] = {"rich_text": {}}
    client.databases.create(
        parent={"type": "page_id", "page_id": parent},
        title=[{"type": "text", "text": {"content": "Promotion Ledger"}}],
        initial_data_source={"properties": props},
    )
    with pytest.raises(NotionSetupError) as caught:
        init(client, NotionStore(engine), parent)
    message = str(caught.value)
    assert "property 'Cap' is missing (add it as number)" in message
    assert "property 'Tier' is rich_text, expected select" in message
    assert NotionStore(engine).data_sources() == {}
    assert len(notion_server.requests("POST /v1/databases")) == 1  # the test's own


def test_a_parent_page_not_shared_with_the_integration_says_what_to_do(
    notion_server: NotionServer, engine: Engine, client: notion_client.Client
) -> None:
    with pytest.raises(NotionSetupError, match="Share the page with the integration"):
        init(client, NotionStore(engine), "0" * 32)
