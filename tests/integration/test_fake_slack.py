"""The real slack-sdk against the fake Slack: what issue 10's alerts will rely on."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.error import URLError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.serving import FakeClock, RateLimit
from tests.fakes.slack import SlackServer
from tests.fakes.surface_fixtures import (
    MakeSlack,
    _shared_slack,
    make_slack_server,
    slack,
    slack_server,
)

__all__ = ["_shared_slack", "make_slack_server", "slack", "slack_server"]

TS = re.compile(r"^\d{10}\.\d{6}$")


def alert_blocks(behavior: str = "seo_audit") -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": f"Gate failed: {behavior}"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Tier*\nC → B"},
                {"type": "mrkdwn", "text": "*Gate*\nbudget"},
            ],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "run `r-1` · 2026-01-04 10:00 Europe/Paris"}],
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Temporal run"},
                    "url": "http://127.0.0.1:8233/namespaces/default/workflows/r-1",
                }
            ],
        },
    ]


def outbox_metadata(outbox_id: int) -> dict[str, Any]:
    return {"event_type": "cleanday_outbox", "event_payload": {"outbox_id": outbox_id}}


@pytest.fixture
def fast(slack_server: SlackServer) -> SlackServer:
    """The fake without Slack's pacing, for tests about state rather than rate."""
    slack_server.set_rate_limits(None, tiers=False)
    return slack_server


def test_a_block_kit_message_with_metadata_is_posted_to_a_channel_named_like_slack(
    fast: SlackServer, slack: WebClient
) -> None:
    assert slack.auth_test()["bot_id"] == fast.bot_id
    posted = slack.chat_postMessage(
        channel="#alerts",
        text="Gate failed: seo_audit (C → B)",
        blocks=alert_blocks(),
        metadata=outbox_metadata(41),
    )
    assert posted["ok"] is True
    assert posted["channel"] == fast.channel_id("alerts")
    assert TS.match(posted["ts"])
    assert posted["message"]["metadata"] == outbox_metadata(41)

    (message,) = fast.messages("#alerts")
    assert message["ts"] == posted["ts"]
    assert message["text"] == "Gate failed: seo_audit (C → B)"
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "context", "actions"]
    assert all(b["block_id"] for b in message["blocks"])  # Slack names every block
    assert message["metadata"] == outbox_metadata(41)
    assert message["bot"] is True
    assert fast.requests("chat.postMessage")[0].body["channel"] == "#alerts"


def test_an_update_replaces_text_blocks_and_metadata_and_marks_the_message_edited(
    fast: SlackServer, slack: WebClient
) -> None:
    posted = slack.chat_postMessage(channel="alerts", text="1 alert", blocks=alert_blocks())
    updated = slack.chat_update(
        channel=posted["channel"],
        ts=posted["ts"],
        text="2 alerts",
        blocks=alert_blocks("publish_posts"),
        metadata=outbox_metadata(42),
    )
    assert updated["ts"] == posted["ts"]
    (message,) = fast.messages("alerts")
    assert message["text"] == "2 alerts"
    assert message["blocks"][0]["text"]["text"] == "Gate failed: publish_posts"
    assert message["metadata"] == outbox_metadata(42)
    assert message["edited"]["user"] == fast.bot_user_id
    assert float(message["edited"]["ts"]) > float(posted["ts"])

    slack.chat_delete(channel=posted["channel"], ts=posted["ts"])
    assert fast.messages("alerts") == []
    with pytest.raises(SlackApiError) as gone:
        slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="3 alerts")
    assert gone.value.response["error"] == "message_not_found"


