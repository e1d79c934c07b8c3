"""`cleanday smoke slack`: with a real bot token, post a test message to the default channel
(`CLEANDAY_SLACK_CHANNEL`), delete it, and report each step; the token is never printed."""

from __future__ import annotations

from datetime import UTC, datetime

from cleanday.config import Settings
from cleanday.smoke import SmokeResult, Steps


def run_slack_smoke(settings: Settings) -> list[SmokeResult]:
    """auth.test, chat.postMessage and chat.delete, one result each (a failed step stops)."""
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    secret = settings.slack_token or ""
    if not secret:
        return [SmokeResult("slack", "skipped", "SLACK_BOT_TOKEN is not set")]
    client = WebClient(
        token=secret,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    channel = settings.slack_channel
    step = Steps(secret)
    results = step.results

    def auth() -> tuple[str, bool]:
        r = client.auth_test()
        return f"team {r.get('team')}, bot user {r.get('user')}", True

    def post() -> tuple[str, tuple[str, str]]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        r = client.chat_postMessage(
            channel=channel,
            text=f"cleanday smoke test ({now}); deleted at once",
            metadata={"event_type": "cleanday_smoke", "event_payload": {"at": now}},
        )
        return f"posted to {channel} (ts {r['ts']})", (str(r["channel"]), str(r["ts"]))

    if step("slack auth", auth) is None:
        return results
    posted = step("slack post", post)
    if posted is None:
        return results
    where, ts = posted

    def delete() -> tuple[str, bool]:
        client.chat_delete(channel=where, ts=ts)
        return f"deleted {ts} from {channel}", True

    step("slack delete", delete)
    return results
