"""The real notion-client against the fake Notion: what issue 10's delivery will rely on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import notion_client
import pytest
from notion_client.errors import APIErrorCode, APIResponseError, RequestTimeoutError

from tests.fakes.notion import NotionServer, iter_pages
from tests.fakes.serving import FakeClock, RateLimit
from tests.fakes.surface_fixtures import (
    MakeNotion,
    _shared_notion,
    make_notion_server,
    notion,
    notion_server,
)

__all__ = ["_shared_notion", "make_notion_server", "notion", "notion_server"]

LEDGER_PROPERTIES: dict[str, Any] = {
    "Name": {"title": {}},
    "Behavior ID": {"rich_text": {}},
    "Tier": {"select": {"options": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}},
    "Clean days": {"number": {"format": "number"}},
    "Quarantined": {"checkbox": {}},
    "Last gate failure": {"date": {}},
    "Tags": {"multi_select": {}},
    "Run link": {"url": {}},
    "Decided by": {"people": {}},
    "Status": {"status": {}},
}


def text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": content}}]


def create_ledger(client: notion_client.Client, parent: str) -> tuple[str, str]:
    db = client.databases.create(
        parent={"type": "page_id", "page_id": parent},
        title=text("Promotion Ledger"),
        initial_data_source={"properties": LEDGER_PROPERTIES},
    )
    return db["id"], db["data_sources"][0]["id"]


def ledger_row(name: str, tier: str, clean_days: int, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "Name": {"title": text(name)},
        "Behavior ID": {"rich_text": text(f"bhv-{name}")},
        "Tier": {"select": {"name": tier}},
        "Clean days": {"number": clean_days},
    }
    props.update(extra)
    return props


@pytest.fixture
def fast(notion_server: NotionServer) -> NotionServer:
    """The fake without its 3/s pacing, for tests about state rather than rate."""
    notion_server.set_rate_limit(None)
    return notion_server


@pytest.fixture
def ledger(fast: NotionServer, notion: notion_client.Client) -> Iterator[str]:
    parent = fast.add_page("Cleanday")
    _, ds_id = create_ledger(notion, parent)
    yield ds_id


def test_a_database_is_created_under_a_page_with_its_initial_data_source(
    fast: NotionServer, notion: notion_client.Client
) -> None:
    parent = fast.add_page("Cleanday")
    db_id, ds_id = create_ledger(notion, parent)

    ds = notion.data_sources.retrieve(ds_id)
    assert ds["object"] == "data_source"
    assert ds["parent"] == {"type": "database_id", "database_id": db_id}
    assert {name: p["type"] for name, p in ds["properties"].items()} == {
        "Name": "title",
        "Behavior ID": "rich_text",
        "Tier": "select",
        "Clean days": "number",
        "Quarantined": "checkbox",
        "Last gate failure": "date",
        "Tags": "multi_select",
        "Run link": "url",
        "Decided by": "people",
        "Status": "status",
    }
    assert [o["name"] for o in ds["properties"]["Status"]["status"]["options"]] == [
        "Not started",
        "In progress",
        "Done",
    ]
    db = notion.databases.retrieve(db_id)
    assert db["data_sources"] == [{"id": ds_id, "name": "Promotion Ledger"}]
    # the parent page lists the database among its children, as Notion shows it
    children = notion.blocks.children.list(parent)["results"]
    assert [(c["type"], c["id"]) for c in children] == [("child_database", db_id)]
    assert fast.data_source_id("Promotion Ledger") == ds_id


def test_a_database_without_exactly_one_title_property_is_refused(
    fast: NotionServer, notion: notion_client.Client
) -> None:
    fast.invalid_allowed = True
    parent = fast.add_page()
    with pytest.raises(APIResponseError) as refused:
        notion.databases.create(
            parent={"type": "page_id", "page_id": parent},
            title=text("No title"),
            initial_data_source={"properties": {"Notes": {"rich_text": {}}}},
        )
    assert refused.value.code == APIErrorCode.ValidationError
    assert "exactly one title property" in str(refused.value)


def test_pages_are_created_updated_and_read_as_rows(
    fast: NotionServer, notion: notion_client.Client, ledger: str
) -> None:
    operator = fast.operator.id
    page = notion.pages.create(
        parent={"type": "data_source_id", "data_source_id": ledger},
        properties=ledger_row(
            "seo_audit",
            "B",
            3,
            **{
                "Tags": {"multi_select": [{"name": "seo"}, {"name": "weekly"}]},
                "Last gate failure": {"date": {"start": "2026-01-02"}},
                "Run link": {"url": "http://127.0.0.1:8233/namespaces/default/workflows/x"},
                "Decided by": {"people": [{"object": "user", "id": operator}]},
            },
        ),
    )
    assert page["parent"]["data_source_id"] == ledger
    assert page["properties"]["Tier"]["select"]["name"] == "B"
    assert page["created_by"] == {"object": "user", "id": fast.bot.id}

    notion.pages.update(
        page["id"],
        properties={"Clean days": {"number": 4}, "Tier": {"select": {"name": "Wings"}}},
    )
    (row,) = fast.rows(ledger)
    assert row["Name"] == "seo_audit"
    assert row["Behavior ID"] == "bhv-seo_audit"
    assert row["Clean days"] == 4
    assert row["Tier"] == "Wings"  # Notion adds the option a page names
    assert row["Tags"] == ["seo", "weekly"]
    assert row["Last gate failure"] == "2026-01-02"
    assert row["Decided by"] == [operator]
    assert row["Quarantined"] is False
    assert row["Status"] == "Not started"
    assert row["_id"] == page["id"]
    assert "Wings" in [
        o["name"]
        for o in notion.data_sources.retrieve(ledger)["properties"]["Tier"]["select"]["options"]
    ]

    notion.pages.update(page["id"], in_trash=True)
    assert fast.rows(ledger) == []
    assert notion.data_sources.query(ledger)["results"] == []
    assert notion.pages.retrieve(page["id"])["in_trash"] is True


def test_queries_filter_sort_and_paginate_like_notion(
    fast: NotionServer, notion: notion_client.Client, ledger: str
) -> None:
    rows = [
        ("seo_audit", "C", 7, True),
        ("publish_posts", "B", 2, False),
        ("morning_digest", "C", 12, False),
        ("tagging", "A", 0, False),
        ("webhook_logger", "B", 5, True),
        ("model_roll", "C", 9, False),
        ("content_pipeline", "A", 1, False),
    ]
    for name, tier, days, quarantined in rows:
        notion.pages.create(
            parent={"type": "data_source_id", "data_source_id": ledger},
            properties=ledger_row(
                name,
                tier,
                days,
                Quarantined={"checkbox": quarantined},
                **{"Last gate failure": {"date": {"start": f"2026-01-{days + 1:02d}"}}},
            ),
        )

    def names(**query: Any) -> list[str]:
        return [
            "".join(t["plain_text"] for t in p["properties"]["Name"]["title"])
            for p in iter_pages(notion, ledger, **query)
        ]

    assert names(filter={"property": "Tier", "select": {"equals": "C"}}) == [
        "seo_audit",
        "morning_digest",
        "model_roll",
    ]
    assert names(filter={"property": "Behavior ID", "rich_text": {"equals": "bhv-tagging"}}) == [
        "tagging"
    ]
    assert names(filter={"property": "Name", "title": {"contains": "POST"}}) == ["publish_posts"]
    assert names(filter={"property": "Clean days", "number": {"greater_than_or_equal_to": 7}}) == [
        "seo_audit",
        "morning_digest",
        "model_roll",
    ]
    assert names(filter={"property": "Quarantined", "checkbox": {"equals": True}}) == [
        "seo_audit",
        "webhook_logger",
    ]
    assert names(
        filter={"property": "Last gate failure", "date": {"on_or_after": "2026-01-08"}}
    ) == ["seo_audit", "morning_digest", "model_roll"]
    compound = {
        "or": [
            {"property": "Tier", "select": {"equals": "A"}},
            {
                "and": [
                    {"property": "Tier", "select": {"equals": "B"}},
                    {"property": "Quarantined", "checkbox": {"equals": True}},
                ]
            },
        ]
    }
    assert names(filter=compound) == ["tagging", "webhook_logger", "content_pipeline"]
    assert names(sorts=[{"property": "Clean days", "direction": "descending"}]) == [
        "morning_digest",
        "model_roll",
        "seo_audit",
        "webhook_logger",
        "publish_posts",
        "content_pipeline",
        "tagging",
    ]
    # select sorts follow the schema's option order (A, B, C), not the alphabet
    by_tier = names(
        sorts=[
            {"property": "Tier", "direction": "ascending"},
            {"property": "Name", "direction": "ascending"},
        ]
    )
    assert by_tier == [
        "content_pipeline",
        "tagging",
        "publish_posts",
        "webhook_logger",
        "model_roll",
        "morning_digest",
        "seo_audit",
    ]

    first = notion.data_sources.query(ledger, page_size=3)
    assert len(first["results"]) == 3 and first["has_more"] is True
    assert first["next_cursor"] == fast.rows(ledger)[3]["_id"]
    assert len(names(page_size=3)) == 7
    assert len(fast.requests("POST /v1/data_sources/*/query")) >= 3


def test_a_filter_that_does_not_fit_the_schema_is_refused(
    fast: NotionServer, notion: notion_client.Client, ledger: str
) -> None:
    fast.invalid_allowed = True
    with pytest.raises(APIResponseError, match="Could not find property with name or id: Nope"):
        notion.data_sources.query(ledger, filter={"property": "Nope", "select": {"equals": "A"}})
    with pytest.raises(APIResponseError, match="Tier is a select property"):
        notion.data_sources.query(ledger, filter={"property": "Tier", "rich_text": {"equals": "A"}})
    with pytest.raises(APIResponseError, match="start_cursor provided is invalid"):
        notion.data_sources.query(ledger, start_cursor="not-a-cursor")


def test_an_unknown_or_mistyped_property_is_refused_by_name_and_recorded_as_invalid(
    fast: NotionServer, notion: notion_client.Client, ledger: str
) -> None:
    fast.invalid_allowed = True
    parent = {"type": "data_source_id", "data_source_id": ledger}
    with pytest.raises(APIResponseError) as unknown:
        notion.pages.create(parent=parent, properties={"Promoted": {"checkbox": True}})
    assert unknown.value.code == APIErrorCode.ValidationError
    assert unknown.value.status == 400
    assert str(unknown.value) == "Promoted is not a property that exists."
    with pytest.raises(APIResponseError) as mistyped:
        notion.pages.create(parent=parent, properties={"Clean days": {"rich_text": text("3")}})
    assert str(mistyped.value) == "Clean days is expected to be number."
    with pytest.raises(APIResponseError, match=r"text\.content\.length should be ≤ `2000`"):
        notion.pages.create(parent=parent, properties={"Name": {"title": text("x" * 2001)}})

    invalid = fast.invalid_requests()
    assert [r.key for r in invalid] == ["POST /v1/pages"] * 3
    assert invalid[0].problem == "Promoted is not a property that exists."
    assert fast.rows(ledger) == []


def test_requests_off_the_published_description_get_notions_validation_error(
    fast: NotionServer, notion: notion_client.Client, ledger: str
) -> None:
    fast.invalid_allowed = True
    with pytest.raises(APIResponseError) as no_parent_id:
        notion.pages.create(parent={"type": "data_source_id"}, properties={})
    assert no_parent_id.value.code == APIErrorCode.ValidationError
    assert str(no_parent_id.value).startswith("body failed validation: body.parent")
    with pytest.raises(APIResponseError, match=r"body\.sorts"):
        notion.data_sources.query(ledger, sorts=[{"property": "Tier", "direction": "up"}])
    assert len(fast.invalid_requests()) == 2
    assert all(r.problem for r in fast.invalid_requests())


def test_a_bearer_token_and_the_notion_version_are_required(fast: NotionServer) -> None:
    fast.invalid_allowed = True
    with pytest.raises(APIResponseError) as unauthorized:
        notion_client.Client(auth="ntn_wrong", base_url=fast.url).users.me()
    assert unauthorized.value.code == APIErrorCode.Unauthorized
    assert unauthorized.value.status == 401

    answer = httpx.get(f"{fast.url}/v1/users/me", headers={"Authorization": "Bearer ntn_test"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "missing_version"
    old = notion_client.Client(auth="ntn_test", base_url=fast.url, notion_version="2022-06-28")
    with pytest.raises(APIResponseError, match="speaks 2025-09-03 only"):
        old.users.me()
    # a recorded request carries no credential
    assert all("authorization" not in r.headers for r in fast.requests())
    assert fast.requests()[0].authorized is False


def test_last_edited_time_is_rounded_down_so_only_an_overlapping_read_back_sees_every_edit(
    make_notion_server: MakeNotion,
) -> None:
    clock = FakeClock(datetime(2026, 1, 4, 10, 0, 10, tzinfo=UTC))
    server = make_notion_server(clock=clock, rate_limit=None)
    client = notion_client.Client(auth="ntn_test", base_url=server.url)
    _, ds_id = create_ledger(client, server.add_page())
    page = client.pages.create(
        parent={"type": "data_source_id", "data_source_id": ds_id},
        properties=ledger_row("seo_audit", "C", 7, Status={"status": {"name": "In progress"}}),
    )
    assert page["created_time"] == "2026-01-04T10:00:00.000Z"

    # the reader reads at 10:00:30; the operator decides at 10:00:50, both in minute 10:00
    clock.set(datetime(2026, 1, 4, 10, 0, 30, tzinfo=UTC))
    last_read = clock()
    clock.set(datetime(2026, 1, 4, 10, 0, 50, tzinfo=UTC))
    reviewer = server.add_person("Rita Reviewer")
    server.edit_as_person(page["id"], {"Status": {"status": {"name": "Done"}}}, reviewer)
    clock.set(datetime(2026, 1, 4, 10, 3, 0, tzinfo=UTC))

    def edited_since(at: str) -> list[dict[str, Any]]:
        answer = client.data_sources.query(
            ds_id, filter={"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": at}}
        )
        results: list[dict[str, Any]] = answer["results"]
        return results

    # Notion kept the edit at 10:00:00, so a read from the exact previous read time misses it
    assert edited_since(last_read.isoformat()) == []
    # a read that overlaps by the minute Notion rounds to finds it, with who decided
    overlapping = last_read.replace(second=0).isoformat()
    (found,) = edited_since(overlapping)
    assert found["last_edited_time"] == "2026-01-04T10:00:00.000Z"
    assert found["last_edited_by"] == {"object": "user", "id": reviewer}
    assert found["properties"]["Status"]["status"]["name"] == "Done"
    assert server.rows(ds_id)[0]["_last_edited_by"] == reviewer


def test_a_data_source_gains_and_renames_properties(
    fast: NotionServer, notion: notion_client.Client, ledger: str
) -> None:
    notion.pages.create(
        parent={"type": "data_source_id", "data_source_id": ledger},
        properties=ledger_row("seo_audit", "C", 7),
    )
    updated = notion.data_sources.update(
        ledger,
        properties={
            "Spend this period": {"number": {"format": "dollar"}},
            "Clean days": {"name": "Clean streak"},
            "Tags": None,
        },
    )
    assert updated["properties"]["Spend this period"]["number"]["format"] == "dollar"
    assert "Clean streak" in updated["properties"] and "Clean days" not in updated["properties"]
    assert "Tags" not in updated["properties"]
    (row,) = fast.rows(ledger)
    assert row["Clean streak"] == 7
    assert row["Spend this period"] is None
    assert fast.schema(ledger)["Spend this period"] == "number"


def test_a_page_body_of_headings_paragraphs_items_and_to_dos_is_appended_and_listed(
    fast: NotionServer, notion: notion_client.Client
) -> None:
    parent = fast.add_page("Elevated reports")
    report = notion.pages.create(
        parent={"type": "page_id", "page_id": parent},
        properties={"title": {"title": text("seo_audit: 3 proposals")}},
        children=[{"heading_2": {"rich_text": text("Proposals")}}],
    )
    notion.blocks.children.append(
        report["id"],
        children=[
            {"paragraph": {"rich_text": text("Batch 2026-W01")}},
            {"bulleted_list_item": {"rich_text": text("runs: 21, spend: $0.42")}},
            {"to_do": {"rich_text": text("Approve: rewrite title tags")}},
            {"to_do": {"rich_text": text("Approve: add sitemap")}, "type": "to_do"},
            {"divider": {}},
        ],
    )
    blocks = notion.blocks.children.list(report["id"], page_size=2)
    assert blocks["has_more"] is True and len(blocks["results"]) == 2
    plain = fast.blocks_of(report["id"])
    assert [(b["type"], b.get("text")) for b in plain] == [
        ("heading_2", "Proposals"),
        ("paragraph", "Batch 2026-W01"),
        ("bulleted_list_item", "runs: 21, spend: $0.42"),
        ("to_do", "Approve: rewrite title tags"),
        ("to_do", "Approve: add sitemap"),
        ("divider", None),
    ]
    fast.check_as_person(plain[3]["id"], True)
    assert notion.blocks.retrieve(plain[3]["id"])["to_do"]["checked"] is True
    assert notion.pages.retrieve(report["id"])["last_edited_by"]["id"] == fast.operator.id
    assert fast.blocks_of(parent)[0]["type"] == "child_page"
    assert notion.search(query="3 proposals")["results"][0]["id"] == report["id"]


def test_notion_client_waits_retry_after_when_the_rate_limit_is_reached(
    notion_server: NotionServer, notion: notion_client.Client
) -> None:
    # three quick requests use the burst; the fourth is refused and retried after 1 s
    started = time.monotonic()
    for _ in range(4):
        assert notion.users.me()["object"] == "user"
    elapsed = time.monotonic() - started
    statuses = [r.status for r in notion_server.requests()]
    assert statuses == [200, 200, 200, 429, 200]
    refused = notion_server.requests()[3]
    assert refused.answer["code"] == "rate_limited"
    assert elapsed >= 0.9


def test_an_injected_429_is_retried_by_notion_client_then_surfaces_after_two_retries(
    fast: NotionServer, notion: notion_client.Client
) -> None:
    fast.inject("rate_limited", "GET /v1/users/me", times=1, retry_after=0)
    assert notion.users.me()["type"] == "bot"
    assert [r.status for r in fast.requests()] == [429, 200]
    assert fast.requests()[0].fault == "rate_limited"

    fast.clear_requests()
    fast.inject("rate_limited", "/v1/users/*", times=None, retry_after=0)
    with pytest.raises(APIResponseError) as limited:
        notion.users.me()
    assert limited.value.code == APIErrorCode.RateLimited
    assert len(fast.requests()) == 3  # the first try and notion-client's two retries


def test_server_errors_are_retried_on_reads_but_not_on_writes(
    fast: NotionServer, ledger: str
) -> None:
    quick = notion_client.client.RetryOptions(initial_retry_delay_ms=20)
    notion = notion_client.Client(auth="ntn_test", base_url=fast.url, retry=quick)
    fast.inject("error", "GET *", status=503, times=1)
    assert notion.data_sources.retrieve(ledger)["id"] == ledger

    fast.inject("error", "POST /v1/pages", status=500, times=1)
    with pytest.raises(APIResponseError) as failed:
        notion.pages.create(
            parent={"type": "data_source_id", "data_source_id": ledger},
            properties=ledger_row("seo_audit", "C", 7),
        )
    assert failed.value.code == APIErrorCode.InternalServerError
    assert fast.rows(ledger) == []

    fast.inject("error", status=502, times=1)
    with pytest.raises(notion_client.errors.UnknownHTTPResponseError):
        notion.users.me()


def test_a_timed_out_create_still_happened_so_a_lookup_by_key_finds_it(
    fast: NotionServer, ledger: str
) -> None:
    impatient = notion_client.Client(auth="ntn_test", base_url=fast.url, timeout_ms=200)
    fast.inject("slow", "POST /v1/pages", delay=1.0)
    with pytest.raises(RequestTimeoutError):
        impatient.pages.create(
            parent={"type": "data_source_id", "data_source_id": ledger},
            properties=ledger_row("seo_audit", "C", 7),
        )
    found = impatient.data_sources.query(
        ledger, filter={"property": "Behavior ID", "rich_text": {"equals": "bhv-seo_audit"}}
    )
    assert len(found["results"]) == 1


def test_hangs_drops_and_outages_look_like_a_notion_that_is_not_answering(
    fast: NotionServer,
) -> None:
    impatient = notion_client.Client(auth="ntn_test", base_url=fast.url, timeout_ms=300)
    fast.inject("hang", "GET /v1/users/me")
    with pytest.raises(RequestTimeoutError):
        impatient.users.me()

    fast.inject("drop", "GET /v1/users/me")
    with pytest.raises(httpx.RemoteProtocolError):
        impatient.users.me()

    fast.inject("drop_after_write", "POST /v1/search")
    with pytest.raises(httpx.RemoteProtocolError):
        impatient.search(query="")
    assert fast.requests("POST /v1/search")[0].status == 200

    page = fast.add_page("kept across the outage")
    with fast.outage(), pytest.raises(httpx.ConnectError):
        impatient.pages.retrieve(page)
    assert impatient.pages.retrieve(page)["id"] == page


def test_faults_can_last_for_a_while_and_be_cleared(fast: NotionServer) -> None:
    client = notion_client.Client(
        auth="ntn_test", base_url=fast.url, retry=notion_client.client.RetryOptions(max_retries=0)
    )
    fast.inject("error", status=503, seconds=0.3)
    for _ in range(3):
        with pytest.raises(APIResponseError):
            client.users.me()
    time.sleep(0.35)
    assert client.users.me()["type"] == "bot"

    fast.inject("error", status=504, times=None)
    with pytest.raises(APIResponseError) as timeout:
        client.users.me()
    assert timeout.value.code == APIErrorCode.GatewayTimeout
    fast.clear_faults()
    assert client.users.me()["type"] == "bot"


def test_the_rate_limit_can_be_set_per_test(fast: NotionServer) -> None:
    fast.set_rate_limit(RateLimit(per_second=1.0, burst=1))
    client = notion_client.Client(
        auth="ntn_test", base_url=fast.url, retry=notion_client.client.RetryOptions(max_retries=0)
    )
    client.users.me()
    with pytest.raises(APIResponseError) as limited:
        client.users.me()
    assert limited.value.code == APIErrorCode.RateLimited
    assert limited.value.headers["retry-after"] == "1"


async def test_the_async_client_reads_and_writes_the_same_way(fast: NotionServer) -> None:
    parent = fast.add_page()
    async with notion_client.AsyncClient(auth="ntn_test", base_url=fast.url) as client:
        db = await client.databases.create(
            parent={"type": "page_id", "page_id": parent},
            title=text("Gate Failures"),
            initial_data_source={"properties": {"Failure ID": {"title": {}}}},
        )
        ds_id = db["data_sources"][0]["id"]
        await client.pages.create(
            parent={"type": "data_source_id", "data_source_id": ds_id},
            properties={"Failure ID": {"title": text("run-1/budget")}},
        )
        found = await client.data_sources.query(
            ds_id, filter={"property": "Failure ID", "title": {"equals": "run-1/budget"}}
        )
    assert len(found["results"]) == 1
    assert [r["Failure ID"] for r in fast.rows("Gate Failures")] == ["run-1/budget"]
