"""notion-client, configured once: API version 2025-09-03, `NOTION_BASE_URL`, the token, its own
429 and 5xx retries (Retry-After honoured up to 60 s, two retries), and the shared pacing on
every request it sends."""

from __future__ import annotations

import httpx
import notion_client
from notion_client.client import ClientOptions, RetryOptions

from cleanday.config import Settings
from cleanday.errors import NotionSetupError
from cleanday.notion.pacing import Pacing

NOTION_VERSION = "2025-09-03"


def _options(settings: Settings) -> ClientOptions:
    if not settings.notion_token:
        raise NotionSetupError(
            "NOTION_TOKEN is not set: create an internal integration in Notion, share the "
            "parent page with it, and set NOTION_TOKEN to its secret"
        )
    return ClientOptions(
        auth=settings.notion_token,
        base_url=settings.notion_base_url.rstrip("/"),
        notion_version=NOTION_VERSION,
        timeout_ms=int(settings.notion_timeout_s * 1000),
        retry=RetryOptions(max_retries=2, max_retry_delay_ms=60_000),
    )


def sync_client(settings: Settings, pacing: Pacing | None) -> notion_client.Client:
    hooks = {"request": [pacing.sync_hook]} if pacing is not None else {}
    return notion_client.Client(_options(settings), client=httpx.Client(event_hooks=hooks))


def async_client(settings: Settings, pacing: Pacing | None) -> notion_client.AsyncClient:
    hooks = {"request": [pacing.async_hook]} if pacing is not None else {}
    return notion_client.AsyncClient(
        _options(settings), client=httpx.AsyncClient(event_hooks=hooks)
    )
