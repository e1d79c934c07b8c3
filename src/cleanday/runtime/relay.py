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

from fastapi import FastAPI, Request, Response
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
    @app.middleware("http")
    async def relay_sign_offs(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        path = request.url.path
        batch, release = _BATCH.match(path), _RELEASE.match(path)
        if request.method != "POST" or response.status_code != 200 or not (batch or release):
            return response
        raw = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        try:
            client = await get_client()
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
        return Response(
            content=raw,
            status_code=response.status_code,
            headers=dict(response.headers),
            media_type=response.media_type,
        )
