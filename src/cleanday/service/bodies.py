"""Request bodies read within a limit, while they stream: what the service never holds in memory.

`await request.body()` reads a whole body before anyone looks at its size, so a chunked body
(no Content-Length) of any size is buffered first and refused after. `read_body` refuses a
declared length over the limit before reading anything and stops reading a body (chunked or not)
at the first chunk past the limit; the service then answers 413 (`RequestTooLarge`, see
`service/errors.py`) and the server closes the connection without reading the rest.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message, Receive

from cleanday.errors import RequestTooLarge


def too_large(size: int | str, limit: int, what: str = "body") -> RequestTooLarge:
    return RequestTooLarge(f"{what} is {size} bytes or more; the limit is {limit} bytes", limit)


async def read_body(request: Request, limit: int, *, what: str = "body") -> bytes:
    """The request's body, at most `limit` bytes; raises RequestTooLarge as soon as it is more
    (by its Content-Length, or by what has arrived so far), without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit, what)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit, what)
        chunks.append(chunk)
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A body already read, handed on to the app as one message; then whatever the client
    sends next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
