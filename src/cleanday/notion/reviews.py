"""The Sunday review's decisions, read back from Notion's Promotion Reviews.

During Sunday a job queries the data source for the week's rows edited since the previous read,
and records each Decision (Promote / Hold) through the ledger's decision call, "decided by" the
page's `last_edited_by`, through the door `notion`, decided at the page's `last_edited_time`.
Notion rounds that time down to the minute, so each read starts a minute before the previous
one began; reading a row twice records nothing twice (a decision already recorded from the same
edit is skipped). When another door and Notion both decide, the later one stands and both are
in the ledger: a Notion edit older than a decision already recorded from another door is
recorded as superseded (`cleanday show` lists it). Within the same minute the other door's
decision counts as the later one, since Notion's time is that minute's start.
The poll is the source of truth; a webhook only makes the next read come sooner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import notion_client

from cleanday import clock
from cleanday.domain import Decision
from cleanday.errors import CleandayError, NotionSetupError
from cleanday.ledger import LedgerService
from cleanday.notion.schema import REVIEWS
from cleanday.notion.store import NotionStore

log = logging.getLogger("cleanday.notion.reviews")

DOOR = "notion"
# Notion's last_edited_time is rounded down to the minute: overlap the previous read by one
OVERLAP = timedelta(minutes=1)


@dataclass
class ReadResult:
    week: date
    since: datetime
    recorded: list[tuple[str, str, str]] = field(default_factory=list)  # behavior, decision, by
    # recorded too, but a later decision from another door stands (behavior, decision, by)
    superseded: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # behavior, why


def _parse_time(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _plain(prop: dict[str, Any]) -> str:
    return "".join(t.get("plain_text", "") for t in prop.get(prop.get("type", ""), []) or [])


class ReviewReader:
    """Reads the decisions of a week's Promotion Reviews into `ledger` (one instance per
    service; it remembers when it last read, and starts from Sunday's beginning after a
    restart, which only reads more)."""

    def __init__(
        self,
        ledger: LedgerService,
        client: notion_client.Client,
        store: NotionStore,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.store = store
        self.now = now or ledger.now
        self.last_read: dict[date, datetime] = {}
        self._names: dict[str, str] = {}

    def read(self, week: date) -> ReadResult:
        """Record the decisions made in Notion for the review of `week` since the last read."""
        ds = self.store.data_sources().get(REVIEWS.role)
        if ds is None:
            raise NotionSetupError("no Promotion Reviews data source: run `cleanday notion init`")
        started = self.now()
        day_start, _ = clock.day_bounds(week, self.ledger.policy.timezone)
        since = max(day_start - OVERLAP, self.last_read.get(week, day_start) - OVERLAP)
        result = ReadResult(week, since)
        for page in self._edited(ds.data_source_id, week, since):
            self._record(page, week, result)
        self.last_read[week] = started
        return result

    def _edited(self, ds_id: str, week: date, since: datetime) -> list[dict[str, Any]]:
        query: dict[str, Any] = {
            "data_source_id": ds_id,
            "filter": {
                "and": [
                    {"timestamp": "last_edited_time",
                     "last_edited_time": {"on_or_after": since.isoformat()}},
                    {"property": "Week", "date": {"equals": week.isoformat()}},
                    {"property": "Decision", "select": {"is_not_empty": True}},
                ]
            },
            "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}],
            "page_size": 100,
        }  # fmt: skip
        pages: list[dict[str, Any]] = []
        while True:
            answer: Any = self.client.data_sources.query(**query)
            pages.extend(answer["results"])
            if not answer.get("has_more") or not answer.get("next_cursor"):
                return pages
            query["start_cursor"] = answer["next_cursor"]

    def _record(self, page: dict[str, Any], week: date, result: ReadResult) -> None:
        props = page["properties"]
        behavior = _plain(props["Behavior"])
        chosen = (props["Decision"].get("select") or {}).get("name", "")
        try:
            decision = Decision(chosen.lower())
        except ValueError:
            result.skipped.append((behavior, f"Decision {chosen!r} is neither Promote nor Hold"))
            return
        edited = _parse_time(page["last_edited_time"])
        by = self._name(page["last_edited_by"]["id"])
        if self._already_recorded(behavior, week, decision, edited):
            return  # this edit was recorded by an earlier read
        try:
            row = self.ledger.decide(behavior, week, decision, by=by, door=DOOR, decided_at=edited)
        except CleandayError as exc:
            result.skipped.append((behavior, str(exc)))
            return
        if row.superseded_by is not None:
            log.warning(
                "%s: Notion's %s by %s (edited %s) is older than %s, which stands",
                behavior, decision.value, by, edited.isoformat(), row.superseded_by,
            )  # fmt: skip
            result.superseded.append((behavior, decision.value, by))
            return
        result.recorded.append((behavior, decision.value, by))

    def _already_recorded(
        self, behavior: str, week: date, decision: Decision, edited: datetime
    ) -> bool:
        return any(
            d.behavior == behavior
            and d.door == DOOR
            and d.decision == decision
            and d.decided_at >= edited
            for d in self.ledger.decisions(week)
        )

    def _name(self, user_id: str) -> str:
        if user_id not in self._names:
            user: Any = self.client.users.retrieve(user_id=user_id)
            self._names[user_id] = str(user.get("name") or user_id)
        return self._names[user_id]
