"""The local model provider: OpenAI- and Anthropic-shaped endpoints, scripted answers, faults.

Used by the embedded stack, the demo and the tests. Every request body is validated against the
OpenRouter API description (by default the copy shipped in the package, `cleanday/specs/`) and
answered with 400 when it does not conform, so the router's requests stay honest.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import BaseModel, Field

from cleanday.errors import ConfigError

DEFAULT_SPEC = Path(__file__).resolve().parent / "specs" / "openrouter-openapi.yaml"

PII_ANSWER = "Reach the author at jane.doe@example.com or 555-867-5309."
MALFORMED_JSON_ANSWER = '{"tags": ["seo", "audit",'


@lru_cache(maxsize=4)
def load_spec(path: Path) -> dict[str, Any]:
    """The OpenRouter description, parsed once per process (it is 1.3 MB of YAML)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"OpenRouter API description {path}: cannot read ({exc.strerror}); set "
            "CLEANDAY_OPENROUTER_SPEC to its path"
        ) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data: dict[str, Any] = yaml.load(text, Loader=loader)
    return data


@lru_cache(maxsize=32)
def validator_for(path: Path, schema_name: str) -> Draft202012Validator:
    """A compiled validator for one component schema of the description."""
    spec = load_spec(path)
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return Draft202012Validator(schema)


