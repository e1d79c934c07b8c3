"""Webhook-triggered runs: a verified delivery starts one run; anything else starts nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml
from fastapi import FastAPI
from workflows.behavior_run import BehaviorRun

from cleanday.config import Settings
from cleanday.domain import Tier
from cleanday.runtime.starter import LazyTemporalRunStarter, TemporalRunStarter
from cleanday.service.routes import hooks
from cleanday.webhook_inbox import WebhookInbox
from cleanday.webhooks import sign
from tests.temporal.harness import Stack

pytestmark = pytest.mark.temporal

SECRET = b"test-hook-secret-5d2a"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BEHAVIORS = Path(__file__).resolve().parents[2] / "behaviors"


class CountingStarter:
    def __init__(self, inner: TemporalRunStarter) -> None:
        self.inner, self.started = inner, []  # type: list[str]

    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        self.started.append(workflow_id)
        return await self.inner(behavior, input, workflow_id)


@pytest_asyncio.fixture
async def hook_app(
    stack: Stack, ledger: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, CountingStarter, Stack]]:
    """The real ledger service with the hooks router, starting runs on the test server."""
    monkeypatch.setenv("CLEANDAY_WEBHOOK_SECRET_WEBHOOK_LOGGER", SECRET.decode())
    raw = yaml.safe_load((BEHAVIORS / "webhook_logger.yaml").read_text())
    await stack.register(raw, tier=Tier.C)
    ledger.include_router(hooks.router)
    starter = CountingStarter(TemporalRunStarter(stack.client, stack.task_queue))
    ledger.state.run_starter = starter
    ledger.state.clock = lambda: NOW
    transport = httpx.ASGITransport(app=ledger)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http, starter, stack


def _signed(body: bytes, at: datetime = NOW, secret: bytes = SECRET) -> dict[str, str]:
    return {**sign(secret, body, int(at.timestamp())), "content-type": "application/json"}


async def test_verified_webhook_starts_one_run_with_the_body_as_input(hook_app: Any) -> None:
    http, starter, stack = hook_app
    body = json.dumps({"event_id": "evt-1", "kind": "order.created"}).encode()
    response = await http.post("/hooks/webhook_logger", content=body, headers=_signed(body))
    assert response.status_code == 202, response.text
    run_id = response.json()["workflow_id"]
    state = await stack.client.get_workflow_handle_for(BehaviorRun.run, run_id).result()
    assert state.outcome == "succeeded" and state.acted, state
    log = (stack.data_dir / "sinks" / "webhook_logger" / "events.log").read_text()
    assert "[evt-1]" in log and "order.created" in log
    assert starter.started == [run_id]


@pytest.mark.parametrize(
    ("case", "status"),
    [("bad signature", 401), ("stale", 401), ("replay", 409), ("oversized", 413)],
)
async def test_rejected_webhook_starts_nothing(hook_app: Any, case: str, status: int) -> None:
    http, starter, _ = hook_app
    body = json.dumps({"event_id": "evt-2"}).encode()
    headers = _signed(body)
    if case == "bad signature":
        headers = _signed(body, secret=b"not-the-secret")
    elif case == "stale":
        headers = _signed(body, at=NOW.replace(hour=8))
    elif case == "replay":
        first = await http.post("/hooks/webhook_logger", content=body, headers=headers)
        assert first.status_code == 202
        starter.started.clear()
    elif case == "oversized":
        body = json.dumps({"event_id": "evt-3", "pad": "x" * 70_000}).encode()
        headers = _signed(body)
    response = await http.post("/hooks/webhook_logger", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert starter.started == []


async def test_webhook_for_an_unknown_behavior_is_404(hook_app: Any) -> None:
    http, starter, _ = hook_app
    response = await http.post("/hooks/nobody", content=b"{}", headers=_signed(b"{}"))
    assert response.status_code == 404, response.text
    assert starter.started == []


async def test_webhook_for_a_paused_behavior_is_refused_and_starts_nothing(hook_app: Any) -> None:
    http, starter, stack = hook_app
    await stack.ledger.set_status("webhook_logger", "pause")
    body = json.dumps({"event_id": "evt-4"}).encode()
    response = await http.post("/hooks/webhook_logger", content=body, headers=_signed(body))
    assert response.status_code == 409, response.text
    assert starter.started == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_delivery_while_temporal_is_down_is_stored_and_its_run_starts_when_it_is_back(
    hook_app: Any,
) -> None:
    """Today's main answered 500 after ~6 s, its retry 409, and the run never existed."""
    http, _, stack = hook_app
    ledger: FastAPI = http._transport.app  # type: ignore[attr-defined]
    down = Settings(TEMPORAL_ADDRESS=f"127.0.0.1:{_closed_port()}", CLEANDAY_TASK_QUEUE="x")
    ledger.state.run_starter = LazyTemporalRunStarter(down)
    body = json.dumps({"event_id": "evt-down", "kind": "order.created"}).encode()
    headers = _signed(body)
    first = await http.post("/hooks/webhook_logger", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["started"] is False
    run_id = first.json()["workflow_id"]
    # the sender's identical retry is not a new delivery: the first one is stored
    retry = await http.post("/hooks/webhook_logger", content=body, headers=headers)
    assert retry.status_code == 409 and run_id in retry.json()["detail"], retry.text
    inbox: WebhookInbox = ledger.state.webhook_inbox
    assert [d.workflow_id for d in inbox.waiting()] == [run_id]

    # Temporal answers again: the stored delivery starts, once
    inbox.start_run = TemporalRunStarter(stack.client, stack.task_queue)
    await inbox.kick()
    assert inbox.waiting() == []
    state = await stack.client.get_workflow_handle_for(BehaviorRun.run, run_id).result()
    assert state.outcome == "succeeded" and state.acted, state
    log = (stack.data_dir / "sinks" / "webhook_logger" / "events.log").read_text()
    assert log.count("[evt-down]") == 1


async def test_a_stored_delivery_started_twice_runs_once(hook_app: Any) -> None:
    http, starter, stack = hook_app
    body = json.dumps({"event_id": "evt-twice"}).encode()
    response = await http.post("/hooks/webhook_logger", content=body, headers=_signed(body))
    assert response.status_code == 202 and response.json()["started"] is True, response.text
    run_id = response.json()["workflow_id"]
    await stack.client.get_workflow_handle_for(BehaviorRun.run, run_id).result()
    # a second instance that had not seen the start yet starts the same row again
    again = await starter.inner("webhook_logger", {"event_id": "evt-twice"}, run_id)
    assert again == run_id
    log = (stack.data_dir / "sinks" / "webhook_logger" / "events.log").read_text()
    assert log.count("[evt-twice]") == 1
