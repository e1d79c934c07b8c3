"""Delivers the Slack outbox rows with slack-sdk, exactly once as far as Slack lets us.

- Each message carries its outbox row in `metadata` (`cleanday_outbox`: row ID and dedupe key);
  the `(channel, ts)` Slack answers is kept as the row's receipt.
- Slack has no idempotency key. After an uncertain send (a timeout, a lost connection, a 5xx),
  and before a target's first post since this process started (it may have died mid-send),
  `conversations.history` is searched for the row's metadata before posting again.
- Posts are paced per channel (`per_channel_s`, Slack's one message a second), and slack-sdk's
  `AsyncRateLimitErrorRetryHandler` (off by default) waits out a 429's Retry-After. The
  client's default connection-error retry is left out: it would post a lost answer twice.
- A row's target is its channel: the behavior's own (`CLEANDAY_SLACK_CHANNELS`) or the default
  (`CLEANDAY_SLACK_CHANNEL`), named once by `route`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from cleanday.errors import ConfigError, DeliveryError
from cleanday.outbox import Hold, Pending, Route, Sent
from cleanday.slack_groups import Group, Grouping, leading, render
from cleanday.slack_messages import Composer

log = logging.getLogger("cleanday.outbox")

METADATA_EVENT = "cleanday_outbox"
# how far before a row was written its message may carry a ts (clocks differ)
_HISTORY_SLACK = timedelta(minutes=5)
_HISTORY_PAGES = 20


def parse_channels(spec: str | None) -> dict[str, str]:
    """`CLEANDAY_SLACK_CHANNELS`: "behavior=#channel,other=#ops" -> {behavior: "#channel"}."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, channel = part.partition("=")
        if not sep or not name.strip() or not channel.strip():
            raise ConfigError(f"CLEANDAY_SLACK_CHANNELS: {part.strip()!r} is not behavior=#channel")
        out[name.strip()] = channel.strip()
    return out


def route(default: str, per_behavior: Mapping[str, str] | None = None) -> Route:
    """A row's channel: its behavior's, or the default."""
    channels = dict(per_behavior or {})

    def target(row: Pending) -> str:
        return channels.get(row.behavior or "", default)

    return target


