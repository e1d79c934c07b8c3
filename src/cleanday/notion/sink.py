"""A Notion sink for acts: `content_pipeline`'s post and `morning_digest`'s digest become pages
under a configured parent page, everything else (and everything, with no NOTION_TOKEN) goes to
the file sink as before.

The act still runs only with its permit, inside the act activity; this is only where it lands.
Each page is keyed by the behavior and the action's identity (`cleanday.sinks.action_id`: its
`action_id`, or a hash of its kind, target and content, which names the run's day and item), so
an act retried after a crash never writes twice: a page already written is returned, and after
an uncertain create the parent's pages are searched for the page's marker before creating it
again. Requests take their slots from the same pacing as the outbox's Notion rows.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import notion_client
from sqlalchemy import Engine

from cleanday.config import Settings
from cleanday.errors import SinkError
from cleanday.notion.client import sync_client
from cleanday.notion.pacing import Pacing
from cleanday.notion.store import NotionStore
from cleanday.sinks import APPEND_LOG, FileSink, Sink, action_id
from cleanday.steps import Action

ROLE = "act_page"
_TEXT_LIMIT = 2000
_BLOCKS_PER_REQUEST = 100  # Notion's limit on children in one request


def _paragraphs(content: str) -> list[dict[str, Any]]:
    """The content as paragraph blocks, each under Notion's 2,000 characters."""
    chunks: list[str] = []
    for para in content.split("\n\n"):
        para = para.strip("\n")
        while para:
            chunks.append(para[:_TEXT_LIMIT])
            para = para[_TEXT_LIMIT:]
    return [
        {"type": "paragraph", "paragraph": {"rich_text": [{"type": "text",
                                                           "text": {"content": c}}]}}
        for c in chunks
    ]  # fmt: skip


class NotionSink:
    """Acts of `behaviors` (kinds other than append_log) as pages under `parent_page_id`; the
    rest through `fallback`."""

    def __init__(
        self,
        client: notion_client.Client,
        store: NotionStore,
        parent_page_id: str,
        fallback: Sink,
        behaviors: Collection[str],
    ) -> None:
        self.client = client
        self.store = store
        self.parent_page_id = parent_page_id
        self.fallback = fallback
        self.behaviors = frozenset(behaviors)

    def act(self, behavior: str, action: Action) -> str:
        if behavior not in self.behaviors or action.kind == APPEND_LOG:
            return self.fallback.act(behavior, action)
        key = f"{ROLE}:{behavior}:{action_id(action)}"
        marker = f"cleanday act {key}"
        known = self.store.page(key)
        if known is not None and known.page_id is not None:
            return str(known.url)
        page_id = self._find(marker) if known is not None else None  # an uncertain create
        if page_id is None:
            self.store.keep_page(key, ROLE, behavior, None)  # the intent
            page_id = self._create(action, marker)
        self.store.keep_page(key, ROLE, behavior, page_id)
        return str(self.store.page(key).url)  # type: ignore[union-attr]

    def _create(self, action: Action, marker: str) -> str:
        content = action.payload.get("content")
        if not isinstance(content, str):
            raise SinkError(f"a Notion page needs text content; {action.target!r} has none")
        title = str(action.payload.get("title") or action.target)
        blocks = [_paragraphs(marker)[0], *_paragraphs(content)]
        page: Any = self.client.pages.create(
            parent={"type": "page_id", "page_id": self.parent_page_id},
            properties={"title": {"title": [{"type": "text", "text": {"content": title}}]}},
            children=blocks[:_BLOCKS_PER_REQUEST],
        )
        rest = blocks[_BLOCKS_PER_REQUEST:]
        for i in range(0, len(rest), _BLOCKS_PER_REQUEST):
            self.client.blocks.children.append(
                block_id=page["id"], children=rest[i : i + _BLOCKS_PER_REQUEST]
            )
        return str(page["id"])

    def _find(self, marker: str) -> str | None:
        """The page under the parent whose first block is `marker`."""
        kw: dict[str, Any] = {"block_id": self.parent_page_id, "page_size": 100}
        while True:
            answer: Any = self.client.blocks.children.list(**kw)
            for block in answer["results"]:
                if block.get("type") != "child_page":
                    continue
                first: Any = self.client.blocks.children.list(block_id=block["id"], page_size=1)
                texts = (
                    first["results"][0].get("paragraph", {}).get("rich_text", [])
                    if (first["results"])
                    else []
                )
                if "".join(t.get("plain_text", "") for t in texts) == marker:
                    return str(block["id"])
            if not answer.get("has_more") or not answer.get("next_cursor"):
                return None
            kw["start_cursor"] = answer["next_cursor"]


def sink_for(settings: Settings, engine: Engine) -> Sink:
    """The act sink of these settings: Notion for the configured behaviors when NOTION_TOKEN
    and a parent page (CLEANDAY_NOTION_SINK_PARENT, else `cleanday notion init`'s) are known,
    the file sink otherwise."""
    files = FileSink(settings.data_dir)
    if not settings.notion_token:
        return files
    store = NotionStore(engine)
    parent = settings.notion_sink_parent
    if not parent:
        kept = next(iter(store.data_sources().values()), None)
        parent = kept.parent_page_id if kept is not None else None
    if not parent:
        return files
    behaviors = [b.strip() for b in settings.notion_sink_behaviors.split(",") if b.strip()]
    client = sync_client(settings, Pacing(engine, rate=settings.notion_rate))
    return NotionSink(client, store, parent, files, behaviors)
