"""Notion's webhook: `POST /notion/webhook` keeps the subscription's verification token, and on
Sunday a person's page edit makes the next read of the review's decisions come at once
(`cleanday.notion.jobs.read_soon`); the read every few minutes stays the source of truth.

Absent (404) unless CLEANDAY_NOTION_WEBHOOK and NOTION_TOKEN are set. The token is the key
that signs the events, so it is kept in the ledger database, where every service instance on
it finds it, and never logged: `cleanday notion webhook-token` prints it for the operator to
paste into Notion.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from cleanday.clock import local_date
from cleanday.config import Settings
from cleanday.ledger import LedgerService
from cleanday.notion.jobs import read_soon
from cleanday.notion.store import NotionStore
from cleanday.notion.webhook import (
    SIGNATURE_HEADER,
    signature_refusal,
    verification_token,
    wants_read,
)
from cleanday.service.bodies import read_body
from cleanday.service.deps import get_service, settings_of

router = APIRouter(tags=["notion"])
log = logging.getLogger("cleanday.notion.webhook")

# Notion's events are IDs, a type and a timestamp: a few hundred bytes
EVENT_LIMIT = 64 * 1024


@router.post(
    "/notion/webhook",
    summary="Notion's webhook: the verification token, then signed page events",
    responses={
        200: {"description": "token kept, or event accepted (`read`: a review read comes now)"},
        400: {"description": "the body is not a JSON object"},
        401: {"description": "bad or missing X-Notion-Signature, or no token kept yet"},
        404: {"description": "the webhook is off (CLEANDAY_NOTION_WEBHOOK, NOTION_TOKEN)"},
        409: {"description": "another verification token is kept already"},
        413: {"description": "body larger than 64 KiB"},
    },
)
async def receive(
    request: Request,
    settings: Annotated[Settings, Depends(settings_of)],
    service: Annotated[LedgerService, Depends(get_service)],
) -> dict[str, Any]:
    if not (settings.notion_webhook_enabled and settings.notion_token):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    body = await read_body(request, EVENT_LIMIT, what="Notion event")
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a Notion event: a JSON object")
    store = NotionStore(service.engine)
    token = verification_token(event)
    if token is not None:
        return await _keep(store, token)
    kept = await asyncio.to_thread(store.verification_token)
    refusal = signature_refusal(kept, request.headers.get(SIGNATURE_HEADER), body)
    if refusal is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, refusal)
    if not wants_read(event) or not _sunday(service):
        return {"read": False}
    scheduler = getattr(request.app.state, "scheduler", None)
    # the scheduler runs on wall time, whatever clock the ledger reads
    return {"read": scheduler is not None and read_soon(scheduler, datetime.now(UTC))}


async def _keep(store: NotionStore, token: str) -> dict[str, Any]:
    kept = await asyncio.to_thread(store.keep_verification_token, token)
    if not hmac.compare_digest(kept.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "another verification token is kept already; to subscribe anew, run "
            "`cleanday notion webhook-token --forget` and resend the token from Notion",
        )
    log.info(
        "Notion sent the webhook's verification token; it is kept in the ledger database: "
        "paste the output of `cleanday notion webhook-token` into Notion's Verify form"
    )
    return {"verification": "kept"}


def _sunday(service: LedgerService) -> bool:
    """Decisions are taken only during Sunday (ledger time zone); on other days nothing to read."""
    return local_date(service.now(), service.policy.timezone).weekday() == 6
