"""The Pane of Glass in the browser: the overview (with what waits for the operator on top), a
page per behavior, the Sunday review, and signing in and out.

Reading may stay open on loopback (CLEANDAY_PANE_LOOPBACK_READS); anything else needs a signed-in
session. Every action needs one, and the CSRF token of its session; an action is then one
request to the HTTP API — the same route, validation and answer a script or the CLI gets —
made in process with the server's operator token, and its answer is shown on the next page.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from cleanday import __version__
from cleanday.config import Settings
from cleanday.errors import UnknownBehaviorError
from cleanday.ledger import LedgerService
from cleanday.pane import behavior, charts, overview, sessions, waiting
from cleanday.pane.next_runs import NextRuns
from cleanday.pane.render import STATIC_PATH, environment
from cleanday.service.deps import get_service, operator_refusal, settings_of
from cleanday.service.schemas import OverrideKind

router = APIRouter(tags=["pane"], include_in_schema=False)
Service = Annotated[LedgerService, Depends(get_service)]
TEMPLATES = Jinja2Templates(env=environment())
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "pane"
REVIEW_PAGE = 50
# what a page may be framed by, load and post to: itself only (htmx and the CSS ship with it)
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def static_files() -> StaticFiles:
    """The Pane's CSS and vendored htmx, mounted at STATIC_PATH (`service/app.py`)."""
    return StaticFiles(directory=STATIC_DIR)


# -- who is looking -----------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    session: sessions.Session | None = None
    csrf: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.session is not None


def _signer(settings: Settings) -> sessions.Signer | None:
    return sessions.Signer(settings.token) if settings.token else None


async def viewer(request: Request, service: Service) -> Viewer:
    """The session the request's cookie carries, if it is valid, unexpired and not signed
    out (on any instance)."""
    signer = _signer(settings_of(request))
    cookie = request.cookies.get(sessions.COOKIE)
    if signer is None or cookie is None:
        return Viewer()
    found = signer.session(cookie, service.now())
    if found is None:
        return Viewer()
    if await run_in_threadpool(sessions.signed_out, service.engine, found):
        return Viewer()
    return Viewer(found, signer.csrf(found))


Looking = Annotated[Viewer, Depends(viewer)]


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")  # Starlette's TestClient names itself


async def reader(request: Request, who: Looking) -> Viewer:
    """A page's reader: signed in, or on loopback while loopback reads are open."""
    if who.signed_in or (settings_of(request).pane_loopback_reads and _loopback(request)):
        return who
    raise HTTPException(
        status.HTTP_303_SEE_OTHER,
        "sign in to read the Pane of Glass",
        headers={"Location": f"/signin?{_qs(next=_here(request))}"},
    )


Reader = Annotated[Viewer, Depends(reader)]


# -- rendering ------------------------------------------------------------------------------


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _qs(**params: str) -> str:
    return urlencode(params)


