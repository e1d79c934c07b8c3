"""`cleanday smoke notion --parent PAGE_ID`: with a real integration token, create a scratch data
source under the page, write a scratch row, read it back by its key, and move both to the
trash, reporting each step; the token is never printed. `NOTION_BASE_URL` picks the server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cleanday.config import Settings
from cleanday.notion.client import sync_client
from cleanday.smoke import SmokeResult, Steps

_KEY = "Smoke key"


def _plain(rich: list[dict[str, Any]]) -> str:
    return "".join(str(t.get("plain_text") or t.get("text", {}).get("content", "")) for t in rich)


def run_notion_smoke(
    settings: Settings, parent: str, clock: Callable[[], datetime] | None = None
) -> list[SmokeResult]:
    """users.me, the parent page, a scratch database and row, a query for the row, and the
    clean-up, one result each. A failed step stops the ones after it, but what was created is
    always moved to the trash."""
    secret = settings.notion_token or ""
    if not secret:
        return [SmokeResult("notion", "skipped", "NOTION_TOKEN is not set")]
    now = (clock or (lambda: datetime.now(UTC)))().isoformat(timespec="seconds")
    client = sync_client(settings, None)
    # each step reports its own failure; the client's retry warnings would only interleave
    client.logger.setLevel(logging.ERROR)
    key = f"smoke-{uuid.uuid4().hex[:12]}"
    title = f"cleanday smoke {now} (moved to the trash at once)"
    step = Steps(secret)
    results = step.results

    def auth() -> tuple[str, bool]:
        me: Any = client.users.me()
        return f"integration {me.get('name') or me.get('id')}", True

    def page() -> tuple[str, bool]:
        p: Any = client.pages.retrieve(page_id=parent)
        titles = [v["title"] for v in p.get("properties", {}).values() if v.get("type") == "title"]
        return f"parent page {_plain(titles[0]) if titles else parent!r} is shared", True

    def create() -> tuple[str, tuple[str, str]]:
        db: Any = client.databases.create(
            parent={"type": "page_id", "page_id": parent},
            title=[{"type": "text", "text": {"content": title}}],
            initial_data_source={"properties": {"Name": {"title": {}}, _KEY: {"rich_text": {}}}},
        )
        ds_id = str(db["data_sources"][0]["id"])
        return f"scratch data source {ds_id} in database {db['id']}", (str(db["id"]), ds_id)

    def write(ds_id: str) -> tuple[str, str]:
        row: Any = client.pages.create(
            parent={"type": "data_source_id", "data_source_id": ds_id},
            properties={
                "Name": {"title": [{"type": "text", "text": {"content": "cleanday smoke row"}}]},
                _KEY: {"rich_text": [{"type": "text", "text": {"content": key}}]},
            },
        )
        return f"scratch row {row['id']} (key {key})", str(row["id"])

    def read(ds_id: str, row_id: str) -> tuple[str, bool]:
        answer: Any = client.data_sources.query(
            data_source_id=ds_id, filter={"property": _KEY, "rich_text": {"equals": key}}
        )
        found = [r for r in answer.get("results", []) if not r.get("in_trash")]
        if [r["id"] for r in found] != [row_id]:
            ids = ", ".join(r["id"] for r in found) or "nothing"
            raise RuntimeError(f"the query for key {key} found {ids}, not the row {row_id}")
        name = _plain(found[0]["properties"]["Name"]["title"])
        if name != "cleanday smoke row":
            raise RuntimeError(f"the row read back has Name {name!r}, not 'cleanday smoke row'")
        return f"read row {row_id} back by its key", True

    def clean(db_id: str, row_id: str | None) -> tuple[str, bool]:
        if row_id is not None:
            client.pages.update(page_id=row_id, in_trash=True)
        client.databases.update(database_id=db_id, in_trash=True)
        what = "row and data source" if row_id is not None else "data source"
        return f"moved the scratch {what} to the trash", True

    try:
        if step("notion auth", auth) is None or step("notion parent", page) is None:
            return results
        made = step("notion create", create)
        if made is None:
            return results
        db_id, ds_id = made
        row_id = step("notion write", lambda: write(ds_id))
        if row_id is not None:
            step("notion read", lambda: read(ds_id, row_id))
        step("notion cleanup", lambda: clean(db_id, row_id))
        return results
    finally:
        client.close()
