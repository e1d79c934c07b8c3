"""An accepted webhook is never lost, and never run twice: deliveries are stored in the ledger
database before they are answered, started in order when Temporal answers, and their signatures
refuse a replay sent to any service instance on the same database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.ledger import LedgerService
from cleanday.models import T_WEBHOOK_DELIVERIES
from cleanday.registration import parse_work_order
from cleanday.runtime.starter import run_inbox
from cleanday.service import create_app
from cleanday.service.routes import hooks
from cleanday.webhook_inbox import WebhookInbox
from cleanday.webhooks import sign

TOKEN = "test-canary-hook-token-71c3"
SECRET = "test-canary-hook-secret-a94e"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

WORK_ORDER = """\
name: hook_notes
description: notes from a webhook
trigger: {type: webhook, secret_ref: "env:HOOK_SECRET_NOTES", max_body_bytes: 4096}
reports: the note it kept
key: {ref: "env:KEY_HOOK_NOTES", cap_usd: 5}
preset: {name: hook_notes, model: local/echo}
entry: "tests.e2e.test_api:noop_step"
"""


class Temporal:
    """A RunStarter standing in for Temporal: up or down, refusing a workflow ID it has
    already started as Temporal's REJECT_DUPLICATE does (which the real starter takes as
    started)."""

    def __init__(self) -> None:
        self.up = True
        self.runs: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.calls = 0

    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        self.calls += 1
        if not self.up:
            raise RuntimeError("Failed client connect: connection refused")
        if workflow_id not in self.runs:
            self.runs[workflow_id] = input
            self.order.append(workflow_id)
        return workflow_id


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def temporal() -> Temporal:
    return Temporal()


def _instance(database_url: str, temporal: Temporal, clock: Clock) -> FastAPI:
    """One ledger service instance on the shared database, with webhooks wired to `temporal`."""
    settings = Settings(
        CLEANDAY_TOKEN=TOKEN, CLEANDAY_SCHEDULER=False, CLEANDAY_WEBHOOK_START_WAIT_SECONDS=0.5
    )
    app = create_app(settings, LedgerService(make_engine(database_url), clock=clock))
    app.include_router(hooks.router)
    app.state.run_starter = temporal
    app.state.clock = clock
    return app


@pytest_asyncio.fixture
async def instances(
    database_url: str, temporal: Temporal, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two service instances on one ledger database, as two processes behind a balancer."""
    monkeypatch.setenv("HOOK_SECRET_NOTES", SECRET)
    a, b = _instance(database_url, temporal, clock), _instance(database_url, temporal, clock)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://a") as ha,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=b), base_url="http://b") as hb,
    ):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = await ha.post("/api/v1/behaviors", json={"work_order": WORK_ORDER}, headers=auth)
        assert r.status_code == 201, r.text
        yield ha, hb
    for app in (a, b):
        app.state.service.engine.dispose()


def _signed(body: bytes, at: datetime = NOW) -> dict[str, str]:
    return {**sign(SECRET.encode(), body, int(at.timestamp())), "content-type": "application/json"}


def _inbox(http: httpx.AsyncClient) -> WebhookInbox:
    app: FastAPI = http._transport.app  # type: ignore[attr-defined]
    inbox: WebhookInbox = app.state.webhook_inbox
    return inbox


async def test_a_replay_sent_to_another_instance_on_the_same_database_is_refused(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], temporal: Temporal
) -> None:
    """Today each instance keeps its own SQLite file of signatures, so the replay passed."""
    a, b = instances
    body = json.dumps({"note": "once"}).encode()
    headers = _signed(body)
    first = await a.post("/hooks/hook_notes", content=body, headers=headers)
    assert first.status_code == 202 and first.json()["started"] is True, first.text
    replay = await b.post("/hooks/hook_notes", content=body, headers=headers)
    assert replay.status_code == 409, replay.text
    assert "replay refused" in replay.json()["detail"]
    assert list(temporal.runs.values()) == [{"note": "once"}]


