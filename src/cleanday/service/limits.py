"""The request body limit of the API: every body but a webhook's is read within
`CLEANDAY_BODY_LIMIT_BYTES` (1 MiB by default) while it streams (`bodies.read_body`), and a
larger one is answered 413 before any route or fast path parses it.

Outermost middleware: the fast paths and FastAPI then get the body already read (the fast
paths and the routes read whole bodies anyway, so this costs no copy worth counting). A
webhook (`/hooks/...`) passes untouched: its route reads within its Work Order's own limit.
"""

from __future__ import annotations

import json

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cleanday.errors import RequestTooLarge
from cleanday.service.bodies import read_body, replay_body

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _WITH_BODY
            or scope["path"].startswith("/hooks/")
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(Request(scope, receive), self.limit, what="request body")
        except ClientDisconnect:
            return  # nobody to answer
        except RequestTooLarge as exc:
            detail = f"{exc}; CLEANDAY_BODY_LIMIT_BYTES sets the limit"
            out = json.dumps({"detail": detail}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(out)),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": out})
            return
        await self.app(scope, replay_body(body, receive), send)
