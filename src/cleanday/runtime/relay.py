"""Tells runs in flight about sign-offs recorded through the ledger API (CLI, Pane of Glass).

The ledger records an approval, rejection or release; the run waiting for it needs a signal.
`install(app, get_client)` adds a middleware to the ledger service app that, after a
successful batch approve/reject or staged release, signals each item's run (an item ID is its
run's workflow ID). The run still asks the ledger for its permit before acting, so the
signal only wakes it; it grants nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client
from workflows.behavior_run import BehaviorRun

from cleanday.runtime.operator import signal_runs

log = logging.getLogger("cleanday.relay")

_BATCH = re.compile(r"^/api/v1/behaviors/(?P<name>[^/]+)/batch/(?P<verb>approve|reject)$")
_RELEASE = re.compile(r"^/api/v1/behaviors/(?P<name>[^/]+)/staged/(?P<item>[^/]+)/release$")


def items_in(body: dict[str, Any]) -> list[str]:
    result = body.get("result", body)
    items = result.get("items", []) if isinstance(result, dict) else []
    return [str(i) for i in items]


def install(app: FastAPI, get_client: Callable[[], Awaitable[Client]]) -> None:
    app.add_middleware(RelaySignOffs, get_client=get_client)


class RelaySignOffs:
    """Plain ASGI: every request but a sign-off passes straight through (no per-request
    wrapping, unlike an `@app.middleware("http")` one); a sign-off's response is held until
    the runs it names are signalled, then sent unchanged."""

    def __init__(self, app: ASGIApp, get_client: Callable[[], Awaitable[Client]]) -> None:
        self.app = app
        self.get_client = get_client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        batch, release = _BATCH.match(path), _RELEASE.match(path)
        if not (batch or release):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        if start is not None and start["status"] == 200:
            raw = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            await self._signal(path, batch, release, raw)
        for message in held:
            await send(message)

    async def _signal(
        self, path: str, batch: re.Match[str] | None, release: re.Match[str] | None, raw: bytes
    ) -> None:
        try:
            client = await self.get_client()
            if release:
                await signal_runs(client, [release["item"]], BehaviorRun.release.__name__)
            elif batch is not None and batch["verb"] == "approve":
                await signal_runs(client, items_in(json.loads(raw)), BehaviorRun.approve.__name__)
            elif batch is not None:
                # the reason is in the ledger already; the run only needs to know it may stop
                reason = "rejected through the ledger API"
                await signal_runs(
                    client, items_in(json.loads(raw)), BehaviorRun.reject.__name__, reason
                )
        except Exception:  # the ledger has the decision; a missed wake-up must not fail the call
            log.exception("could not signal the runs of %s", path)