class SlackSender:
    """The Slack channel's sender (`cleanday.outbox.Sender`)."""

    def __init__(
        self,
        token: str,
        base_url: str,
        composer: Composer,
        *,
        per_channel_s: float = 1.0,
        timeout_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        grouping: Grouping | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # only 429s are retried inside the client: its default connection-error handler would
        # post again a message whose answer was lost (a duplicate); that case is ours (find)
        self.client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=max(int(timeout_s), 1),
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        self.composer = composer
        self.grouping = grouping  # None: every row its own message
        self.clock = clock or (lambda: datetime.now(UTC))
        self._groups: dict[str, Group] = {}  # a channel's open group
        self.per_channel_s = per_channel_s
        self.monotonic = monotonic
        self._ids: dict[str, str] = {}  # a channel's name -> its ID
        self._last_post: dict[str, float] = {}
        self._checked: set[str] = set()  # targets searched since this process started
        self._uncertain: set[int] = set()  # rows whose last send may have reached Slack

    async def __call__(self, row: Pending) -> Sent:
        found = await self._recover(row)
        if found is not None:
            return Sent("already in Slack", found[0])
        text, blocks = self.composer.compose(row.kind, row.payload)
        return Sent("posted", await self._post(row.target, text, blocks, [row]))

    async def send_many(self, rows: Sequence[Pending]) -> tuple[int, Sent]:
        """A channel's next rows: alerts grouped (`cleanday.slack_groups`), the rest alone."""
        head = rows[0]
        g = self.grouping
        batch = leading(rows)
        if g is None or not batch:
            return 1, await self(head)
        found = await self._recover(head)
        if found is not None:
            receipt, ids = found
            n = next((i for i, r in enumerate(rows) if r.id not in ids), len(rows))
            return max(n, 1), Sent("already in Slack", receipt)
        now = self.clock()
        channel = head.target
        group = self._groups.get(channel)
        if group is not None and now - group.updated_at > g.close_after:
            group = None  # quiet long enough: the next alert opens a new group
        if group is None:
            due = (head.created_at or now) + g.group_wait
            if now < due:
                raise Hold(due)
            text, blocks = render(self.composer, batch)
            receipt = await self._post(channel, text, blocks, batch)
            self._groups[channel] = Group(receipt["channel"], receipt["ts"], list(batch), now)
            return len(batch), Sent(f"posted a group of {len(batch)}", receipt)
        due = group.updated_at + g.group_interval
        if now < due:
            raise Hold(due)
        combined = [*group.rows, *batch]
        if len(combined) > g.threshold:  # a storm: one digest of every later alert
            text, blocks = render(self.composer, batch)
            receipt = await self._post(channel, text, blocks, batch)
            self._groups[channel] = Group(receipt["channel"], receipt["ts"], list(batch), now)
            return len(batch), Sent(f"posted a digest of {len(batch)}", receipt)
        text, blocks = render(self.composer, combined)
        await self._update(group, text, blocks, combined)
        group.rows, group.updated_at = combined, now
        receipt = {"channel": group.channel_id, "ts": group.ts}
        return len(batch), Sent("added to its group's message", receipt)

    async def _recover(self, row: Pending) -> tuple[dict[str, str], set[int]] | None:
        """After an uncertain send, a retry, or before a target's first post since this process
        started: the message that already carries `row`, and the rows it carries."""
        channel = row.target
        if not channel:
            raise DeliveryError(f"outbox row {row.id} has no Slack channel to go to")
        if row.id in self._uncertain or row.attempts > 0 or channel not in self._checked:
            found = await self.find(channel, row)
            self._checked.add(channel)
            if found is not None:
                self._uncertain.discard(row.id)
                return found
        return None

    def _metadata(self, rows: Sequence[Pending]) -> dict[str, Any]:
        head = rows[0]
        return {
            "event_type": METADATA_EVENT,
            "event_payload": {
                "outbox_id": head.id,
                "dedupe_key": head.dedupe_key,
                "rows": [r.id for r in rows],
            },
        }

    async def _post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], rows: Sequence[Pending]
    ) -> dict[str, str]:
        await self._pace(channel)
        answer = await self._send(
            rows, "chat_postMessage", channel=channel, text=text, blocks=blocks,
            metadata=self._metadata(rows), unfurl_links=False, unfurl_media=False,
        )  # fmt: skip
        channel_id = str(answer["channel"])
        self._ids.setdefault(channel, channel_id)
        self._checked.add(channel)
        return {"channel": channel_id, "ts": str(answer["ts"])}

    async def _update(
        self, group: Group, text: str, blocks: list[dict[str, Any]], rows: Sequence[Pending]
    ) -> None:
        await self._send(
            rows, "chat_update", channel=group.channel_id, ts=group.ts, text=text,
            blocks=blocks, metadata=self._metadata(rows),
        )  # fmt: skip

    async def _send(self, rows: Sequence[Pending], method: str, **args: Any) -> Any:
        head = rows[0]
        where = args["channel"]
        try:
            answer = await getattr(self.client, method)(**args)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if status >= 500:  # a gateway's or Slack's error: the post may have happened
                self._uncertain.add(head.id)
            raise DeliveryError(f"Slack answered {status} {error or ''} to "
                                f"{method.replace('_', '.')} in {where}") from None  # fmt: skip
        except Exception as exc:  # no answer (a timeout, a lost connection): it may be posted
            self._uncertain.add(head.id)
            raise DeliveryError(
                f"no answer from Slack ({type(exc).__name__}: {exc}); "
                "its history is searched before this row is posted again"
            ) from None
        self._uncertain.discard(head.id)
        return answer

    async def _pace(self, channel: str) -> None:
        last = self._last_post.get(channel)
        if last is not None:
            wait = last + self.per_channel_s - self.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_post[channel] = self.monotonic()

    async def find(self, channel: str, row: Pending) -> tuple[dict[str, str], set[int]] | None:
        """The `(channel, ts)` of the message that already carries this row, if Slack has it,
        and the outbox rows that message carries."""
        channel_id = await self.channel_id(channel)
        oldest = (row.created_at - _HISTORY_SLACK).timestamp() if row.created_at else 0.0
        cursor: str | None = None
        for _ in range(_HISTORY_PAGES):
            args: dict[str, Any] = {
                "channel": channel_id, "oldest": f"{oldest:.6f}", "limit": 200,
                "include_all_metadata": True,
            }  # fmt: skip
            if cursor:
                args["cursor"] = cursor
            page = await self._call("conversations_history", **args)
            for m in page.get("messages") or []:
                meta = m.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") != METADATA_EVENT:
                    continue
                ids = {int(i) for i in payload.get("rows") or [payload.get("outbox_id")] if i}
                head = payload.get("outbox_id") == row.id
                if (head and payload.get("dedupe_key") == row.dedupe_key) or (
                    not head and row.id in ids
                ):
                    return {"channel": channel_id, "ts": str(m["ts"])}, ids | {row.id}
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return None
        return None

    async def channel_id(self, channel: str) -> str:
        """A channel's ID from its name (`#alerts`, `alerts`) or ID."""
        known = self._ids.get(channel)
        if known is not None:
            return known
        name = channel.removeprefix("#")
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"types": "public_channel,private_channel", "limit": 200}
            if cursor:
                args["cursor"] = cursor
            page = await self._call("conversations_list", **args)
            for c in page.get("channels") or []:
                if name in (c.get("id"), c.get("name")):
                    self._ids[channel] = str(c["id"])
                    return self._ids[channel]
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                raise DeliveryError(
                    f"no Slack channel {channel} that the bot can see; create it and invite "
                    "the bot, or name another in CLEANDAY_SLACK_CHANNEL(S)"
                )

    async def _call(self, method: str, **args: Any) -> Any:
        try:
            return await getattr(self.client, method)(**args)
        except SlackApiError as exc:
            raise DeliveryError(
                f"Slack answered {exc.response.status_code} "
                f"{exc.response.get('error') or ''} to {method.replace('_', '.')}"
            ) from None
        except Exception as exc:
            raise DeliveryError(f"no answer from Slack to {method.replace('_', '.')}: "
                                f"{type(exc).__name__}: {exc}") from None  # fmt: skip


