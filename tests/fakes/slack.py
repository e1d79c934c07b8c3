"""A fake Slack Web API for the real `slack-sdk` to talk to.

Point the client at it with `WebClient(token="xoxb-test", base_url=server.api_url)`
(`SLACK_API_URL`). Every call's arguments are checked against
`../shared/specs/slack-web-openapi-v2.json` (with the arguments Slack added since, see
`tests.fakes.slack_spec`), Block Kit blocks and message metadata as Slack checks them
(`tests.fakes.slack_blocks`). It keeps channels (by ID and by name) and their messages, with
`ts` values unique and increasing and formatted as Slack's ("1767520800.000100"), edits and
metadata; it paces `chat.postMessage` per channel and other methods per tier, answering 429
with Retry-After and `{"ok": false, "error": "ratelimited"}` as Slack does.

Run it alone with `python -m tests.fakes.slack --port 0`; it then takes its orders through
the control API under `/_fake/`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from tests.fakes.serving import (
    Answer,
    FakeService,
    Fault,
    RateLimit,
    Received,
    public_headers,
    serve_forever,
    utc_now,
)
from tests.fakes.slack_blocks import block_errors, metadata_error
from tests.fakes.slack_spec import arguments, check_arguments

# Slack: chat.postMessage "generally allows one message per second per channel, with short
# bursts of more than one allowed"; it publishes no burst size. Three at once after a
# quiet second, then one a second: a client that paces passes, a flood gets 429 on the 4th.
SLACK_POST_MESSAGE_LIMIT = RateLimit(per_second=1.0, burst=3)

# Slack's rate-limit tiers, in calls per minute per method per workspace (each method's
# reference page names its tier; auth.test and chat.getPermalink are "special", tier 4-like)
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS = {
    "auth.test": 4,
    "chat.getPermalink": 4,
    "chat.update": 3,
    "chat.delete": 3,
    "conversations.history": 3,
    "conversations.info": 3,
    "conversations.list": 2,
}

# errors that mean the caller sent something Slack would never accept
INVALID_ERRORS = frozenset(
    {
        "invalid_arguments",
        "invalid_arg_name",
        "invalid_form_data",
        "invalid_json",
        "json_not_object",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "no_text",
        "msg_too_long",
        "unknown_method",
        "invalid_cursor",
        "invalid_ts_latest",
        "invalid_ts_oldest",
        "not_implemented",
    }
)
MAX_TEXT = 40_000
GATEWAY_PAGE = "<html><body><h1>{status} Gateway error</h1></body></html>"


def _slack_id(prefix: str) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "0" + "".join(secrets.choice(alphabet) for _ in range(9))


@dataclass
class Message:
    ts: str
    channel: str
    text: str
    user: str
    bot: bool
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edited: dict[str, str] | None = None
    deleted: bool = False


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool
    is_member: bool
    created: int
    is_archived: bool = False
    messages: list[Message] = field(default_factory=list)


class SlackError(Exception):
    def __init__(self, code: str, messages: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []


class SlackServer(FakeService):
    """The fake Slack. Python methods below seed and read it; `inject`, `outage` and friends
    (FakeService) make it misbehave."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        channels: tuple[str, ...] = ("general", "alerts"),
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        post_message_limit: RateLimit | None = SLACK_POST_MESSAGE_LIMIT,
        tier_limits: bool = True,
    ) -> None:
        if not token.startswith("xoxb-"):
            raise ValueError(f"the fake Slack takes a bot token (xoxb-...), not {token[:5]}...")
        super().__init__(monotonic)
        self.token = token
        self.clock = clock
        self.post_message_limit = self._initial_post_limit = post_message_limit
        self.tier_limits = self._initial_tiers = tier_limits
        self._initial_channels = channels
        self.team_id = "T0CLEANDAY"
        self.bot_user_id = "U0CLEANBOT"
        self.bot_id = "B0CLEANBOT"
        self.app_id = "A0CLEANAPP"
        self.channels: dict[str, Channel] = {}
        self._lock = threading.RLock()
        self._last_us = 0
        self._block_ids = itertools.count(1)
        for name in channels:
            self.add_channel(name)

    def reset(self) -> None:
        """The channels it started with, empty, and its default rate limits."""
        with self._lock:
            self.channels.clear()
            for name in self._initial_channels:
                self.add_channel(name)
            self.post_message_limit = self._initial_post_limit
            self.tier_limits = self._initial_tiers
        super().reset()

    # -- seeding and reading (for tests) -----------------------------------------------------

    @property
    def api_url(self) -> str:
        """What `SLACK_API_URL` and `WebClient(base_url=...)` take."""
        return self.url + "/api/"

    def env(self) -> dict[str, str]:
        return {"SLACK_API_URL": self.api_url, "SLACK_BOT_TOKEN": self.token}

    def set_rate_limits(
        self, post_message: RateLimit | None = SLACK_POST_MESSAGE_LIMIT, tiers: bool = True
    ) -> None:
        """Pace chat.postMessage per channel at `post_message` (None: not at all) and the
        other methods by their tiers (or not)."""
        self.post_message_limit = post_message
        self.tier_limits = tiers
        self.buckets.reset()

    def add_channel(self, name: str, *, is_private: bool = False, is_member: bool = True) -> str:
        with self._lock:
            name = name.removeprefix("#")
            if any(c.name == name for c in self.channels.values()):
                raise ValueError(f"channel #{name} exists already")
            channel = Channel(
                _slack_id("C"), name, is_private, is_member, int(self.clock().timestamp())
            )
            self.channels[channel.id] = channel
            return channel.id

    def channel_id(self, name_or_id: str) -> str:
        with self._lock:
            channel = self._find(name_or_id)
            if channel is None:
                raise KeyError(f"no channel {name_or_id}; there are {self._names()}")
            return channel.id

    def messages(self, channel: str, *, include_replies: bool = False) -> list[dict[str, Any]]:
        """A channel's messages (by name or ID), oldest first, deleted ones left out: dicts of
        ts, text, blocks, metadata, user, bot (bool), thread_ts and edited."""
        with self._lock:
            found = self._find(channel)
            if found is None:
                raise KeyError(f"no channel {channel}; there are {self._names()}")
            return [
                {
                    "ts": m.ts,
                    "text": m.text,
                    "blocks": m.blocks,
                    "metadata": m.metadata,
                    "user": m.user,
                    "bot": m.bot,
                    "thread_ts": m.thread_ts,
                    "edited": m.edited,
                }
                for m in found.messages
                if not m.deleted and (include_replies or self._top_level(m))
            ]

    def post_as_user(self, channel: str, text: str, user: str = "U0OPERATOR") -> str:
        """A message from a person (that the bot cannot edit); returns its ts."""
        with self._lock:
            found = self._find(channel)
            if found is None:
                raise KeyError(f"no channel {channel}; there are {self._names()}")
            message = Message(self._next_ts(), found.id, text, user, bot=False)
            found.messages.append(message)
            return message.ts

    # -- FakeService -------------------------------------------------------------------------

    def record(self, request: Request, raw: bytes) -> Received:
        method = request.url.path.removeprefix("/api/")
        args, problem = self._arguments(request, raw)
        rec = Received(
            method=request.method,
            path=request.url.path,
            key=method,
            query=dict(request.query_params),
            headers=public_headers(request.scope["headers"]),
            body={k: v for k, v in args.items() if k != "token"},
            at=self.clock(),
        )
        rec.authorized = self._token(request, args) == self.token
        if problem:
            rec.notes.append(problem)
        return rec

    def fault_answer(self, fault: Fault) -> Answer:
        if fault.kind == "rate_limited":
            return self._ratelimited(fault.retry_after)
        if fault.status in (502, 504):
            # gateway errors come from the load balancer, as a page, not as JSON
            page = GATEWAY_PAGE.format(status=fault.status)
            return Answer(fault.status, page, media_type="text/html")
        code = "internal_error" if fault.status == 500 else "service_unavailable"
        return Answer(fault.status, {"ok": False, "error": code})

    async def answer(self, rec: Received, request: Request) -> Answer:
        raw = await request.body()
        answer = self._answer(rec, request, raw)
        body = answer.body
        refused = isinstance(body, dict) and body.get("ok") is False
        if refused and body.get("error") in INVALID_ERRORS:
            details = body.get("response_metadata", {}).get("messages", [])
            rec.valid = False
            rec.problem = body["error"] + (": " + "; ".join(details) if details else "")
        return answer

    def _answer(self, rec: Received, request: Request, raw: bytes) -> Answer:
        method = rec.key
        args, problem = self._arguments(request, raw)
        if problem:
            return self._error(problem)
        token = self._token(request, args)
        if not token:
            return self._error("not_authed")
        if token != self.token:
            return self._error("invalid_auth")
        if arguments(method) is None:
            return Answer(200, {"ok": False, "error": "unknown_method", "req_method": method})
        handler = self._handlers().get(method)
        if handler is None:
            return self._error("not_implemented", [f"fake Slack does not serve {method}"])
        tier = METHOD_TIERS.get(method)
        if self.tier_limits and tier is not None:
            limit = RateLimit.per_minute(TIER_PER_MINUTE[tier])
            retry_after = self.buckets.take(("method", method), limit)
            if retry_after is not None:
                return self._ratelimited(retry_after)
        typed, problems, unknown = check_arguments(method, args)
        if unknown:
            rec.notes.append(f"arguments Slack ignores: {', '.join(unknown)}")
        if problems:
            return self._error("invalid_arguments", [f"[ERROR] {p}" for p in problems])
        try:
            with self._lock:
                return Answer(200, {"ok": True, **handler(typed)})
        except SlackError as exc:
            return self._error(exc.code, exc.messages)
        except _RateLimited as exc:
            return self._ratelimited(exc.retry_after)

    def _error(self, code: str, messages: list[str] | None = None) -> Answer:
        body: dict[str, Any] = {"ok": False, "error": code}
        if messages:
            body["response_metadata"] = {"messages": messages}
        return Answer(200, body)

    def _ratelimited(self, retry_after: int) -> Answer:
        return Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})

    def _arguments(self, request: Request, raw: bytes) -> tuple[dict[str, Any], str | None]:
        """The call's arguments from the query string and the body, as Slack merges them."""
        args: dict[str, Any] = dict(request.query_params)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not raw:
            return args, None
        if kind == "application/json":
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                return args, "invalid_json"
            if not isinstance(body, dict):
                return args, "json_not_object"
            return {**args, **body}, None
        if kind == "application/x-www-form-urlencoded":
            return {**args, **dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))}, None
        return args, "invalid_form_data"

    def _token(self, request: Request, args: dict[str, Any]) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth.removeprefix("Bearer ")
        token = args.get("token")
        return str(token) if token else None

    # -- control API (for a server run as a subprocess) ------------------------------------

    async def control(self, request: Request, body: Any) -> Answer:
        parts = request.url.path.strip("/").split("/")[1:]
        method = request.method
        try:
            if parts == ["channels"] and method == "POST":
                return Answer(200, {"id": self.add_channel(**body)})
            if len(parts) == 3 and parts[0] == "channels" and parts[2] == "messages":
                if method == "GET":
                    return Answer(200, self.messages(parts[1]))
                return Answer(200, {"ts": self.post_as_user(parts[1], **body)})
            if parts == ["rate_limits"] and method == "POST":
                limit = body.get("post_message")
                self.set_rate_limits(RateLimit(**limit) if limit else None, body.get("tiers", True))
                return Answer(200, body)
        except (KeyError, ValueError, TypeError) as exc:
            return Answer(400, {"error": str(exc)})
        return await super().control(request, body)

    # -- methods -----------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.getPermalink": self._permalink,
            "conversations.history": self._history,
            "conversations.info": self._info,
            "conversations.list": self._list,
        }

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://cleanday-test.slack.com/",
            "team": "cleanday test",
            "user": "cleanday",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable(args["channel"], by_name=True)
        text = args.get("text") or ""
        blocks, attachments = args.get("blocks"), args.get("attachments")
        self._check_content(text, blocks, args)
        retry_after = self.buckets.take(("post", channel.id), self.post_message_limit)
        if retry_after is not None:
            raise _RateLimited(retry_after)
        message = Message(
            self._next_ts(),
            channel.id,
            text,
            self.bot_user_id,
            bot=True,
            blocks=self._with_block_ids(blocks),
            attachments=attachments,
            metadata=args.get("metadata"),
            thread_ts=args.get("thread_ts"),
            reply_broadcast=bool(args.get("reply_broadcast")),
        )
        channel.messages.append(message)
        return {
            "channel": channel.id,
            "ts": message.ts,
            "message": self._message_json(message, metadata=True),
        }

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        # chat.update takes a channel ID only, not a name
        channel = self._writable(args["channel"], by_name=False)
        message = self._message(channel, str(args["ts"]))
        if not message.bot:
            raise SlackError("cant_update_message")
        text = args.get("text")
        blocks = args.get("blocks")
        if text is None and blocks is None and args.get("attachments") is None:
            raise SlackError("no_text")
        self._check_content(text or "", blocks, args, require_text=False)
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = self._with_block_ids(blocks)
        if args.get("attachments") is not None:
            message.attachments = args["attachments"]
        if args.get("metadata") is not None:
            message.metadata = args["metadata"]
        message.edited = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": self._message_json(message, metadata=True),
        }

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or args.get("ts") is None:
            raise SlackError("invalid_arguments", ["[ERROR] channel and ts are required"])
        channel = self._writable(args["channel"], by_name=False)
        message = self._message(channel, self._ts_text(args["ts"]))
        if not message.bot:
            raise SlackError("cant_delete_message")
        message.deleted = True
        return {"channel": channel.id, "ts": message.ts}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(args.get("channel"))
        message = self._message(channel, str(args.get("message_ts")))
        return {
            "channel": channel.id,
            "permalink": f"https://cleanday-test.slack.com/archives/{channel.id}/"
            f"p{message.ts.replace('.', '')}",
        }

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(args.get("channel"))
        if not channel.is_member:
            raise SlackError("not_in_channel")
        inclusive = bool(args.get("inclusive"))
        latest = float(args["latest"]) if args.get("latest") is not None else None
        oldest = float(args.get("oldest") or 0)
        limit = min(max(int(args.get("limit") or 100), 1), 999)
        items = [m for m in reversed(channel.messages) if not m.deleted and self._top_level(m)]

        def within(m: Message) -> bool:
            at = float(m.ts)
            upper = latest is None or (at <= latest if inclusive else at < latest)
            lower = at >= oldest if inclusive else at > oldest
            return upper and lower

        items = [m for m in items if within(m)]
        cursor = args.get("cursor")
        if cursor:
            start = self._cursor_ts(cursor)
            items = [m for m in items if float(m.ts) <= start]
        page, rest = items[:limit], items[limit:]
        with_metadata = bool(args.get("include_all_metadata"))
        next_cursor = self._cursor_for(rest[0].ts) if rest else ""
        return {
            "messages": [self._message_json(m, metadata=with_metadata) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._channel_json(self._readable(args.get("channel")))}

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        types = set(str(args.get("types") or "public_channel").split(","))
        visible = [
            c
            for c in self.channels.values()
            if (("private_channel" in types) if c.is_private else ("public_channel" in types))
            and (c.is_member or not c.is_private)
            and not (args.get("exclude_archived") and c.is_archived)
        ]
        limit = min(max(int(args.get("limit") or 100), 1), 1000)
        start = 0
        if args.get("cursor"):
            ids = [c.id for c in visible]
            wanted = self._decode_cursor(str(args["cursor"])).removeprefix("id:")
            if wanted not in ids:
                raise SlackError("invalid_cursor")
            start = ids.index(wanted)
        page, rest = visible[start : start + limit], visible[start + limit :]
        return {
            "channels": [self._channel_json(c) for c in page],
            "response_metadata": {
                "next_cursor": self._encode_cursor(f"id:{rest[0].id}") if rest else ""
            },
        }

    # -- helpers -----------------------------------------------------------------------------

    def _names(self) -> list[str]:
        return sorted(f"#{c.name}" for c in self.channels.values())

    def _find(self, name_or_id: str) -> Channel | None:
        if name_or_id in self.channels:
            return self.channels[name_or_id]
        name = name_or_id.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    def _readable(self, raw: Any) -> Channel:
        channel = self.channels.get(str(raw or ""))
        if channel is None or (channel.is_private and not channel.is_member):
            raise SlackError("channel_not_found")
        return channel

    def _writable(self, raw: str, *, by_name: bool) -> Channel:
        channel = self._find(raw) if by_name else self.channels.get(raw)
        if channel is None or (channel.is_private and not channel.is_member):
            raise SlackError("channel_not_found")
        if channel.is_archived:
            raise SlackError("is_archived")
        return channel

    def _message(self, channel: Channel, ts: str) -> Message:
        found = next((m for m in channel.messages if m.ts == ts and not m.deleted), None)
        if found is None:
            raise SlackError("message_not_found")
        return found

    def _check_content(
        self, text: str, blocks: Any, args: dict[str, Any], *, require_text: bool = True
    ) -> None:
        if require_text and not text and not blocks and not args.get("attachments"):
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            errors = block_errors(blocks)
            if errors:
                raise SlackError("invalid_blocks", errors)
        if args.get("metadata") is not None:
            problem = metadata_error(args["metadata"])
            if problem:
                raise SlackError(problem)

    def _with_block_ids(self, blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        # Slack gives every stored block a block_id when the sender did not
        if blocks is None:
            return None
        return [
            {**b, "block_id": b.get("block_id") or f"b{next(self._block_ids):04d}"} for b in blocks
        ]

    def _next_ts(self) -> str:
        # a ts is the post time in microseconds, made unique by stepping past the last one
        us = max(int(self.clock().timestamp() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _ts_text(self, raw: Any) -> str:
        if isinstance(raw, float):
            return f"{raw:.6f}"
        return str(raw)

    @staticmethod
    def _top_level(m: Message) -> bool:
        return m.thread_ts is None or m.thread_ts == m.ts or m.reply_broadcast

    def _encode_cursor(self, text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    def _decode_cursor(self, cursor: str) -> str:
        try:
            return base64.b64decode(cursor.encode(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise SlackError("invalid_cursor") from None

    def _cursor_for(self, ts: str) -> str:
        return self._encode_cursor(f"next_ts:{ts.replace('.', '')}")

    def _cursor_ts(self, cursor: str) -> float:
        text = self._decode_cursor(cursor)
        if not text.startswith("next_ts:") or not text[8:].isdigit():
            raise SlackError("invalid_cursor")
        digits = text[8:]
        return float(f"{digits[:-6]}.{digits[-6:]}")

    def _message_json(self, m: Message, *, metadata: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "user": m.user,
            "text": m.text,
            "ts": m.ts,
            "team": self.team_id,
        }
        if m.bot:
            data.update(
                bot_id=self.bot_id,
                app_id=self.app_id,
                bot_profile={
                    "id": self.bot_id,
                    "app_id": self.app_id,
                    "name": "cleanday",
                    "team_id": self.team_id,
                    "deleted": False,
                },
            )
        if m.blocks is not None:
            data["blocks"] = m.blocks
        if m.attachments is not None:
            data["attachments"] = m.attachments
        if m.thread_ts is not None:
            data["thread_ts"] = m.thread_ts
        if m.edited is not None:
            data["edited"] = m.edited
        if metadata and m.metadata is not None:
            data["metadata"] = {
                "event_type": m.metadata["event_type"],
                "event_payload": m.metadata["event_payload"],
            }
        return data

    def _channel_json(self, c: Channel) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "name_normalized": c.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": c.is_private,
            "is_archived": c.is_archived,
            "is_general": c.name == "general",
            "is_member": c.is_member,
            "created": c.created,
            "creator": "U0OPERATOR",
            "context_team_id": self.team_id,
        }


class _RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Slack Web API on loopback.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="xoxb-test")
    parser.add_argument("--channel", action="append", dest="channels")
    parser.add_argument("--no-rate-limit", action="store_true")
    args = parser.parse_args(argv)
    server = SlackServer(
        token=args.token,
        channels=tuple(args.channels or ("general", "alerts")),
        post_message_limit=None if args.no_rate_limit else SLACK_POST_MESSAGE_LIMIT,
        tier_limits=not args.no_rate_limit,
    )
    serve_forever(server, args.port)


if __name__ == "__main__":
    main()
