"""OpenRouter's model list, read for each model's timeout class, cached, never waited for by a call.

`GET {OPENROUTER_BASE_URL}/models` describes every model; one whose `supported_parameters`
include `reasoning` (or that describes its reasoning) gets the *reasoning* timeout class, any
other the *fast* one. A call only ever reads the cache: when it is empty or older than its TTL a
refresh starts in the background, and until one succeeds the router falls back to the routing
config and then to *fast*. A failed refresh is retried after `retry_s`, not on every call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx

log = logging.getLogger("cleanday.router")

TimeoutClass = Literal["fast", "reasoning"]


def timeout_class_of(model: dict[str, Any]) -> TimeoutClass:
    """The timeout class OpenRouter's description of a model implies."""
    params = model.get("supported_parameters") or []
    if "reasoning" in params or "include_reasoning" in params or model.get("reasoning"):
        return "reasoning"
    return "fast"


class ModelCatalog:
    """Timeout classes by OpenRouter model id, refreshed from `GET /models` every `ttl_s`."""

    def __init__(
        self,
        base_url: str,
        client: Callable[[], httpx.AsyncClient],
        *,
        ttl_s: float = 3600.0,
        retry_s: float = 60.0,
        fetch_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = base_url.rstrip("/") + "/models"
        self._client = client
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self._classes: dict[str, TimeoutClass] = {}
        self._fetched_at: float | None = None
        self._next_try = 0.0
        self._refreshing: asyncio.Task[bool] | None = None

    def timeout_class(self, model: str) -> TimeoutClass | None:
        """What the last successful fetch said about `model`; None when it is not known."""
        return self._classes.get(model)

    @property
    def refreshing(self) -> bool:
        """Whether a background refresh is under way."""
        return self._refreshing is not None and not self._refreshing.done()

    async def wait_refreshed(self) -> None:
        """Wait for the background refresh under way, if any (tests, a worker's startup)."""
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)

    @property
    def stale(self) -> bool:
        now = self._clock()
        if now < self._next_try:
            return False
        return self._fetched_at is None or now - self._fetched_at >= self.ttl_s

    def refresh_soon(self) -> None:
        """Start a background refresh when the cache is stale and none is running."""
        if not self.stale:
            return
        loop = asyncio.get_running_loop()
        running = self._refreshing
        if running is not None and not running.done() and running.get_loop() is loop:
            return
        self._refreshing = loop.create_task(self.refresh())

    async def refresh(self) -> bool:
        """Fetch the model list now; False (logged, retried after `retry_s`) when it failed."""
        self._next_try = self._clock() + self.retry_s
        try:
            resp = await self._client().get(self.url, timeout=self.fetch_timeout_s)
            resp.raise_for_status()
            models = resp.json()["data"]
            classes: dict[str, TimeoutClass] = {}
            for m in models:
                cls = timeout_class_of(m)
                classes[str(m["id"])] = cls
                if m.get("canonical_slug"):
                    classes.setdefault(str(m["canonical_slug"]), cls)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "OpenRouter model list %s unavailable (%s); timeout classes come from the "
                "preset and the routing config",
                self.url,
                type(exc).__name__,
            )
            return False
        self._classes = classes
        self._fetched_at = self._clock()
        return True