def grouping_of(settings: Any) -> Grouping:
    return Grouping(
        group_wait=timedelta(seconds=settings.slack_group_wait_s),
        group_interval=timedelta(seconds=settings.slack_group_interval_s),
        close_after=timedelta(seconds=settings.slack_group_close_s),
        threshold=settings.slack_storm_threshold,
    )


def from_settings(
    settings: Any,
    tz: Any,
    notion_row_url: Callable[[str], str | None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> tuple[SlackSender, Route] | None:
    """The Slack sender and route of `settings`, or None without SLACK_BOT_TOKEN (delivery off:
    the outbox keeps every Slack row until a token is set)."""
    if not settings.slack_token:
        return None
    from cleanday.slack_messages import no_notion_row

    composer = Composer(
        tz=tz,
        temporal_ui_url=settings.resolved_temporal_ui_url,
        namespace=settings.temporal_namespace,
        notion_row_url=notion_row_url or no_notion_row,
        review_url=f"{settings.resolved_service_url.rstrip('/')}/review",
    )
    sender = SlackSender(
        settings.slack_token,
        settings.slack_api_url,
        composer,
        per_channel_s=settings.slack_pace_s,
        grouping=grouping_of(settings),
        clock=clock,
    )
    return sender, route(settings.slack_channel, parse_channels(settings.slack_channels))
