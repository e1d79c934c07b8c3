"""The ledger service's HTTP app: routes, fast paths, error handlers, and the scheduler in its
lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, ProcessCollector
from sqlalchemy.exc import OperationalError

from cleanday import __version__
from cleanday.config import Settings
from cleanday.errors import CleandayError
from cleanday.ledger import LedgerService
from cleanday.ledger_metrics import LedgerCollector
from cleanday.service import readiness
from cleanday.service.errors import error_body, status_for
from cleanday.service.fastpath import FAST_PATHS
from cleanday.service.limits import BodyLimit
from cleanday.service.routes import (
    behaviors,
    days,
    docs,
    notion_webhook,
    ops,
    pane,
    permits,
    reviews,
    runs,
)
from cleanday.service.timing import RequestTiming, RouteLatency


def build_service(settings: Settings) -> LedgerService:
    """The ledger of these settings: DATABASE_URL or the data dir's SQLite, migrated to head."""
    return LedgerService.open(settings)


def create_app(
    settings: Settings, service: LedgerService | None = None, *, scheduler: bool | None = None
) -> FastAPI:
    """The ledger service app; `scheduler` overrides the CLEANDAY_SCHEDULER setting."""
    ledger = service if service is not None else build_service(settings)
    run_scheduler = settings.scheduler_enabled if scheduler is None else scheduler

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not run_scheduler:
            yield
            return
        from cleanday.scheduler import start_scheduler

        # the jobs read the ledger's own clock, so an injected clock drives them too
        # with the runtime attached (cleanday.runtime.starter), the outbox's delivery job too
        delivery = getattr(app.state, "outbox_delivery", None)
        sched = start_scheduler(ledger, settings, clock=ledger.clock, delivery=delivery)
        if settings.notion_token:  # the Sunday decisions, read back from Notion
            from cleanday.notion.jobs import add_review_reads

            add_review_reads(sched, ledger, settings)
        app.state.scheduler = sched
        try:
            yield
        finally:
            sched.shutdown(wait=True)  # let a running close finish its transaction

    app = FastAPI(
        title="cleanday ledger service",
        version=__version__,
        description=(
            "Registration, run outcomes, act permits, Sunday reviews and the Pane of Glass. "
            "Every write needs `Authorization: Bearer <CLEANDAY_TOKEN>`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py from vendored assets, offline too
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = ledger
    # /metrics: the ledger's figures read from its database on each scrape, request latency
    # from this process; /readyz asks Temporal through this probe
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger.engine, ledger.clock, settings.timezone))
    ProcessCollector(registry=registry)
    latency = RouteLatency()
    registry.register(latency)
    app.state.metrics_registry = registry
    app.state.temporal_probe = readiness.settings_probe(settings)

    @app.exception_handler(CleandayError)
    async def _cleanday_error(_: Request, exc: CleandayError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=status_for(exc))

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
        # the workers' reports are idempotent, so "try again" is the right advice
        return JSONResponse(
            {"detail": "the ledger database is unavailable; nothing was written, try again"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in errors
        )
        return JSONResponse(
            {"detail": summary, "errors": errors},
            status_code=422,
        )

    for module in (pane, behaviors, runs, permits, reviews, days, ops, notion_webhook):
        app.include_router(module.router)
    app.mount(pane.STATIC_PATH, pane.static_files(), name="pane-static")
    docs.install(app)
    # inside the fast paths: the requests they answer they time themselves
    app.add_middleware(RequestTiming, latency=latency)
    app.state.route_latency = latency
    # a worker's requests of every run skip the routing machinery (cleanday.service.fastpath)
    for fast in FAST_PATHS:
        app.add_middleware(fast)
    # added last, so outermost: no body over the limit reaches a fast path or a route
    app.add_middleware(BodyLimit, limit=settings.body_limit_bytes)
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory cleanday.service.app:app_from_env`: settings from the environment."""
    return create_app(Settings())
