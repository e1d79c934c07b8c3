"""A fake OpenRouter for the management calls (keys, presets) and keyed chat completions.

It validates every request body against `../shared/specs/openrouter-openapi.yaml`, checks the
bearer key the way OpenRouter does (management key for /keys and /presets, an issued key for
inference) and records what it received so tests can assert on it. GET /models serves the
model list a test sets, checked against the description's ModelsListResponse.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cleanday.localprovider import (
    DEFAULT_SPEC,
    inline_validator,
    load_spec,
    validation_error,
    validator_for,
)

NOW = "2026-11-21T12:00:00Z"


@dataclass
class FakeOpenRouterState:
    management_key: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> key record
    secrets: dict[str, str] = field(default_factory=dict)  # issued secret -> hash
    presets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # slug -> versions
    requests: list[dict[str, Any]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    # GET /models: the list served, the status to answer with, and a gate that holds the
    # answer back until a test sets it (None: answer at once)
    models: list[dict[str, Any]] = field(default_factory=list)
    models_status: int = 200
    models_gate: threading.Event | None = None
    # the query of every GET /models, apart from `requests` (management and inference calls)
    models_requests: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.requests.clear()
        self.keys.clear()
        self.secrets.clear()
        self.presets.clear()
        self.models.clear()
        self.models_status = 200
        self.models_gate = None
        self.models_requests.clear()


def fake_model(model_id: str, supported_parameters: list[str]) -> dict[str, Any]:
    """One entry of GET /models as the OpenRouter API description requires it."""
    author, _, slug = model_id.partition("/")
    return {
        "id": model_id,
        "canonical_slug": model_id,
        "name": slug or model_id,
        "created": 1763726400,
        "pricing": {"prompt": "0.000001", "completion": "0.000002"},
        "context_length": 128000,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
        },
        "top_provider": {"is_moderated": False, "context_length": 128000},
        "per_request_limits": None,
        "supported_parameters": supported_parameters,
        "default_parameters": None,
        "supported_voices": None,
        "links": {"details": f"/api/v1/models/{author}/{slug}/endpoints"},
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status)


def create_fake_openrouter(management_key: str, spec_path: Path = DEFAULT_SPEC) -> FastAPI:
    state = FakeOpenRouterState(management_key=management_key)
    app = FastAPI()
    app.state.fake = state

    async def _body(request: Request, validator: Any) -> tuple[Any, Response | None]:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        state.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "body": body,
                "authorization": request.headers.get("authorization", ""),
            }
        )
        if validator is not None:
            problem = validation_error(validator, body)
            if problem:
                return body, _error(400, problem)
        return body, None

    def _management(request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {state.management_key}":
            return _error(401, "Management key required")
        return None

    def _key_record(key_hash: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "hash": key_hash,
            "name": body["name"],
            "label": body["name"],
            "disabled": False,
            "limit": body.get("limit"),
            "limit_remaining": body.get("limit"),
            "limit_reset": body.get("limit_reset"),
            "include_byok_in_limit": False,
            "usage": 0,
            "usage_daily": 0,
            "usage_weekly": 0,
            "usage_monthly": 0,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "created_at": NOW,
            "updated_at": None,
        }

    @app.post("/api/v1/keys")
    async def create_key(request: Request) -> Response:
        body, problem = await _body(request, inline_validator(spec_path, "/keys", "post"))
        if problem is not None:
            return problem
        if (denied := _management(request)) is not None:
            return denied
        n = next(state.counter)
        key_hash = hashlib.sha256(f"key-{n}".encode()).hexdigest()
        secret = f"fake-or-issued-{n}-{uuid.uuid4().hex[:8]}"
        state.keys[key_hash] = _key_record(key_hash, body)
        state.secrets[secret] = key_hash
        return JSONResponse({"data": state.keys[key_hash], "key": secret}, 201)

    @app.patch("/api/v1/keys/{key_hash}")
    async def update_key(key_hash: str, request: Request) -> Response:
        body, problem = await _body(request, inline_validator(spec_path, "/keys/{hash}", "patch"))
        if problem is not None:
            return problem
        if (denied := _management(request)) is not None:
            return denied
        if key_hash not in state.keys:
            return _error(404, "Key not found")
        state.keys[key_hash].update({k: v for k, v in body.items() if k != "name"})
        return JSONResponse({"data": state.keys[key_hash]})

    @app.post("/api/v1/presets/{slug}/chat/completions")
    async def publish_preset(slug: str, request: Request) -> Response:
        body, problem = await _body(request, validator_for(spec_path, "ChatRequest"))
        if problem is not None:
            return problem
        if (denied := _management(request)) is not None:
            return denied
        versions = state.presets.setdefault(slug, [])
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
        config = {k: v for k, v in body.items() if k not in ("messages", "stream")}
        version = {
            "id": str(uuid.uuid4()),
            "preset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, slug)),
            "version": len(versions) + 1,
            "config": config,
            "system_prompt": system,
            "created_at": NOW,
            "updated_at": NOW,
            "creator_id": "user_fake",
        }
        versions.append(version)
        return JSONResponse(
            {
                "data": {
                    "id": version["preset_id"],
                    "slug": slug,
                    "name": slug,
                    "description": None,
                    "status": "active",
                    "status_updated_at": None,
                    "designated_version_id": version["id"],
                    "designated_version": version,
                    "workspace_id": str(uuid.uuid4()),
                    "creator_user_id": "user_fake",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            }
        )

    models_op = load_spec(spec_path)["paths"]["/models"]["get"]
    models_params = {p["name"] for p in models_op["parameters"]}
    models_response = validator_for(spec_path, "ModelsListResponse")

    @app.get("/api/v1/models")
    async def list_models(request: Request) -> Response:
        state.models_requests.append(dict(request.query_params))
        unknown = set(request.query_params) - models_params
        if unknown:
            return _error(400, f"unknown query parameters {sorted(unknown)}")
        if state.models_gate is not None:
            await asyncio.to_thread(state.models_gate.wait)
        if state.models_status != 200:
            return _error(state.models_status, "models list unavailable")
        body = {"data": state.models, "total_count": len(state.models), "links": {"next": None}}
        problem = validation_error(models_response, body)
        if problem:  # the fake itself must answer as the API description says
            return _error(500, f"fake /models answer off the spec: {problem}")
        return JSONResponse(body)

    @app.post("/api/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body, problem = await _body(request, validator_for(spec_path, "ChatRequest"))
        if problem is not None:
            return problem
        secret = request.headers.get("authorization", "").removeprefix("Bearer ")
        if secret not in state.secrets:
            return _error(401, "No auth credentials found")
        model = body.get("model", "")
        if model.startswith("@preset/") and model.removeprefix("@preset/") not in state.presets:
            return _error(404, f"Preset {model} not found")
        return JSONResponse(
            {
                "id": "gen-fake",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "fake openrouter answer"},
                    }
                ],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "total_tokens": 15,
                    "cost": 0.0021,
                },
            }
        )

    return app
