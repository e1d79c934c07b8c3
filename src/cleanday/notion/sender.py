"""The outbox's sender for the "notion" channel: each row becomes one upsert of its Notion row,
keyed by the data source's ID property, its page ID kept in the ledger database.

One state change costs one request: a row whose page is known is updated (`PATCH
/v1/pages/{id}`), a new row is created (`POST /v1/pages`). Before a create, the intent is
stored; a create that got no answer (a timeout, a dropped connection) leaves the intent without
a page, and the next attempt first looks the row up by its key (a query of the data source), so
a row is never created twice. A sender that raises leaves the outbox row queued: the outbox
retries it later, in order.
"""

from __future__ import annotations

from typing import Any

import notion_client
from notion_client.errors import APIResponseError
from sqlalchemy import Engine

from cleanday.config import Settings
from cleanday.errors import NotionSetupError
from cleanday.notion.client import async_client
from cleanday.notion.evidence import streak_evidence
from cleanday.notion.pacing import Pacing
from cleanday.notion.rows import NotionRow, notion_row
from cleanday.notion.schema import LEDGER
from cleanday.notion.store import NotionStore, StoredDataSource
from cleanday.outbox import Pending

CHANNEL = "notion"


class NotionSender:
    """`async (Pending) -> note` for `OutboxDelivery`, on `client` (paced, with retries)."""

    def __init__(
        self,
        client: notion_client.AsyncClient,
        store: NotionStore,
        *,
        temporal_ui: str,
        namespace: str = "default",
    ) -> None:
        self.client = client
        self.store = store
        self.temporal_ui = temporal_ui
        self.namespace = namespace
        self._sources: dict[str, StoredDataSource] = {}

    async def __call__(self, row: Pending) -> str:
        payload = row.payload
        if row.kind == "review_row" and "evidence" not in payload:  # the streak, as written
            with self.store.engine.connect() as conn:
                payload = {**payload, "evidence": streak_evidence(conn, payload["behavior"])}
        target = notion_row(row.kind, payload, self.temporal_ui, self.namespace)
        ds = self._data_source(target.spec.role)
        return await self.upsert(ds, target)

    def _data_source(self, role: str) -> StoredDataSource:
        if role not in self._sources:
            self._sources = self.store.data_sources()
        if role not in self._sources:
            raise NotionSetupError(
                f"no Notion data source for {role!r} yet: run "
                "`cleanday notion init --parent PAGE_ID` (the row waits in the outbox)"
            )
        return self._sources[role]

    async def upsert(self, ds: StoredDataSource, row: NotionRow) -> str:
        known = self.store.page(row.key)
        page_id = known.page_id if known is not None else None
        if known is not None and page_id is None:  # a create went unanswered: did it land?
            page_id = await self._find(ds, row)
            if page_id is not None:
                self.store.keep_page(row.key, row.spec.role, row.behavior, page_id)
                if not row.update:
                    return "found after an uncertain create"
        if page_id is not None:
            if not row.update:
                return "already written"
            try:
                await self.client.pages.update(page_id=page_id, properties=row.properties)
                return "updated"
            except APIResponseError as exc:
                if not _gone(exc):
                    raise
                # the row was deleted (or moved to the trash) in Notion: write it again
        self.store.keep_page(row.key, row.spec.role, row.behavior, None)  # the intent
        page: Any = await self.client.pages.create(
            parent={"type": "data_source_id", "data_source_id": ds.data_source_id},
            properties=row.properties,
        )
        self.store.keep_page(row.key, row.spec.role, row.behavior, str(page["id"]))
        return "created"

    async def _find(self, ds: StoredDataSource, row: NotionRow) -> str | None:
        answer: Any = await self.client.data_sources.query(
            data_source_id=ds.data_source_id,
            filter={"property": row.spec.key, "rich_text": {"equals": row.key}},
            page_size=1,
        )
        results = [r for r in answer.get("results", []) if not r.get("in_trash")]
        return str(results[0]["id"]) if results else None


def _gone(exc: APIResponseError) -> bool:
    """Notion's answer to an update of a page that was deleted or is in the trash."""
    return exc.code == "object_not_found" or (
        exc.code == "validation_error" and "archived" in str(exc).lower()
    )


def notion_sender(settings: Settings, engine: Engine) -> NotionSender:
    """The sender of `settings` (NOTION_TOKEN, NOTION_BASE_URL), paced with every instance
    that shares `engine`'s ledger database."""
    pacing = Pacing(engine, rate=settings.notion_rate)
    return NotionSender(
        async_client(settings, pacing),
        NotionStore(engine),
        temporal_ui=settings.resolved_temporal_ui_url,
        namespace=settings.temporal_namespace,
    )


def notion_row_url(engine: Engine, behavior: str) -> str | None:
    """The behavior's Promotion Ledger row in Notion (for the Slack alert), once it was written."""
    return NotionStore(engine).row_url(LEDGER.role, behavior)
