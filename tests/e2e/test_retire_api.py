"""Retiring and reviving through the HTTP API, fast paths and routes alike, and the ledger client
a worker uses: 409 for a retired behavior's reports, the listing without it unless `?all=true`,
and a registration with `revive` bringing it back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cleanday.errors import BehaviorRetired
from cleanday.ledger_client import LedgerClient
from cleanday.service import create_app
from tests.e2e.test_api import (
    AUTH,
    REGISTERED_AT,
    TOKEN,
    Clock,
    _without_fast_paths,
    register,
    run_report,
    settings,
    work_order,
)


@pytest.fixture
def service(engine: Any) -> Any:
    from cleanday.ledger import LedgerService

    return LedgerService(engine, clock=Clock(REGISTERED_AT))


@pytest.fixture
def app(service: Any) -> FastAPI:
    return create_app(settings(), service)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _retire(client: TestClient, name: str) -> None:
    r = client.post(f"/api/v1/behaviors/{name}/retire", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "retired", r.text


def _names(client: TestClient, **params: str) -> list[str]:
    r = client.get("/api/v1/behaviors", params=params)
    assert r.status_code == 200, r.text
    return [row["name"] for row in r.json()]


def test_a_retired_behaviors_reports_get_409_from_the_fast_path_the_route_and_the_batch(
    app: FastAPI, client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    register(client, "beta")
    _retire(client, "alpha")
    before = len(service.history("alpha"))
    t = REGISTERED_AT + timedelta(hours=1)
    fast = client.post("/api/v1/runs", json=run_report("alpha", "late-1", t), headers=AUTH)
    with TestClient(_without_fast_paths(create_app(settings(), service))) as routed_client:
        routed = routed_client.post(
            "/api/v1/runs", json=run_report("alpha", "late-2", t), headers=AUTH
        )
    batch = client.post(
        "/api/v1/runs/batch",
        json=[run_report("beta", "b-1", t), run_report("alpha", "late-3", t)],
        headers=AUTH,
    )
    for answer in (fast, routed, batch):
        assert answer.status_code == 409, answer.text
        assert "alpha is retired" in answer.json()["detail"]
        assert "--revive" in answer.json()["detail"]
        assert answer.json()["error"] == "BehaviorRetired"
    assert "report 1 (late-3)" in batch.json()["detail"]
    assert len(service.history("alpha")) == before
    assert [e.kind.value for e in service.history("beta")] == ["registered"]  # all or nothing
    permit = client.post(
        "/api/v1/permits", json={"behavior": "alpha", "run_id": "late-1"}, headers=AUTH
    )
    assert permit.status_code == 403 and "retired" in permit.json()["detail"]


def test_the_listing_hides_retired_behaviors_unless_all_and_the_pane_unless_asked(
    client: TestClient,
) -> None:
    register(client, "alpha")
    register(client, "beta")
    _retire(client, "alpha")
    assert _names(client) == ["beta"]
    assert _names(client, all="true") == ["alpha", "beta"]
    assert "alpha" not in client.get("/").text
    assert "alpha" in client.get("/", params={"all": "1"}).text


def test_a_retired_name_is_refused_then_revived_at_a_and_its_key_reused_meanwhile(
    client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    assert client.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH)
    _retire(client, "alpha")
    again = client.post("/api/v1/behaviors", json={"work_order": work_order("alpha")}, headers=AUTH)
    assert again.status_code == 409
    assert "cleanday register --revive PATH" in again.json()["detail"]
    # its key is free: another behavior takes it, and then the revival must find another
    heir = client.post(
        "/api/v1/behaviors", json={"work_order": work_order("heir", key="KEY_ALPHA")}, headers=AUTH
    )
    assert heir.status_code == 201, heir.text
    clash = client.post(
        "/api/v1/behaviors", json={"work_order": work_order("alpha"), "revive": True}, headers=AUTH
    )
    assert clash.status_code == 409 and "already bound to behavior heir" in clash.json()["detail"]
    revived = client.post(
        "/api/v1/behaviors",
        json={"work_order": work_order("alpha", key="KEY_ALPHA_2"), "revive": True},
        headers=AUTH,
    )
    assert revived.status_code == 201, revived.text
    assert (revived.json()["status"], revived.json()["tier"]) == ("revived", "A")
    state = client.get("/api/v1/behaviors/alpha/state").json()
    assert (state["tier"], state["status"], state["clean_days"]) == ("A", "active", 0)
    t = REGISTERED_AT + timedelta(hours=2)
    ok = client.post("/api/v1/runs", json=run_report("alpha", "after-1", t), headers=AUTH)
    assert ok.status_code == 201, ok.text
    assert service.verify().ok


def test_the_ledger_client_raises_behavior_retired_for_a_retired_behaviors_report(
    app: FastAPI, client: TestClient
) -> None:
    register(client, "alpha")
    _retire(client, "alpha")
    report = run_report("alpha", "late-1", REGISTERED_AT + timedelta(hours=1))

    async def send() -> None:
        transport = httpx.ASGITransport(app=app)
        async with LedgerClient("http://ledger", TOKEN, transport=transport) as ledger:
            with pytest.raises(BehaviorRetired, match="alpha is retired"):
                await ledger.report_run(report)
            with pytest.raises(BehaviorRetired, match="cleanday register --revive PATH"):
                await ledger.register(work_order("alpha"))

    asyncio.run(send())


def test_a_worker_starting_with_a_retired_behaviors_file_skips_it_and_registers_the_rest(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    from cleanday.runtime.worker import register_all

    register(client, "alpha")
    _retire(client, "alpha")

    async def start() -> dict[str, int]:
        transport = httpx.ASGITransport(app=app)
        async with LedgerClient("http://ledger", TOKEN, transport=transport) as ledger:
            return await register_all(ledger, [work_order("alpha"), work_order("beta")])

    with caplog.at_level(logging.INFO, logger="cleanday.worker"):
        assert asyncio.run(start()) == {"beta": 1}
    assert "alpha is retired" in caplog.text
