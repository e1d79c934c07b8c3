"""Webhooks: `POST /hooks/{behavior}` verifies the HMAC signature, then starts a run of it.

Wiring (done by whoever builds the app): `app.include_router(hooks.router)` and
`app.state.run_starter = TemporalRunStarter(client, task_queue)`. The Work Order and status
come from `app.state.service` (the LedgerService); seen signatures persist in
`<data dir>/webhook_signatures.db` unless `app.state.seen_signatures` is set. The trigger's
`secret_ref` is resolved like any secret reference (`cleanday.secrets`), through
`app.state.secret_resolver` when it is set.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Request, status

from cleanday.errors import UnknownBehaviorError, WebhookRejected
from cleanday.secrets import SecretResolver
from cleanday.webhooks import SeenSignatures, verify
from cleanday.workorder import WebhookTrigger, WorkOrder

router = APIRouter(tags=["hooks"])


class RunStarter(Protocol):
    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        """Start a run of `behavior`; returns its workflow ID (also the ledger's run ID)."""
        ...


class SqliteSeenSignatures:
    """Signatures already accepted, in a small SQLite file so a restart cannot reopen replays."""

    def __init__(self, path: Path, keep_s: int = 600) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._keep_s = keep_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (signature TEXT PRIMARY KEY, ts INTEGER NOT NULL)"
        )

    def add_if_new(self, signature: str, timestamp: int) -> bool:
        with self._lock:
            # a signature older than the tolerance can no longer verify: safe to forget
            self._db.execute("DELETE FROM seen WHERE ts < ?", (timestamp - self._keep_s,))
            cur = self._db.execute(
                "INSERT OR IGNORE INTO seen (signature, ts) VALUES (?, ?)", (signature, timestamp)
            )
            return cur.rowcount == 1


# the process environment, read on every request: a rotated secret takes effect at once
_DEFAULT_RESOLVER = SecretResolver()


def get_secret_resolver(request: Request) -> SecretResolver:
    resolver: SecretResolver | None = getattr(request.app.state, "secret_resolver", None)
    return resolver or _DEFAULT_RESOLVER


def get_run_starter(request: Request) -> RunStarter:
    starter: RunStarter | None = getattr(request.app.state, "run_starter", None)
    if starter is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "webhooks need a Temporal connection: start the service with `cleanday up`",
        )
    return starter


def get_seen_signatures(request: Request) -> SeenSignatures:
    seen: SeenSignatures | None = getattr(request.app.state, "seen_signatures", None)
    if seen is None:
        data_dir = Path(request.app.state.settings.data_dir)
        seen = SqliteSeenSignatures(data_dir / "webhook_signatures.db")
        request.app.state.seen_signatures = seen
    return seen


def get_behavior_lookup(request: Request) -> Callable[[str], tuple[WorkOrder, str]]:
    """(Work Order, status) of a behavior, from the ledger service."""
    service = request.app.state.service

    def lookup(name: str) -> tuple[WorkOrder, str]:
        wo = service.get_work_order(name)
        return wo, str(service.state(name).status)

    return lookup


def get_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock or (lambda: datetime.now(UTC))


@router.post(
    "/hooks/{behavior}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a run of a webhook-triggered behavior (HMAC-SHA256 signed)",
    responses={
        401: {"description": "bad or missing signature, stale timestamp"},
        404: {"description": "no such behavior, or it is not webhook-triggered"},
        409: {"description": "a replayed signature, or the behavior is not active"},
        413: {"description": "body larger than the trigger's max_body_bytes"},
    },
)
async def receive(
    behavior: str,
    request: Request,
    start_run: Annotated[RunStarter, Depends(get_run_starter)],
    seen: Annotated[SeenSignatures, Depends(get_seen_signatures)],
    lookup: Annotated[Callable[[str], tuple[WorkOrder, str]], Depends(get_behavior_lookup)],
    clock: Annotated[Callable[[], datetime], Depends(get_clock)],
    resolver: Annotated[SecretResolver, Depends(get_secret_resolver)],
) -> dict[str, Any]:
    try:
        wo, behavior_status = lookup(behavior)
    except UnknownBehaviorError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    trigger = wo.trigger
    if not isinstance(trigger, WebhookTrigger):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"behavior {behavior} is not triggered by a webhook"
        )
    # refuse an oversized body before reading all of it when the sender says how big it is
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > trigger.max_body_bytes:
        raise HTTPException(
            413,
            f"body is {declared} bytes; the limit is {trigger.max_body_bytes} bytes",
        )
    body = await request.body()
    if behavior_status != "active":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"behavior {behavior} is {behavior_status}: nothing started"
        )
    try:
        verified = verify(
            resolver.resolve(trigger.secret_ref).reveal().encode(),
            request.headers,
            body,
            clock(),
            seen,
            tolerance_s=trigger.tolerance_seconds,
            max_body=trigger.max_body_bytes,
        )
    except WebhookRejected as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = None
    payload = parsed if isinstance(parsed, dict) else {"body": body.decode("utf-8", "replace")}
    # the signature is unique per delivery (replays are refused), so it names the run
    workflow_id = await start_run(behavior, payload, f"{behavior}-hook-{verified.signature[:24]}")
    return {"behavior": behavior, "workflow_id": workflow_id, "run_id": workflow_id}
