"""Fast paths: ASGI middleware answering the service's hottest requests without FastAPI's
routing, dependency and validation machinery, which costs more per request than the ledger's own
work for them.

Each answers exactly what its route would for a well-formed request (same status, same body)
and passes anything else on to the app unchanged: a request that fails authentication or
validation, or whose answer is not one it knows (a database down), is answered by the route as
documented.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cleanday.errors import CleandayError

Answer = tuple[int, bytes]


class FastPath:
    """Answers `method` requests whose path `matches`, when `answer` knows the answer.

    `writes` paths need the operator token (`Authorization: Bearer <CLEANDAY_TOKEN>`, exactly)
    and a JSON body; reads take no body.
    """

    method = "GET"
    writes = False

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
            from cleanday.service.app import status_for  # the app imports the routes

            answer = status_for(exc), json.dumps({"detail": str(exc)}).encode()
        except Exception:
            answer = None  # nothing was written: the route answers (503 for a database down)
        if answer is None:
            await self.app(scope, _replay(body, receive) if self.writes else receive, send)
            return
        code, out = answer
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": out})


def _authorized(scope: Scope, token: str | None) -> bool:
    headers = dict(scope["headers"])
    return bool(
        token
        and headers.get(b"content-type", b"").startswith(b"application/json")
        and secrets.compare_digest(headers.get(b"authorization", b""), f"Bearer {token}".encode())
    )


async def _read(receive: Receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's body again, for the route, once the fast path has read it."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
