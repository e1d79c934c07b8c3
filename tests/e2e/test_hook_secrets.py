"""A webhook's secret is resolved like any secret reference: a plugged-in scheme works there too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cleanday.config import Settings
from cleanday.db import make_engine, migrate
from cleanday.ledger import LedgerService
from cleanday.secrets import register_scheme, unregister_scheme
from cleanday.service import create_app
from cleanday.service.routes import hooks
from cleanday.webhooks import sign

TOKEN = "test-canary-hook-token-0b9e"
HOOK_SECRET = "vault-canary-hook-secret-4d17"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

WORK_ORDER = """\
name: hook_notes
description: notes from a webhook
trigger: {type: webhook, secret_ref: "vault:hooks/hook_notes"}
reports: the note it kept
key: {ref: "env:KEY_HOOK_NOTES", cap_usd: 5}
preset: {name: hook_notes, model: local/echo}
entry: "tests.e2e.test_api:noop_step"
"""


class Starter:
    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, behavior: str, input: dict[str, Any], workflow_id: str) -> str:
        self.started.append((behavior, input))
        return workflow_id


@pytest.fixture
def vault() -> Iterator[None]:
    register_scheme("vault", lambda path: HOOK_SECRET if path == "hooks/hook_notes" else "")
    yield
    unregister_scheme("vault")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LedgerService]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    yield LedgerService(engine, clock=lambda: NOW)
    engine.dispose()


def test_a_webhook_secret_in_a_plugged_in_scheme_verifies_the_delivery(
    vault: None, service: LedgerService
) -> None:
    app = create_app(Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_SCHEDULER=False), service)
    app.include_router(hooks.router)
    starter = Starter()
    app.state.run_starter = starter
    app.state.clock = lambda: NOW
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = client.post("/api/v1/behaviors", json={"work_order": WORK_ORDER}, headers=auth)
        assert r.status_code == 201, r.text
        body = json.dumps({"note": "hello"}).encode()
        forged = sign(b"not-the-secret", body, int(NOW.timestamp()))
        assert client.post("/hooks/hook_notes", content=body, headers=forged).status_code == 401
        signed = sign(HOOK_SECRET.encode(), body, int(NOW.timestamp()))
        r = client.post("/hooks/hook_notes", content=body, headers=signed)
        assert r.status_code == 202, r.text
    assert starter.started == [("hook_notes", {"note": "hello"})]
