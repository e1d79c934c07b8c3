"""A hostile model provider for the router's tests: it answers as OpenRouter (`POST
{url}/or/chat/completions`) and as the Anthropic API (`POST {url}/v1/messages`) whatever a test
scripts, including what a real provider should never send: a body trickled in chunks, a 200
whose JSON is not an answer, a negative or impossible cost, no usage, a long Retry-After, a key
echoed back in the answer.

    provider.script("openrouter", Reply(body=chat(cost=-0.01)), Reply(status=429, ...))

Each transport answers its scripted replies in order, then `chat()` / `messages()` (a good
answer) once the script is used up. `received` records every request (path, headers, JSON body).
Serve it with `cleanday.localprovider.ServerThread(provider.app)`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

_UNSET: Any = object()


def chat(
    content: Any = "a fine answer",
    *,
    cost: Any = 0.001,
    usage: Any = _UNSET,
    message: Any = _UNSET,
    model: str = "anthropic/test-model-a",
) -> dict[str, Any]:
    """An OpenRouter chat completion; any part may be replaced by something no answer holds."""
    if usage is _UNSET:
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": cost}
    if message is _UNSET:
        message = {"role": "assistant", "content": content}
    body: dict[str, Any] = {
        "id": "gen-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def messages(text: str = "from anthropic", *, usage: Any = _UNSET, content: Any = _UNSET) -> Any:
    """An Anthropic messages answer; `usage` or `content` may be replaced likewise."""
    if usage is _UNSET:
        usage = {"input_tokens": 10, "output_tokens": 5}
    if content is _UNSET:
        content = [{"type": "text", "text": text}]
    body: dict[str, Any] = {
        "id": "msg_hostile",
        "type": "message",
        "role": "assistant",
        "model": "test-model-a",
        "content": content,
    }
    if usage is not None:
        body["usage"] = usage
    return body


@dataclass
class Reply:
    """One scripted answer. `body` is JSON (dict, list, any value) or raw bytes; with
    `chunks` > 1 the body is sent in that many pieces, `trickle_s` apart."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: int = 1
    trickle_s: float = 0.0

    def raw(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


class HostileProvider:
    def __init__(self) -> None:
        self.scripts: dict[str, deque[Reply]] = {"openrouter": deque(), "anthropic": deque()}
        self.received: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/or/chat/completions", self._openrouter, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
            ]
        )

    def script(self, transport: str, *replies: Reply) -> None:
        self.scripts[transport].extend(replies)

    def reset(self) -> None:
        for queue in self.scripts.values():
            queue.clear()
        self.received.clear()

    def requests(self, transport: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["transport"] == transport]

    async def _openrouter(self, request: Request) -> Response:
        return await self._answer("openrouter", request, Reply(body=chat()))

    async def _anthropic(self, request: Request) -> Response:
        return await self._answer("anthropic", request, Reply(body=messages()))

    async def _answer(self, transport: str, request: Request, default: Reply) -> Response:
        self.received.append(
            {
                "transport": transport,
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": json.loads(await request.body() or b"null"),
            }
        )
        queue = self.scripts[transport]
        reply = queue.popleft() if queue else default
        raw = reply.raw()
        headers = {"content-type": "application/json", **reply.headers}
        if reply.chunks <= 1:
            return Response(raw, reply.status, headers=headers)
        size = -(-len(raw) // reply.chunks)

        async def trickle() -> AsyncIterator[bytes]:
            for i in range(0, len(raw), size):
                yield raw[i : i + size]
                await asyncio.sleep(reply.trickle_s)

        return StreamingResponse(trickle(), reply.status, headers=headers)