def test_history_is_newest_first_pages_by_cursor_and_carries_metadata_only_when_asked(
    fast: SlackServer, slack: WebClient
) -> None:
    channel = fast.channel_id("alerts")
    stamps = [
        slack.chat_postMessage(channel=channel, text=f"alert {i}", metadata=outbox_metadata(i))[
            "ts"
        ]
        for i in range(5)
    ]
    history = slack.conversations_history(channel=channel)
    assert [m["ts"] for m in history["messages"]] == stamps[::-1]
    assert all("metadata" not in m for m in history["messages"])

    first = slack.conversations_history(channel=channel, limit=2, include_all_metadata=True)
    assert [m["text"] for m in first["messages"]] == ["alert 4", "alert 3"]
    assert first["messages"][0]["metadata"] == outbox_metadata(4)
    assert first["has_more"] is True
    rest = slack.conversations_history(
        channel=channel, limit=10, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["alert 2", "alert 1", "alert 0"]
    assert rest["has_more"] is False

    window = slack.conversations_history(channel=channel, oldest=stamps[1], latest=stamps[3])
    assert [m["text"] for m in window["messages"]] == ["alert 2"]
    inclusive = slack.conversations_history(
        channel=channel, oldest=stamps[1], latest=stamps[3], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["alert 3", "alert 2", "alert 1"]

    pages = [p["messages"] for p in slack.conversations_history(channel=channel, limit=2)]
    assert [len(p) for p in pages] == [2, 2, 1]  # slack-sdk follows next_cursor itself


def test_ts_values_are_unique_and_increasing_even_within_one_clock_tick(
    make_slack_server: MakeSlack,
) -> None:
    clock = FakeClock(datetime(2026, 1, 4, 10, 0, tzinfo=UTC))
    server = make_slack_server(clock=clock, post_message_limit=None)
    client = WebClient(token="xoxb-test", base_url=server.api_url)
    stamps = [client.chat_postMessage(channel="#general", text=str(i))["ts"] for i in range(4)]
    assert stamps == [
        "1767520800.000000",
        "1767520800.000001",
        "1767520800.000002",
        "1767520800.000003",
    ]
    clock.advance(1.5)
    assert client.chat_postMessage(channel="#alerts", text="later")["ts"] == "1767520801.500000"


def test_channels_are_known_by_id_and_name_and_an_unknown_one_is_not_found(
    fast: SlackServer, slack: WebClient
) -> None:
    ops = fast.add_channel("ops-private", is_private=True)
    names = {
        c["name"]: c["id"] for c in slack.conversations_list(types="public_channel")["channels"]
    }
    assert names == {"general": fast.channel_id("general"), "alerts": fast.channel_id("alerts")}
    private = slack.conversations_list(types="private_channel")["channels"]
    assert [c["id"] for c in private] == [ops]
    assert slack.conversations_info(channel=ops)["channel"]["is_private"] is True
    with pytest.raises(SlackApiError) as missing:
        slack.chat_postMessage(channel="#nowhere", text="hello")
    assert missing.value.response["error"] == "channel_not_found"
    # chat.update wants the ID, not the name
    posted = slack.chat_postMessage(channel="#general", text="hello")
    with pytest.raises(SlackApiError) as by_name:
        slack.chat_update(channel="#general", ts=posted["ts"], text="hi")
    assert by_name.value.response["error"] == "channel_not_found"


def test_the_bot_cannot_edit_a_persons_message(fast: SlackServer, slack: WebClient) -> None:
    ts = fast.post_as_user("#alerts", "I'm on it")
    with pytest.raises(SlackApiError) as refused:
        slack.chat_update(channel=fast.channel_id("alerts"), ts=ts, text="hijacked")
    assert refused.value.response["error"] == "cant_update_message"
    assert fast.messages("alerts")[0]["bot"] is False


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_calls_off_the_description_get_invalid_arguments_and_are_recorded_as_invalid(
    fast: SlackServer, slack: WebClient
) -> None:
    fast.invalid_allowed = True
    with pytest.raises(SlackApiError) as missing:
        slack.api_call("chat.update", json={"channel": fast.channel_id("alerts"), "text": "x"})
    assert missing.value.response["error"] == "invalid_arguments"
    assert missing.value.response["response_metadata"]["messages"] == [
        "[ERROR] missing required field: ts"
    ]
    with pytest.raises(SlackApiError) as bad_type:
        slack.api_call(
            "conversations.history",
            http_verb="GET",
            params={"channel": fast.channel_id("alerts"), "limit": "ten"},
        )
    assert bad_type.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as blocks:
        slack.chat_postMessage(
            channel="#alerts",
            text="x",
            blocks=[{"type": "header", "text": {"type": "mrkdwn", "text": "*bold*"}}],
        )
    assert blocks.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as metadata:
        slack.chat_postMessage(channel="#alerts", text="x", metadata={"event_type": "x"})
    assert metadata.value.response["error"] == "invalid_metadata_schema"
    with pytest.raises(SlackApiError) as no_text:
        slack.chat_postMessage(channel="#alerts", text="")
    assert no_text.value.response["error"] == "no_text"

    invalid = fast.invalid_requests()
    assert [r.key for r in invalid] == [
        "chat.update",
        "conversations.history",
        "chat.postMessage",
        "chat.postMessage",
        "chat.postMessage",
    ]
    assert invalid[0].problem == "invalid_arguments: [ERROR] missing required field: ts"
    assert fast.messages("alerts") == []


def test_an_argument_slack_would_ignore_is_noted_on_the_record(
    fast: SlackServer, slack: WebClient
) -> None:
    slack.api_call("chat.postMessage", json={"channel": "#alerts", "text": "x", "metdata": {}})
    (received,) = fast.requests("chat.postMessage")
    assert received.valid
    assert received.notes == ["arguments Slack ignores: metdata"]


def test_a_bot_token_is_required(fast: SlackServer) -> None:
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=fast.api_url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as none:
        WebClient(base_url=fast.api_url).auth_test()
    assert none.value.response["error"] == "not_authed"
    assert all("authorization" not in r.headers for r in fast.requests())
    with pytest.raises(ValueError, match="bot token"):
        SlackServer(token="xoxp-test")


def test_posting_faster_than_once_a_second_per_channel_is_rate_limited(
    slack_server: SlackServer, slack: WebClient
) -> None:
    for i in range(3):  # the burst
        slack.chat_postMessage(channel="#alerts", text=f"alert {i}")
    slack.chat_postMessage(channel="#general", text="another channel has its own pace")
    with pytest.raises(SlackApiError) as limited:
        slack.chat_postMessage(channel="#alerts", text="one too many")
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers["Retry-After"] == "1"
    assert len(slack_server.messages("alerts")) == 3


def test_rate_limit_error_retry_handler_recovers_from_a_429(
    fast: SlackServer, slack: WebClient
) -> None:
    fast.inject("rate_limited", "chat.postMessage", retry_after=0)
    slack.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    posted = slack.chat_postMessage(channel="#alerts", text="after the limit")
    assert posted["ok"] is True
    assert [r.status for r in fast.requests("chat.postMessage")] == [429, 200]
    assert len(fast.messages("alerts")) == 1


def test_method_tiers_limit_calls_per_minute(make_slack_server: MakeSlack) -> None:
    server = make_slack_server()
    client = WebClient(token="xoxb-test", base_url=server.api_url)
    for _ in range(20):  # conversations.list is tier 2: 20 a minute
        client.conversations_list()
    with pytest.raises(SlackApiError) as limited:
        client.conversations_list()
    assert limited.value.response.status_code == 429
    assert int(limited.value.response.headers["Retry-After"][0]) >= 1
    assert client.auth_test()["ok"] is True  # another method, another budget


def test_server_errors_drops_and_outages_look_like_a_slack_that_is_down(
    fast: SlackServer, slack: WebClient
) -> None:
    slack.retry_handlers.clear()  # slack-sdk retries a connection error once by default
    fast.inject("error", "chat.*", status=503)
    with pytest.raises(SlackApiError) as unavailable:
        slack.chat_postMessage(channel="#alerts", text="x")
    assert unavailable.value.response.status_code == 503
    fast.inject("error", status=502)
    with pytest.raises(SlackApiError, match="non-JSON"):
        slack.auth_test()

    fast.inject("drop", "chat.postMessage")
    with pytest.raises(ConnectionError):
        slack.chat_postMessage(channel="#alerts", text="x")
    assert fast.messages("alerts") == []

    with fast.outage(), pytest.raises(URLError):
        slack.auth_test()
    assert slack.auth_test()["ok"] is True

    fast.go_down(seconds=0.3)
    with pytest.raises(URLError):
        slack.auth_test()
    time.sleep(0.5)
    assert slack.auth_test()["ok"] is True


def test_an_uncertain_send_is_found_in_history_by_its_metadata(
    fast: SlackServer, slack: WebClient
) -> None:
    slack.retry_handlers.clear()
    fast.inject("drop_after_write", "chat.postMessage")
    with pytest.raises(ConnectionError):
        slack.chat_postMessage(channel="#alerts", text="alert", metadata=outbox_metadata(7))
    history = slack.conversations_history(
        channel=fast.channel_id("alerts"), include_all_metadata=True
    )
    assert [m["metadata"]["event_payload"] for m in history["messages"]] == [{"outbox_id": 7}]


def test_slack_sdks_default_connection_retry_posts_twice_after_a_lost_answer(
    fast: SlackServer, slack: WebClient
) -> None:
    # what the outbox must guard against: Slack has no idempotency key, and slack-sdk's
    # default ConnectionErrorRetryHandler sends chat.postMessage again when the answer is lost
    fast.inject("drop_after_write", "chat.postMessage")
    slack.chat_postMessage(channel="#alerts", text="alert", metadata=outbox_metadata(7))
    assert [m["metadata"] for m in fast.messages("alerts")] == [outbox_metadata(7)] * 2


def test_a_slow_answer_times_out_the_client_after_the_message_was_posted(
    fast: SlackServer,
) -> None:
    impatient = WebClient(token="xoxb-test", base_url=fast.api_url, timeout=0.3)  # type: ignore[arg-type]
    impatient.retry_handlers.clear()
    fast.inject("slow", "chat.postMessage", delay=0.6)
    started = time.monotonic()
    with pytest.raises((TimeoutError, URLError)):
        impatient.chat_postMessage(channel="#alerts", text="late")
    assert time.monotonic() - started < 0.55
    assert [m["text"] for m in fast.messages("alerts")] == ["late"]


def test_a_hung_request_is_released_by_the_test(fast: SlackServer) -> None:
    impatient = WebClient(token="xoxb-test", base_url=fast.api_url, timeout=0.3)  # type: ignore[arg-type]
    impatient.retry_handlers.clear()
    fast.inject("hang", "auth.test")
    fast.set_rate_limits(RateLimit(1.0, 3))
    with pytest.raises((TimeoutError, URLError)):
        impatient.auth_test()
    fast.release_held()
    assert impatient.auth_test()["ok"] is True


async def test_the_async_client_posts_and_reads_history_the_same_way(fast: SlackServer) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=fast.api_url)
    fast.inject("rate_limited", "chat.postMessage", retry_after=0)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    posted = await client.chat_postMessage(
        channel="#alerts", text="async alert", metadata=outbox_metadata(9)
    )
    history = await client.conversations_history(
        channel=posted["channel"], include_all_metadata=True
    )
    assert [m["metadata"] for m in history["messages"]] == [outbox_metadata(9)]
    assert [r.status for r in fast.requests("chat.postMessage")] == [429, 200]
