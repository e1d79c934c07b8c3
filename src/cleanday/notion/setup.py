"""`cleanday notion init`: create, or adopt when present, the three data sources under the
operator's parent page, and keep their IDs in the ledger database.

A data source is found, in order: by the IDs kept from an earlier run; among the databases
under the parent page, by title (an earlier run whose answer was lost, or one the operator made);
else it is created with `POST /v1/databases` and its initial data source. An existing one must
have every property of `cleanday.notion.schema` with its type; what is missing or of another
type is reported by name and nothing is changed, so running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import notion_client
from notion_client.errors import APIResponseError, RequestTimeoutError

from cleanday.errors import NotionSetupError
from cleanday.notion.schema import SPECS, DataSourceSpec
from cleanday.notion.store import NotionStore, StoredDataSource


@dataclass(frozen=True, slots=True)
class InitResult:
    role: str
    title: str
    action: str  # "created" | "adopted" | "kept"
    data_source_id: str


def _text(title: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": title}}]


def _child_databases(client: notion_client.Client, page_id: str) -> dict[str, str]:
    """The databases directly under `page_id`: title -> database ID (the first of a title)."""
    found: dict[str, str] = {}
    cursor: str | None = None
    while True:
        kw: dict[str, Any] = {"block_id": page_id, "page_size": 100}
        if cursor:
            kw["start_cursor"] = cursor
        answer: Any = client.blocks.children.list(**kw)
        for block in answer["results"]:
            if block.get("type") == "child_database" and not block.get("in_trash"):
                found.setdefault(block["child_database"]["title"], block["id"])
        cursor = answer.get("next_cursor")
        if not answer.get("has_more") or not cursor:
            return found


def _checked(client: notion_client.Client, spec: DataSourceSpec, ds_id: str) -> dict[str, Any]:
    ds: Any = client.data_sources.retrieve(data_source_id=ds_id)
    problems = spec.problems(ds.get("properties", {}))
    if problems:
        raise NotionSetupError(
            f"Notion data source {spec.title!r} ({ds_id}): "
            + "; ".join(problems)
            + ". Fix it in Notion (or remove it to have cleanday create it), then run "
            "`cleanday notion init` again."
        )
    return dict(ds)


def _first_data_source(client: notion_client.Client, spec: DataSourceSpec, db_id: str) -> str:
    db: Any = client.databases.retrieve(database_id=db_id)
    sources = db.get("data_sources") or []
    if not sources:
        raise NotionSetupError(f"Notion database {spec.title!r} ({db_id}) has no data source")
    return str(sources[0]["id"])


def init(client: notion_client.Client, store: NotionStore, parent_page_id: str) -> list[InitResult]:
    """Create or adopt every data source under `parent_page_id`; returns what was done."""
    try:
        return _init(client, store, parent_page_id)
    except (APIResponseError, RequestTimeoutError, httpx.HTTPError) as exc:
        raise NotionSetupError(
            f"Notion at {client.options.base_url} did not do what init asked: "
            f"{type(exc).__name__}: {exc}. Nothing half-made is lost: run it again."
        ) from exc


def _init(
    client: notion_client.Client, store: NotionStore, parent_page_id: str
) -> list[InitResult]:
    try:
        client.pages.retrieve(page_id=parent_page_id)
    except APIResponseError as exc:
        raise NotionSetupError(
            f"Notion page {parent_page_id}: {exc.code}: {exc}. Share the page with the "
            "integration (••• > Connections) and pass its ID with --parent."
        ) from exc
    kept = store.data_sources()
    children: dict[str, str] | None = None
    out = []
    for spec in SPECS:
        stored = kept.get(spec.role)
        if stored is not None:
            try:
                _checked(client, spec, stored.data_source_id)
                out.append(InitResult(spec.role, spec.title, "kept", stored.data_source_id))
                continue
            except APIResponseError as exc:
                if exc.code != "object_not_found":
                    raise
            # deleted in Notion since: find it again or create it
        if children is None:
            children = _child_databases(client, parent_page_id)
        db_id = children.get(spec.title)
        if db_id is not None:
            ds_id = _first_data_source(client, spec, db_id)
            _checked(client, spec, ds_id)
            action = "adopted"
        else:
            db: Any = client.databases.create(
                parent={"type": "page_id", "page_id": parent_page_id},
                title=_text(spec.title),
                initial_data_source={"properties": dict(spec.properties)},
            )
            db_id, ds_id, action = db["id"], str(db["data_sources"][0]["id"]), "created"
        store.keep_data_source(
            StoredDataSource(spec.role, spec.title, parent_page_id, db_id, ds_id)
        )
        out.append(InitResult(spec.role, spec.title, action, ds_id))
    return out