def _safe_next(target: str | None) -> str:
    """Where to go after an action or sign-in: a path on this server, never elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _context(request: Request, service: LedgerService, who: Viewer) -> dict[str, Any]:
    settings = settings_of(request)
    return {
        "request": request,
        "viewer": who,
        "now": service.now(),
        "tz": service.policy.timezone,
        "here": _here(request),
        "version": __version__,
        "temporal_ui": settings.resolved_temporal_ui_url,
        "namespace": settings.temporal_namespace,
        "tiers": overview.TIERS,
        "statuses": overview.STATUSES,
        "flash": _flash(request),
        "nav": None,
    }


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(_HEADERS)
    if request.cookies.get(sessions.FLASH_COOKIE):
        response.delete_cookie(sessions.FLASH_COOKIE, path="/")
    return response


@dataclass(frozen=True)
class Flash:
    level: str  # ok | error
    text: str


def _flash(request: Request) -> Flash | None:
    signer = _signer(settings_of(request))
    text = signer.unseal(request.cookies.get(sessions.FLASH_COOKIE)) if signer else None
    if text is None or ":" not in text:
        return None
    level, message = text.split(":", 1)
    return Flash(level, message)


def _go(request: Request, target: str, level: str, text: str) -> RedirectResponse:
    response = RedirectResponse(_safe_next(target), status.HTTP_303_SEE_OTHER)
    signer = _signer(settings_of(request))
    if signer is not None:
        response.set_cookie(
            sessions.FLASH_COOKIE,
            signer.seal(f"{level}:{text[:600]}"),
            max_age=60,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def _next_runs(request: Request, service: LedgerService) -> NextRuns:
    """The app's next-run cache; it reads Temporal's schedules through the service's own
    Temporal client when the runtime is attached (`runtime.starter.attach_runtime`)."""
    state = request.app.state
    found: NextRuns | None = getattr(state, "pane_next_runs", None)
    if found is None:
        starter = getattr(state, "run_starter", None)
        found = NextRuns(getattr(starter, "client", None), clock=service.now)
        state.pane_next_runs = found
    found.refresh_soon()
    return found


# -- pages ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=True, summary="The Pane (HTML)")
async def overview_page(
    request: Request,
    service: Service,
    who: Reader,
    tier: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
    status_: Annotated[list[str], Query(alias="status")] = [],  # noqa: B006
    retired: bool = False,
    all_: Annotated[
        bool, Query(alias="all", description="with retired ones (as `retired`)")
    ] = False,
    q: str = "",
    page: Annotated[int, Query(ge=1)] = 1,
    per: Annotated[int, Query(ge=1, le=overview.MAX_PER_PAGE)] = overview.PER_PAGE,
) -> HTMLResponse:
    filters = overview.Filters.parse(tier, status_, retired or all_, q, page, per)
    next_runs = _next_runs(request, service)
    context = _context(request, service, who)

    def read() -> dict[str, Any]:
        now = context["now"]
        with service.engine.connect() as conn:
            policy = service.policy_of(conn)
            return {
                "nav": "overview",
                "page": overview.overview(conn, filters, policy, now, next_runs),
                "waiting": waiting.waiting(conn, policy, now),
            }

    context.update(await run_in_threadpool(read))
    return _page(request, "overview.html", context)


@router.get("/behaviors/{name}", response_class=HTMLResponse)
async def behavior_page(request: Request, name: str, service: Service, who: Reader) -> Response:
    next_runs = _next_runs(request, service)
    context = _context(request, service, who)

    def read() -> dict[str, Any]:
        now = context["now"]
        state = service.state(name)  # the ladder's view now, folded up to this moment
        with service.engine.connect() as conn:
            policy = service.policy_of(conn)
            d = behavior.detail(service.engine, conn, name, state, policy, now, next_runs)
        return {
            "nav": "behavior",
            "d": d,
            "streak_chart": charts.streak_chart(d.streak, d.progress.needed),
            "spend_chart": charts.spend_chart(d.spend_days),
            "override_kinds": get_args(OverrideKind),
        }

    try:
        context.update(await run_in_threadpool(read))
    except UnknownBehaviorError as exc:
        context.update(heading="No such behavior", message=str(exc), back="/")
        return _page(request, "error.html", context, status.HTTP_404_NOT_FOUND)
    return _page(request, "behavior.html", context)


@router.get("/review", response_class=HTMLResponse)
async def review_page(
    request: Request,
    service: Service,
    who: Reader,
    week: date | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    context = _context(request, service, who)
    offset = (page - 1) * REVIEW_PAGE

    def read() -> dict[str, Any]:
        with service.engine.connect() as conn:
            policy = service.policy_of(conn)
            sunday = week + timedelta(days=6 - week.weekday()) if week is not None else None
            r = waiting.review(conn, policy, context["now"], sunday, REVIEW_PAGE, offset)
        return {
            "nav": "review",
            "r": r,
            "week": timedelta(days=7),
            "offset": offset,
            "pageno": page,
        }

    context.update(await run_in_threadpool(read))
    return _page(request, "review.html", context)


# -- signing in and out -----------------------------------------------------------------------


def _signin_context(request: Request, service: LedgerService, **extra: Any) -> dict[str, Any]:
    settings = settings_of(request)
    context = _context(request, service, Viewer())
    context.update(
        nav="signin",
        has_token=bool(settings.token),
        hours=settings.pane_session_hours,
        message=None,
        level=None,
        next="/",
    )
    context.update(extra)
    return context


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, service: Service, next: str = "/") -> HTMLResponse:
    return _page(request, "signin.html", _signin_context(request, service, next=_safe_next(next)))


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, service: Service) -> Response:
    form = await request.form()
    settings = settings_of(request)
    target = _safe_next(str(form.get("next") or "/"))
    refusal = operator_refusal(settings.token, str(form.get("token") or "") or None)
    if refusal is not None or not _same_origin(request):
        await asyncio.sleep(0.5)  # a wrong guess costs the guesser time
        context = _signin_context(
            request,
            service,
            next=target,
            message="That is not this server's operator token." if refusal else refusal,
        )
        return _page(request, "signin.html", context, status.HTTP_401_UNAUTHORIZED)
    signer = sessions.Signer(settings.token or "")
    lifetime = timedelta(hours=settings.pane_session_hours)
    _, cookie = signer.issue(service.now(), lifetime)
    response = _go(request, target, "ok", "Signed in.")
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout")
async def signout(request: Request, service: Service, who: Looking) -> Response:
    form = await request.form()
    if who.session is not None and _csrf_ok(request, who, form.get(sessions.CSRF_FIELD)):
        await run_in_threadpool(sessions.sign_out, service.engine, who.session, service.now())
    response = RedirectResponse("/signin?out=1", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# -- actions: one API request each ------------------------------------------------------------


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from; it must be this server."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def _csrf_ok(request: Request, who: Viewer, presented: Any) -> bool:
    signer = _signer(settings_of(request))
    token = presented if isinstance(presented, str) else request.headers.get(sessions.CSRF_HEADER)
    return (
        signer is not None
        and who.session is not None
        and signer.csrf_ok(who.session, token)
        and _same_origin(request)
    )


async def _refused(request: Request, service: LedgerService, who: Viewer, why: str) -> Response:
    context = _context(request, service, who)
    context.update(heading="Not done", message=why, back=_safe_next(request.headers.get("referer")))
    code = status.HTTP_401_UNAUTHORIZED if not who.signed_in else status.HTTP_403_FORBIDDEN
    return _page(request, "error.html", context, code)


Body = Callable[[Any], dict[str, Any] | None]


async def _act(
    request: Request,
    service: LedgerService,
    who: Viewer,
    path: str,
    body: Body,
    done: Callable[[dict[str, Any]], str],
) -> Response:
    """Check the session and its CSRF token, then make the API request `POST path` with the
    body `body(form)` and go back with what it answered."""
    form = await request.form()
    back = _safe_next(str(form.get("next") or request.headers.get("referer") or "/"))
    if not who.signed_in:
        return await _refused(request, service, who, "Sign in to act: reading is all you can do.")
    if not _csrf_ok(request, who, form.get(sessions.CSRF_FIELD)):
        return await _refused(
            request,
            service,
            who,
            "This form is out of date (its CSRF token does not match your "
            "session); reload the page and try again.",
        )
    try:
        payload = body(form)
    except ValueError as exc:
        return _go(request, back, "error", str(exc))
    answer = await _api(request, path, payload)
    if answer.is_success:
        return _go(request, back, "ok", done(answer.json()))
    return _go(request, back, "error", _detail(answer))


async def _api(request: Request, path: str, body: dict[str, Any] | None) -> httpx.Response:
    token = settings_of(request).token or ""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cleanday-pane") as client:
        return await client.post(
            path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except ValueError:
        detail = None
    if answer.status_code in (404, 405) and detail in (None, "Not Found", "Method Not Allowed"):
        where = answer.request.url.path
        return f"this server cannot do that yet ({where} answered {answer.status_code})"
    return str(detail or f"the API answered {answer.status_code}")


def _items(form: Any) -> list[str] | None:
    found = [str(v) for v in form.getlist("items") if str(v)]
    return found or None


def _listed(items: list[str]) -> str:
    return ", ".join(items) if len(items) <= 3 else f"{len(items)} items"


@router.post("/behaviors/{name}/approve")
async def approve(request: Request, name: str, service: Service, who: Looking) -> Response:
    return await _act(
        request,
        service,
        who,
        f"/api/v1/behaviors/{name}/batch/approve",
        lambda form: {"items": _items(form)},
        lambda r: f"Approved {_listed(r['items'])} of {name}; the runs are told to act.",
    )


@router.post("/behaviors/{name}/reject")
async def reject(request: Request, name: str, service: Service, who: Looking) -> Response:
    return await _act(
        request,
        service,
        who,
        f"/api/v1/behaviors/{name}/batch/reject",
        lambda form: {"items": _items(form), "reason": str(form.get("reason") or "")},
        lambda r: f"Rejected {_listed(r['items'])} of {name}; nothing acts.",
    )


@router.post("/behaviors/{name}/staged/{item}/release")
async def release(
    request: Request, name: str, item: str, service: Service, who: Looking
) -> Response:
    return await _act(
        request,
        service,
        who,
        f"/api/v1/behaviors/{name}/staged/{item}/release",
        lambda form: None,
        lambda r: f"Released {item} of {name}; its run is told to act.",
    )


@router.post("/behaviors/{name}/pause")
async def pause(request: Request, name: str, service: Service, who: Looking) -> Response:
    return await _act(
        request, service, who, f"/api/v1/behaviors/{name}/pause", lambda form: None,
        lambda r: f"{name} is paused; its schedule stops.",
    )  # fmt: skip


@router.post("/behaviors/{name}/resume")
async def resume(request: Request, name: str, service: Service, who: Looking) -> Response:
    return await _act(
        request, service, who, f"/api/v1/behaviors/{name}/resume", lambda form: None,
        lambda r: f"{name} is {r.get('status', 'active')} again.",
    )  # fmt: skip


def _override_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": str(form.get("reason") or ""), "kind": form.get("kind")}
    tier = str(form.get("tier") or "")
    if tier:
        body["tier"] = tier
        body["kind"] = "forced_tier"
    return body


@router.post("/behaviors/{name}/override")
async def override(request: Request, name: str, service: Service, who: Looking) -> Response:
    return await _act(
        request,
        service,
        who,
        f"/api/v1/behaviors/{name}/override",
        _override_body,
        lambda r: f"Override recorded for {name}: tier {r.get('tier')}, clean days reset.",
    )


def _run_body(form: Any) -> dict[str, Any]:
    text = str(form.get("input") or "").strip()
    if not text:
        return {"input": {}}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the run's input is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise ValueError('the run\'s input must be a JSON object, e.g. {"topic": "…"}')
    return {"input": value}


def _started(name: str, answer: dict[str, Any]) -> str:
    run = answer.get("run_id") or answer.get("workflow_id") or "a run"
    return f"Started {run} of {name}."


# POST /api/v1/behaviors/{name}/runs (run now) is the operator-loop's route; until a server has
# it, the button says the server cannot start runs (see `_detail`)
@router.post("/behaviors/{name}/run")
async def run_now(request: Request, name: str, service: Service, who: Looking) -> Response:
    return await _act(
        request, service, who, f"/api/v1/behaviors/{name}/runs", _run_body,
        lambda r: _started(name, r),
    )  # fmt: skip


@router.post("/reviews/{week}/decide")
async def decide(request: Request, week: date, service: Service, who: Looking) -> Response:
    def body(form: Any) -> dict[str, Any]:
        return {
            "behavior": str(form.get("behavior") or ""),
            "decision": str(form.get("decision") or ""),
            "by": "operator",  # a Pane session is the operator's (signed in with the token)
            "door": "pane",
        }

    return await _act(
        request,
        service,
        who,
        f"/api/v1/reviews/{week.isoformat()}/decisions",
        body,
        lambda r: (
            f"{r['decision'].capitalize()} recorded for {r['behavior']} in the review of "
            f"{r['week']}; it takes effect at the end of Sunday."
        ),
    )


__all__ = ["STATIC_PATH", "router", "static_files"]
