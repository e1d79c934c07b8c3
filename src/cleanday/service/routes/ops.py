"""Operations: `/metrics` for Prometheus, `/healthz` (the process answers) and `/readyz` (it can
do its work: database, schema at head, Temporal). Open without a token, as probes and scrapers
expect; nothing here writes, and no secret is shown."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cleanday.service import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, schema at head, Temporal; 503 naming what is wrong",
    responses={503: {"description": "a check failed; `checks` says which and what to do"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks = await asyncio.to_thread(readiness.database, state.service.engine)
    checks.append(await readiness.temporal(state.temporal_probe, state.settings.temporal_address))
    ready = all(c.ok for c in checks)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    # the ledger's metrics are read from its database: off the event loop
    text = await asyncio.to_thread(generate_latest, request.app.state.metrics_registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
