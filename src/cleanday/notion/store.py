"""What the ledger database keeps of Notion: the data sources by role, the page of every row
cleanday wrote, by its key (NULL page while a create is uncertain), and the webhook's
verification token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cleanday.db import is_sqlite
from cleanday.models import T_NOTION_DATA_SOURCES, T_NOTION_PAGES, T_NOTION_WEBHOOK


@dataclass(frozen=True, slots=True)
class StoredDataSource:
    role: str
    title: str
    parent_page_id: str
    database_id: str
    data_source_id: str


@dataclass(frozen=True, slots=True)
class StoredPage:
    key: str
    role: str
    page_id: str | None  # None: a create was sent and not answered (look it up by key)
    url: str | None


def page_url(page_id: str) -> str:
    return f"https://www.notion.so/{page_id.replace('-', '')}"


class NotionStore:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- data sources -----------------------------------------------------------------------

    def data_sources(self) -> dict[str, StoredDataSource]:
        d = T_NOTION_DATA_SOURCES.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.role, d.title, d.parent_page_id, d.database_id, d.data_source_id)
            ).all()
        return {r.role: StoredDataSource(*r) for r in rows}

    def keep_data_source(self, ds: StoredDataSource) -> None:
        values = {
            "title": ds.title,
            "parent_page_id": ds.parent_page_id,
            "database_id": ds.database_id,
            "data_source_id": ds.data_source_id,
            "recorded_at": self.clock(),
        }
        with self.engine.begin() as conn:
            d = T_NOTION_DATA_SOURCES.c
            done = conn.execute(
                sa.update(T_NOTION_DATA_SOURCES).where(d.role == ds.role).values(**values)
            ).rowcount
            if not done:
                conn.execute(sa.insert(T_NOTION_DATA_SOURCES).values(role=ds.role, **values))

    # -- pages ------------------------------------------------------------------------------

    def page(self, key: str) -> StoredPage | None:
        p = T_NOTION_PAGES.c
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(p.key, p.role, p.page_id, p.url).where(p.key == key)).first()
        return None if r is None else StoredPage(*r)

    def intend(self, key: str, role: str, behavior: str | None) -> None:
        """Record that a create of `key` is about to be sent (kept if one already was)."""
        now = self.clock()
        row = {"key": key, "role": role, "behavior": behavior, "page_id": None, "url": None,
               "created_at": now, "updated_at": now}  # fmt: skip
        with self.engine.begin() as conn:
            insert = sqlite_insert if is_sqlite(conn) else pg_insert
            conn.execute(insert(T_NOTION_PAGES).values(**row).on_conflict_do_nothing())

    def keep_page(self, key: str, role: str, behavior: str | None, page_id: str | None) -> None:
        """The page of `key` (None: forget it, the row is to be created again)."""
        self.intend(key, role, behavior)
        url = page_url(page_id) if page_id else None
        p = T_NOTION_PAGES.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(T_NOTION_PAGES)
                .where(p.key == key)
                .values(page_id=page_id, url=url, updated_at=self.clock())
            )

    def row_url(self, role: str, behavior: str) -> str | None:
        p = T_NOTION_PAGES.c
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(p.url).where(
                    p.role == role, p.behavior == behavior, p.page_id.is_not(None)
                )
            ).scalar()

    # -- the webhook's verification token ---------------------------------------------------

    def keep_verification_token(self, token: str) -> str:
        """Keep `token` unless one is kept already, and return the one kept: the first stands,
        since anyone can post a token to the webhook and a second one would replace the key
        that signs the subscription's events."""
        row = {"name": "notion", "verification_token": token, "received_at": self.clock()}
        with self.engine.begin() as conn:
            insert = sqlite_insert if is_sqlite(conn) else pg_insert
            conn.execute(insert(T_NOTION_WEBHOOK).values(**row).on_conflict_do_nothing())
        kept = self.verification_token()
        assert kept is not None
        return kept

    def verification_token(self) -> str | None:
        w = T_NOTION_WEBHOOK.c
        with self.engine.connect() as conn:
            return conn.execute(sa.select(w.verification_token).where(w.name == "notion")).scalar()

    def forget_verification_token(self) -> bool:
        """Forget the kept token (to subscribe anew); False when none was kept."""
        with self.engine.begin() as conn:
            return bool(conn.execute(sa.delete(T_NOTION_WEBHOOK)).rowcount)
