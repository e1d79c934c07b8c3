"""Fast paths: ASGI middleware answering the service's hottest requests without FastAPI's
routing, dependency and validation machinery, which costs more per request than the ledger's own
work for them.

A worker sends three requests per run: the state read at its start (`StateFastPath`), the
permit at the act (`PermitFastPath`) and the report at its end (`IngestFastPath`). Each is
answered exactly as its route would answer a well-formed request (same status, same body);
anything else passes on to the app unchanged: a request that fails authentication or
validation, or whose answer is not one it knows (a database down), is answered by the route as
documented. The token check (`deps.operator_refusal`) and the error statuses
(`service.errors.status_for`) are the routes' own.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from cleanday.errors import CleandayError
from cleanday.ledger import LedgerService, RunReport
from cleanday.service.bodies import replay_body
from cleanday.service.deps import operator_refusal
from cleanday.service.errors import error_body, status_for
from cleanday.service.group_commit import committer
from cleanday.service.routes.behaviors import BEHAVIORS_PATH
from cleanday.service.routes.permits import PERMITS_PATH
from cleanday.service.routes.runs import RUNS_PATH
from cleanday.service.schemas import PermitIn, state_out
from cleanday.service.timing import RouteLatency

Answer = tuple[int, bytes]


class FastPath:
    """Answers `method` requests whose path `matches`, when `answer` knows the answer.

    `writes` paths need the operator token (`Authorization: Bearer <CLEANDAY_TOKEN>`) and a
    JSON body; reads take no body.
    """

    method = "GET"
    writes = False
    route = ""  # the template of the route it stands in for (request latency's label)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def matches(self, path: str) -> Any:
        """Something truthy (given to `answer` as `match`) when this path is ours."""
        raise NotImplementedError

    async def answer(self, state: Any, match: Any, body: bytes) -> Answer | None:
        """The status and JSON body to send, or None to let the route answer."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return
        match = self.matches(scope["path"])
        if not match:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope["app"].state
        if self.writes and not _authorized(scope, state.settings.token):
            await self.app(scope, receive, send)  # the route's 401 says what to fix
            return
        body = await _read(receive) if self.writes else b""
        if body is None:
            return  # the client went away
        try:
            answer = await self.answer(state, match, body)
        except CleandayError as exc:
            answer = status_for(exc), json.dumps(error_body(exc)).encode()
        except Exception:
            answer = None  # nothing was written: the route answers (503 for a database down)
        if answer is None:
            await self.app(scope, replay_body(body, receive) if self.writes else receive, send)
            return
        code, out = answer
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        # timed here, not by an outer middleware: the hot path pays for no extra ASGI layer
        latency: RouteLatency | None = getattr(state, "route_latency", None)
        if latency is not None:
            latency.observe((self.method, self.route, code), time.perf_counter() - started)


class IngestFastPath(FastPath):
    """A well-formed `POST /api/v1/runs`, the hottest request: FastAPI's machinery costs more
    than the ledger's share of a group commit. The route and this path share the group commit."""

    method, writes, route = "POST", True, RUNS_PATH

    def matches(self, path: str) -> bool:
        return path == RUNS_PATH

    async def answer(self, state: Any, match: Any, body: bytes) -> Answer | None:
        try:
            report = RunReport.model_validate_json(body)
        except ValidationError:
            return None  # the route's 422 names the field
        result = await committer(state, state.service).submit(report)
        return (201 if result.recorded else 200), result.model_dump_json().encode()


class PermitFastPath(FastPath):
    """`POST /api/v1/permits`: 200 with the permit, 403 with the reason; a worker asks once a
    run."""

    method, writes, route = "POST", True, PERMITS_PATH

    def matches(self, path: str) -> bool:
        return path == PERMITS_PATH

    async def answer(self, state: Any, match: Any, body: bytes) -> Answer | None:
        try:
            ask = PermitIn.model_validate_json(body)
        except ValidationError:
            return None  # the route's 422 names the field
        service: LedgerService = state.service
        permit = await asyncio.to_thread(
            service.request_permit, ask.behavior, ask.run_id, item_id=ask.item_id
        )
        return 200, permit.model_dump_json().encode()


class StateFastPath(FastPath):
    """`GET /api/v1/behaviors/{name}/state`: a worker reads it at the start of every run."""

    _path = re.compile(re.escape(BEHAVIORS_PATH) + r"/([^/]+)/state")
    route = BEHAVIORS_PATH + "/{name}/state"

    def matches(self, path: str) -> re.Match[str] | None:
        return self._path.fullmatch(path)

    async def answer(self, state: Any, match: Any, body: bytes) -> Answer | None:
        service: LedgerService = state.service
        found = await asyncio.to_thread(service.state, match.group(1))
        return 200, state_out(found).model_dump_json().encode()


FAST_PATHS: tuple[type[FastPath], ...] = (IngestFastPath, PermitFastPath, StateFastPath)
"""Every fast path, in the order the app adds them."""


def _authorized(scope: Scope, token: str | None) -> bool:
    """A JSON body and `Bearer <the operator token>`, exactly; anything else (another scheme's
    spelling, no content type) goes to the route, which accepts it or names the problem."""
    headers = dict(scope["headers"])
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return False
    scheme, _, presented = headers.get(b"authorization", b"").partition(b" ")
    return scheme == b"Bearer" and operator_refusal(token, presented.decode("latin-1")) is None


async def _read(receive: Receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