async def test_concurrent_copies_of_one_delivery_on_two_instances_start_one_run(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], temporal: Temporal
) -> None:
    a, b = instances
    body = json.dumps({"note": "burst"}).encode()
    headers = _signed(body)
    answers = await asyncio.gather(
        *[(a if i % 2 else b).post("/hooks/hook_notes", content=body, headers=headers)
          for i in range(20)]
    )  # fmt: skip
    assert sorted(r.status_code for r in answers) == [202] + [409] * 19
    assert len(temporal.runs) == 1


async def test_while_temporal_is_down_deliveries_are_accepted_at_once_and_start_in_order(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], temporal: Temporal
) -> None:
    """Today: 500 after Temporal's connect timeout, 409 for the retry, and no run, ever."""
    a, b = instances
    temporal.up = False
    ids = []
    for i, http in enumerate([a, b, a]):
        body = json.dumps({"note": f"n{i}"}).encode()
        r = await http.post("/hooks/hook_notes", content=body, headers=_signed(body))
        assert r.status_code == 202, r.text
        assert r.json()["started"] is False and "stored" in r.json()["detail"]
        ids.append(r.json()["workflow_id"])
    assert temporal.runs == {}
    assert [d.workflow_id for d in _inbox(a).waiting()] == ids

    temporal.up = True
    assert await _inbox(b).start_waiting() == 3  # one instance's retry round
    assert temporal.order == ids  # in the order they were accepted
    assert [temporal.runs[i] for i in ids] == [{"note": "n0"}, {"note": "n1"}, {"note": "n2"}]
    assert _inbox(a).waiting() == []
    # the other instance's round, a moment later, finds nothing left to start
    assert await _inbox(a).start_waiting() == 0


async def test_a_start_that_fails_midway_keeps_the_rest_waiting_in_order(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], temporal: Temporal
) -> None:
    a, _ = instances
    temporal.up = False
    for i in range(3):
        body = json.dumps({"note": f"m{i}"}).encode()
        r = await a.post("/hooks/hook_notes", content=body, headers=_signed(body))
        assert r.status_code == 202, r.text
    inbox = _inbox(a)
    calls = temporal.calls
    assert await inbox.start_waiting() == 0
    assert temporal.calls == calls + 1  # Temporal down is asked once per round, not per row
    waiting = inbox.waiting()
    with inbox.engine.connect() as conn:
        errors = (
            conn.execute(
                sa.select(T_WEBHOOK_DELIVERIES.c.last_error).order_by(T_WEBHOOK_DELIVERIES.c.id)
            )
            .scalars()
            .all()
        )
    assert "connection refused" in (errors[0] or "") and errors[1:] == [None, None]
    temporal.up = True
    assert await inbox.start_waiting() == 3
    assert temporal.order == [d.workflow_id for d in waiting]


async def test_started_signatures_are_forgotten_past_their_tolerance_waiting_ones_never(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient], temporal: Temporal, clock: Clock
) -> None:
    a, _ = instances
    started_body, waiting_body = b'{"note": "started"}', b'{"note": "waiting"}'
    for body in (started_body, waiting_body):
        r = await a.post("/hooks/hook_notes", content=body, headers=_signed(body))
        assert r.status_code == 202, r.text
        temporal.up = False
    inbox = _inbox(a)
    clock.at = NOW + timedelta(seconds=299)  # still within the 300 s tolerance: kept
    assert await asyncio.to_thread(inbox.forget_expired) == 0
    clock.at = NOW + timedelta(seconds=301)
    assert await asyncio.to_thread(inbox.forget_expired) == 1
    assert [d.payload for d in inbox.waiting()] == [{"note": "waiting"}]
    # the forgotten signature is past its tolerance: its replay is refused as stale
    replay = await a.post("/hooks/hook_notes", content=started_body, headers=_signed(started_body))
    assert replay.status_code == 401 and "old" in replay.json()["detail"], replay.text


