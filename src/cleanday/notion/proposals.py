"""Tier A's elevated report in Notion: a behavior's pending proposals become one page per batch
(under the parent page of `cleanday notion init`), each proposal's content with two to-dos,
"Approve <item>" and "Reject <item>". Reading the page back signs off the checked items through
the ledger's own sign-off calls (`LedgerService.approve` / `reject`), so a decision made there
writes the same entries and wakes the same runs as `cleanday batch approve`.

A batch is the proposals pending when it is posted that no earlier page shows; its page is
keyed by those item IDs. An item whose two to-dos are both checked is left for the operator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import notion_client
import sqlalchemy as sa

from cleanday.errors import CleandayError, NotionSetupError
from cleanday.ledger import LedgerService
from cleanday.ledger.schemas import PendingItemRow
from cleanday.models import T_NOTION_PAGES, T_PENDING
from cleanday.notion.schema import LEDGER
from cleanday.notion.store import NotionStore

REPORT = "proposal_report"  # a batch's page
ITEM = "proposal_item"  # an item shown on a page (its page ID: the batch's page)
APPROVE, REJECT = "Approve", "Reject"
_TEXT_LIMIT = 2000


@dataclass
class SignOffs:
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # item, why


def _rich(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": text[:_TEXT_LIMIT]}}]


def _blocks(items: Sequence[PendingItemRow]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        content = json.dumps(item.payload, indent=2, sort_keys=True, default=str)
        out += [
            {"type": "heading_3", "heading_3": {"rich_text": _rich(f"Proposal {item.item_id}")}},
            {"type": "paragraph", "paragraph": {"rich_text": _rich(content)}},
            {"type": "to_do", "to_do": {"rich_text": _rich(f"{APPROVE} {item.item_id}")}},
            {"type": "to_do", "to_do": {"rich_text": _rich(f"{REJECT} {item.item_id}")}},
        ]
    return out


def behaviors_with_proposals(engine: sa.Engine) -> list[str]:
    """The behaviors with proposals waiting for the operator."""
    p = T_PENDING.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(p.behavior)
                .where(p.status == "pending", p.kind == "proposal")
                .distinct()
                .order_by(p.behavior)
            ).scalars()
        )


class ProposalPages:
    def __init__(
        self, ledger: LedgerService, client: notion_client.Client, store: NotionStore
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.store = store
        self._names: dict[str, str] = {}

    def post(self, behavior: str) -> str | None:
        """One page for the pending proposals of `behavior` no page shows yet; its page ID (None
        when there are none)."""
        ds = self.store.data_sources().get(LEDGER.role)
        if ds is None:
            raise NotionSetupError("no Notion parent page yet: run `cleanday notion init`")
        pending = [i for i in self.ledger.items(behavior, status="pending") if i.kind == "proposal"]
        fresh = [i for i in pending if self.store.page(self._item_key(behavior, i)) is None]
        if not fresh:
            return None
        ids = sorted(i.item_id for i in fresh)
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:12]
        key = f"{REPORT}:{behavior}:{digest}"
        title = f"{behavior}: {len(ids)} proposal{'s' if len(ids) != 1 else ''} ({digest})"
        known = self.store.page(key)
        page_id = known.page_id if known is not None else None
        if known is not None and page_id is None:  # a create went unanswered: did it land?
            page_id = self._find(title)
        if page_id is None:
            self.store.keep_page(key, REPORT, behavior, None)
            page: Any = self.client.pages.create(
                parent={"type": "page_id", "page_id": ds.parent_page_id},
                properties={"title": {"title": _rich(title)}},
                children=_blocks(fresh),
            )
            page_id = str(page["id"])
        self.store.keep_page(key, REPORT, behavior, page_id)
        for i in fresh:
            self.store.keep_page(self._item_key(behavior, i), ITEM, behavior, page_id)
        return page_id

    def read(self, behavior: str) -> SignOffs:
        """Sign off the items checked on `behavior`'s pages that are still pending."""
        pending = {
            i.item_id for i in self.ledger.items(behavior, status="pending") if i.kind == "proposal"
        }
        result = SignOffs()
        if not pending:
            return result
        votes: dict[str, dict[str, str]] = {}  # item -> {Approve|Reject: who}
        for page_id in self._pages(behavior):
            for block in self._children(page_id):
                if block.get("type") != "to_do" or not block["to_do"].get("checked"):
                    continue
                text = "".join(t.get("plain_text", "") for t in block["to_do"]["rich_text"])
                verb, _, item = text.partition(" ")
                if verb in (APPROVE, REJECT) and item in pending:
                    votes.setdefault(item, {})[verb] = self._name(block["last_edited_by"]["id"])
        by_verb: dict[tuple[str, str], list[str]] = {}
        for item, vote in sorted(votes.items()):
            if len(vote) > 1:
                result.left.append((item, "both Approve and Reject are checked"))
                continue
            ((verb, who),) = vote.items()
            by_verb.setdefault((verb, who), []).append(item)
        for (verb, who), items in sorted(by_verb.items()):
            try:
                if verb == APPROVE:
                    self.ledger.approve(behavior, items, by=f"notion:{who}")
                    result.approved += items
                else:
                    self.ledger.reject(behavior, items, reason="rejected in Notion",
                                       by=f"notion:{who}")  # fmt: skip
                    result.rejected += items
            except CleandayError as exc:
                result.left += [(i, str(exc)) for i in items]
        return result

    def _item_key(self, behavior: str, item: PendingItemRow) -> str:
        return f"{ITEM}:{behavior}:{item.item_id}"

    def _pages(self, behavior: str) -> list[str]:
        p = T_NOTION_PAGES.c
        with self.store.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(p.page_id).where(
                        p.role == REPORT, p.behavior == behavior, p.page_id.is_not(None)
                    )
                ).scalars()
            )

    def _children(self, page_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kw: dict[str, Any] = {"block_id": page_id, "page_size": 100}
        while True:
            answer: Any = self.client.blocks.children.list(**kw)
            out += answer["results"]
            if not answer.get("has_more") or not answer.get("next_cursor"):
                return out
            kw["start_cursor"] = answer["next_cursor"]

    def _find(self, title: str) -> str | None:
        answer: Any = self.client.search(query=title, filter={"property": "object",
                                                               "value": "page"})  # fmt: skip
        for page in answer.get("results", []):
            prop = page.get("properties", {}).get("title", {})
            if "".join(t.get("plain_text", "") for t in prop.get("title", [])) == title:
                return str(page["id"])
        return None

    def _name(self, user_id: str) -> str:
        if user_id not in self._names:
            user: Any = self.client.users.retrieve(user_id=user_id)
            self._names[user_id] = str(user.get("name") or user_id)
        return self._names[user_id]
