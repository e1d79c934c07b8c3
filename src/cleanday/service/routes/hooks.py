"""Webhooks: `POST /hooks/{behavior}` verifies the HMAC signature, stores the delivery, then
starts a run of it.

An accepted delivery is never lost: it is stored in the ledger database before it is answered
(`cleanday.webhook_inbox`), so a delivery that Temporal cannot take at the moment (down,
restarting) is still answered 202 and its run starts when Temporal answers again. The answer
says which: `started: true`, or `started: false` with the delivery stored. Its signature, in the
same row, refuses a replay sent to any service instance on the same database.

Wiring (done by `cleanday.runtime.starter.attach_runtime`): `app.include_router(hooks.router)`
and `app.state.run_starter` (a `RunStarter`); the inbox over the ledger's database is made on
first use unless `app.state.webhook_inbox` is set. The Work Order and status come from
`app.state.service` (the LedgerService). The trigger's `secret_ref` is resolved like any secret
reference (`cleanday.secrets`), through `app.state.secret_resolver` when it is set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from cleanday.config import Settings
from cleanday.errors import RequestTooLarge, UnknownBehaviorError, WebhookRejected
from cleanday.secrets import SecretResolver
from cleanday.service.bodies import read_body
from cleanday.webhook_inbox import RunStarter, WebhookInbox
from cleanday.webhooks import verify
from cleanday.workorder import WebhookTrigger, WorkOrder

router = APIRouter(tags=["hooks"])

__all__ = ["RunStarter", "router"]


def get_secret_resolver(request: Request) -> SecretResolver:
    resolver: SecretResolver | None = getattr(request.app.state, "secret_resolver", None)
    if resolver is None:
        # the process environment, read on every request: a rotated secret takes effect at once
        resolver = request.app.state.secret_resolver = SecretResolver()
    return resolver


def get_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock or (lambda: datetime.now(UTC))


def get_inbox(request: Request) -> WebhookInbox:
    inbox: WebhookInbox | None = getattr(request.app.state, "webhook_inbox", None)
    if inbox is not None:
        return inbox
    starter: RunStarter | None = getattr(request.app.state, "run_starter", None)
    if starter is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "webhooks need a Temporal connection: start the service with `cleanday up`",
        )
    inbox = WebhookInbox(request.app.state.service.engine, starter, clock=get_clock(request))
    request.app.state.webhook_inbox = inbox
    return inbox


def get_behavior_lookup(request: Request) -> Callable[[str], tuple[WorkOrder, str]]:
    """(Work Order, status) of a behavior, from the ledger service."""
    service = request.app.state.service

    def lookup(name: str) -> tuple[WorkOrder, str]:
        wo = service.get_work_order(name)
        return wo, str(service.state(name).status)

    return lookup


def get_start_wait(request: Request) -> float:
    settings: Settings | None = getattr(request.app.state, "settings", None)
    return settings.webhook_start_wait_s if settings is not None else 2.0


@router.post(
    "/hooks/{behavior}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a run of a webhook-triggered behavior (HMAC-SHA256 signed)",
    responses={
        202: {
            "description": "accepted and stored: the run started (`started: true`), or starts "
            "as soon as Temporal answers (`started: false`)"
        },
        401: {"description": "bad or missing signature, stale timestamp"},
        404: {"description": "no such behavior, or it is not webhook-triggered"},
        409: {"description": "a replayed signature, or the behavior is not active"},
        413: {"description": "body larger than the trigger's max_body_bytes"},
        503: {"description": "the ledger database is unavailable: nothing stored, send again"},
    },
)
async def receive(
    behavior: str,
    request: Request,
    inbox: Annotated[WebhookInbox, Depends(get_inbox)],
    lookup: Annotated[Callable[[str], tuple[WorkOrder, str]], Depends(get_behavior_lookup)],
    clock: Annotated[Callable[[], datetime], Depends(get_clock)],
    resolver: Annotated[SecretResolver, Depends(get_secret_resolver)],
    wait_s: Annotated[float, Depends(get_start_wait)],
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
    try:
        # unsigned bytes are counted as they arrive: past the limit nothing more is read
        body = await read_body(request, trigger.max_body_bytes)
    except RequestTooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from exc
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
    try:
        # stored before it is answered: from here on the delivery is the inbox's to start
        delivery = await asyncio.to_thread(
            inbox.accept, behavior, verified, payload, trigger.tolerance_seconds
        )
    except WebhookRejected as exc:
        raise HTTPException(exc.status, exc.reason) from exc
    started = await inbox.submit(delivery, wait_s)
    answer: dict[str, Any] = {
        "behavior": behavior,
        "workflow_id": delivery.workflow_id,
        "run_id": delivery.workflow_id,
        "started": started,
    }
    if not started:
        answer["detail"] = (
            "accepted and stored; Temporal has not taken the run yet, it starts as soon as "
            "Temporal answers"
        )
    return answer