async def test_a_delivery_the_database_cannot_store_is_503_and_its_retry_is_accepted(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
    temporal: Temporal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = instances
    inbox = _inbox_of(a, temporal)
    body = b'{"note": "db down"}'
    real_accept = inbox.accept

    def down(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(inbox, "accept", down)
    r = await a.post("/hooks/hook_notes", content=body, headers=_signed(body))
    assert r.status_code == 503 and "try again" in r.json()["detail"], r.text
    monkeypatch.setattr(inbox, "accept", real_accept)
    r = await a.post("/hooks/hook_notes", content=body, headers=_signed(body))
    assert r.status_code == 202, r.text
    assert list(temporal.runs.values()) == [{"note": "db down"}]


def _inbox_of(http: httpx.AsyncClient, temporal: Temporal) -> WebhookInbox:
    app: FastAPI = http._transport.app  # type: ignore[attr-defined]
    inbox = WebhookInbox(app.state.service.engine, temporal, clock=app.state.clock)
    app.state.webhook_inbox = inbox
    return inbox


@pytest.fixture
def one_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    monkeypatch.setenv("HOOK_SECRET_NOTES", SECRET)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    app = _instance(url, Temporal(), Clock(NOW))
    app.state.service.register_work_order(
        parse_work_order(WORK_ORDER), "hook_notes.yaml", WORK_ORDER
    )
    yield app
    app.state.service.engine.dispose()


async def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(
    one_instance: FastAPI,
) -> None:
    """Today the whole body was read into memory first (400 MiB: RSS 141 -> 682 MB)."""
    chunk = b"x" * 65536
    total = 400 * 1024 * 1024
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.disconnect"}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pulled < total}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/hooks/hook_notes",
        "raw_path": b"/hooks/hook_notes",
        "query_string": b"",
        # no content-length: the sender streams an unsigned chunked body
        "headers": [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("svc", 80),
        "app": one_instance,
    }
    await one_instance(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert pulled <= 4096 + len(chunk)  # read up to the limit, and not a chunk further


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    one_instance: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=one_instance)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        body = b"{" + b" " * 5000 + b"}"
        r = await http.post("/hooks/hook_notes", content=body, headers=_signed(body))
        assert r.status_code == 413 and "4096" in r.json()["detail"], r.text
        small = b'{"note": "fits"}'
        r = await http.post("/hooks/hook_notes", content=small, headers=_signed(small))
        assert r.status_code == 202, r.text


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_400_mib_unsigned_chunked_body_leaves_the_service_memory_flat(tmp_path: Path) -> None:
    """Today the service read it whole before the 413: RSS 141 -> 682 MB."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CLEANDAY_DATA_DIR": str(tmp_path), "HOOK_SECRET_NOTES": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.e2e.hook_server:app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no server"
                time.sleep(0.1)
        before = _rss_kib(server.pid)
        chunk = b"x" * 65536
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"POST /hooks/hook_notes HTTP/1.1\r\nHost: svc\r\n"
                b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
            )
            peak, sent = before, 0
            with contextlib.suppress(OSError):  # the server may close once it has answered
                while sent < 400 * 1024 * 1024:
                    conn.sendall(frame)
                    sent += len(chunk)
                    if sent % (32 * 1024 * 1024) == 0:
                        peak = max(peak, _rss_kib(server.pid))
                conn.sendall(b"0\r\n\r\n")
            answer = conn.recv(4096)
        peak = max(peak, _rss_kib(server.pid))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert peak - before < 50 * 1024, f"service RSS grew by {(peak - before) // 1024} MiB"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_service_starts_stored_deliveries_by_itself_once_temporal_answers(
    one_instance: FastAPI,
) -> None:
    temporal = Temporal()
    inbox = WebhookInbox(one_instance.state.service.engine, temporal, clock=Clock(NOW))
    one_instance.state.webhook_inbox = inbox
    run_inbox(one_instance, inbox, every_s=0.05)  # what attach_runtime does, on a short period
    temporal.up = False
    with TestClient(one_instance) as client:
        body = b'{"note": "while down"}'
        r = client.post("/hooks/hook_notes", content=body, headers=_signed(body))
        assert r.status_code == 202 and r.json()["started"] is False, r.text
        temporal.up = True
        deadline = time.monotonic() + 10
        while r.json()["workflow_id"] not in temporal.runs:
            assert time.monotonic() < deadline, "the stored delivery was never started"
            time.sleep(0.05)
    assert list(temporal.runs.values()) == [{"note": "while down"}]