def request_schema(path: Path, api_path: str, method: str = "post") -> str | None:
    """The component schema name of an operation's JSON request body, if it has one by ref."""
    op = load_spec(path)["paths"].get(api_path, {}).get(method, {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not schema:
        return None
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


@lru_cache(maxsize=32)
def inline_validator(path: Path, api_path: str, method: str) -> Draft202012Validator | None:
    """A validator for an operation whose request schema is written inline (e.g. POST /keys)."""
    spec = load_spec(path)
    op = spec["paths"].get(api_path, {}).get(method, {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    return Draft202012Validator({**schema, "components": spec["components"]})


def validation_error(validator: Draft202012Validator, body: Any) -> str | None:
    error = best_match(validator.iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(body)"
    return f"request body does not match the OpenRouter API description at {where}: {error.message}"


class FaultSpec(BaseModel):
    behavior: str = Field(description="behavior name, or '*' for any")
    fault: Literal["402", "429", "500", "slow", "pii", "malformed_json"]
    count: int = Field(default=1, ge=1)
    retry_after: float | None = None
    delay_s: float = 5.0


@dataclass
class _State:
    scripts_path: Path | None
    spec_path: Path
    validate: bool
    scripts: dict[str, list[str]]
    scripts_mtime: float
    counters: dict[str, itertools.count[int]]
    faults: list[FaultSpec]
    requests: deque[dict[str, Any]]

    def reload_scripts(self) -> None:
        if self.scripts_path is None or not self.scripts_path.exists():
            return
        mtime = self.scripts_path.stat().st_mtime
        if mtime == self.scripts_mtime:
            return
        raw = yaml.safe_load(self.scripts_path.read_text()) or {}
        scripts: dict[str, list[str]] = {}
        for name, entry in raw.items():
            answers = entry.get("answers") if isinstance(entry, dict) else entry
            scripts[str(name)] = [a if isinstance(a, str) else json.dumps(a) for a in answers or []]
        self.scripts = scripts
        self.scripts_mtime = mtime

    def take_fault(self, behavior: str) -> FaultSpec | None:
        for fault in self.faults:
            if fault.behavior in (behavior, "*"):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def answer(self, behavior: str, messages: list[dict[str, Any]]) -> str:
        self.reload_scripts()
        answers = self.scripts.get(behavior)
        if answers:
            counter = self.counters.setdefault(behavior, itertools.count())
            return answers[next(counter) % len(answers)]
        last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        content = last.get("content") if last else ""
        text = content if isinstance(content, str) else json.dumps(content)
        return f"local answer for {behavior}: {text[:80]}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status, headers=headers)


def _key_print(request: Request) -> str | None:
    """A fingerprint of the key the request carried, never the key: the request log is read
    over HTTP and kept in memory, and a secret must not be either place."""
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ").strip() or request.headers.get("x-api-key", "").strip()
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def create_app(
    scripts_path: Path | None = None,
    spec_path: Path | None = None,
    *,
    validate: bool = True,
    cost_usd: float = 0.0,
) -> FastAPI:
    """The provider as an ASGI app; state (faults, request log, script cursors) is per app.

    `cost_usd` is the usage cost reported per chat completion (OpenRouter reports one), so
    budget tests can exercise spend through a provider that stays on the machine.
    """
    state = _State(
        scripts_path=scripts_path,
        spec_path=spec_path or DEFAULT_SPEC,
        validate=validate,
        scripts={},
        scripts_mtime=0.0,
        counters={},
        faults=[],
        requests=deque(maxlen=1000),
    )
    app = FastAPI(title="cleanday local model provider", docs_url=None, redoc_url=None)
    app.state.provider = state

    async def _read(request: Request, schema: str, shape: str) -> tuple[Any, Response | None]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None, _error(400, "request body is not JSON")
        state.requests.append(
            {"path": request.url.path, "shape": shape, "body": body, "key": _key_print(request)}
        )
        if state.validate:
            problem = validation_error(validator_for(state.spec_path, schema), body)
            if problem:
                return body, _error(400, problem)
        return body, None

    async def _fault(behavior: str) -> tuple[Response | None, str | None]:
        fault = state.take_fault(behavior)
        if fault is None:
            return None, None
        if fault.fault == "402":
            return _error(402, "Insufficient credits on this key"), None
        if fault.fault == "429":
            retry = fault.retry_after if fault.retry_after is not None else 1
            return _error(429, "Rate limited", {"Retry-After": f"{retry:g}"}), None
        if fault.fault == "500":
            return _error(500, "Internal server error"), None
        if fault.fault == "slow":
            await asyncio.sleep(fault.delay_s)
            return None, None
        if fault.fault == "pii":
            return None, PII_ANSWER
        return None, MALFORMED_JSON_ANSWER

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body, problem = await _read(request, "ChatRequest", "openai")
        if problem is not None:
            return problem
        behavior = str(body.get("user") or "anonymous")
        failed, forced = await _fault(behavior)
        if failed is not None:
            return failed
        messages = body.get("messages") or []
        text = forced or state.answer(behavior, messages)
        tin = _tokens(json.dumps(messages))
        tout = _tokens(text)
        return JSONResponse(
            {
                "id": f"local-{len(state.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or "local",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {
                    "prompt_tokens": tin,
                    "completion_tokens": tout,
                    "total_tokens": tin + tout,
                    "cost": cost_usd,
                },
            }
        )

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        body, problem = await _read(request, "MessagesRequest", "anthropic")
        if problem is not None:
            return problem
        behavior = str((body.get("metadata") or {}).get("user_id") or "anonymous")
        failed, forced = await _fault(behavior)
        if failed is not None:
            return failed
        msgs = body.get("messages") or []
        text = forced or state.answer(behavior, msgs)
        return JSONResponse(
            {
                "id": f"msg_local_{len(state.requests)}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": _tokens(json.dumps(msgs)),
                    "output_tokens": _tokens(text),
                },
            }
        )

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        # OpenRouter's model list, empty: the local provider knows no model metadata, and the
        # router then takes timeout classes from the preset and its config
        return {"data": [], "total_count": 0, "links": {"next": None}}

    @app.post("/_control/faults")
    async def add_fault(fault: FaultSpec) -> dict[str, Any]:
        state.faults.append(fault)
        return {"queued": len(state.faults)}

    @app.get("/_control/requests")
    async def requests_seen() -> list[dict[str, Any]]:
        return list(state.requests)

    @app.post("/_control/reset")
    async def reset() -> dict[str, bool]:
        state.faults.clear()
        state.requests.clear()
        state.counters.clear()
        return {"reset": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run_local_provider(
    host: str = "127.0.0.1",
    port: int | None = None,
    scripts_path: Path | None = None,
    spec_path: Path | None = None,
) -> None:
    """Serve the local provider until interrupted (the embedded stack runs this).

    Defaults come from the settings: CLEANDAY_LOCAL_PROVIDER_PORT, the scripts in
    `<behaviors dir>/local_scripts.yaml`, and CLEANDAY_OPENROUTER_SPEC for the description.
    """
    from cleanday.config import get_settings

    settings = get_settings()
    app = create_app(
        scripts_path or settings.behaviors_dir / "local_scripts.yaml",
        spec_path or settings.openrouter_spec,
    )
    uvicorn.run(app, host=host, port=port or settings.local_provider_port, log_level="warning")


class ServerThread:
    """An ASGI app served by uvicorn in a background thread, for tests and the benchmark."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.host = host
        self.port = port

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("local provider did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def local_provider_in_thread(
    scripts_path: Path | None = None, spec_path: Path | None = None, *, cost_usd: float = 0.0
) -> Iterator[ServerThread]:
    """Start the local provider on a free port in a thread; yields it with `.url`."""
    server = ServerThread(create_app(scripts_path, spec_path, cost_usd=cost_usd)).start()
    try:
        yield server
    finally:
        server.stop()
