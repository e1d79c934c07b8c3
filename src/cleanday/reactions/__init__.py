"""Who reacts to what the ledger says: one table from each notice type to its reactions.

A reaction is a small function of one notice and the transaction it was raised in
(`cleanday.reactions.base.Context`). It may write to the ledger database on that connection (a
preset publication) and raise further notices (`ctx.notify`), and it returns the outbox
messages for the world outside (Slack, Notion, Temporal, OpenRouter), which are written in that
same transaction and delivered after it commits (`cleanday.outbox`). Adding a reaction is one
line in `HANDLERS` and one function in the module of its target.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection

from cleanday import outbox
from cleanday.notices import (
    Demoted,
    GateFailed,
    InfraErrored,
    ItemsSignedOff,
    Notice,
    PresetPublished,
    Promoted,
    Quarantined,
    Registered,
    ReviewClosed,
    ReviewOpened,
    StateChanged,
    StatusChanged,
)
from cleanday.outbox import Message
from cleanday.reactions import notion, presets, slack, temporal
from cleanday.reactions.base import Context, Reaction

HANDLERS: Mapping[type[Notice], Sequence[Reaction]] = {
    Registered: [presets.publish_at_registration, temporal.sync_schedule],
    GateFailed: [notion.gate_failure_rows, slack.gate_failure_alert],
    InfraErrored: [slack.infra_error_alert],
    Demoted: [slack.demotion_alert, presets.restore_for_demotion],
    Promoted: [slack.promotion_notice, presets.publish_for_promotion],
    PresetPublished: [presets.publish_remote],
    Quarantined: [slack.quarantine_notice],
    ReviewOpened: [notion.review_rows, slack.review_summary, slack.weekly_lines],
    ReviewClosed: [slack.review_closed],
    ItemsSignedOff: [temporal.wake_runs],
    StateChanged: [notion.ledger_row],
    StatusChanged: [temporal.sync_schedule],
}


class Reactions:
    """Runs the reactions of `handlers` to a transaction's notices, in the order raised, and
    writes their messages to the outbox on that transaction's connection."""

    def __init__(
        self,
        handlers: Mapping[type[Notice], Sequence[Reaction]] = HANDLERS,
        *,
        timezone: str = "UTC",
    ) -> None:
        self.handlers = handlers
        self.timezone = timezone  # the ledger's, handed to every reaction (`Context`)

    def __call__(self, notices: Sequence[Notice], conn: Connection, now: datetime) -> list[Message]:
        queue = deque(notices)
        messages: list[Message] = []
        while queue:
            notice = queue.popleft()
            reactions = self.handlers.get(type(notice))
            if not reactions:
                continue  # most notices of a run report: nothing reacts to them (yet)
            ctx = Context(conn, now, timezone=self.timezone)
            for react in reactions:
                messages.extend(react(notice, ctx))
            queue.extend(ctx.raised)
        return outbox.write(conn, messages, now)


__all__ = ["HANDLERS", "Context", "Reaction", "Reactions"]
