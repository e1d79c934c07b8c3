"""Operations endpoints on SQLite and PostgreSQL: `/metrics` reads the ledger's figures from its
database, `/healthz` answers, `/readyz` names what is wrong with a 503."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from cleanday.models import T_OUTBOX
from cleanday.outbox import Message, write
from cleanday.service import create_app
from tests.e2e.test_api import AUTH, REGISTERED_AT, Clock, register, settings


@pytest.fixture
def clock() -> Clock:
    return Clock(REGISTERED_AT)


@pytest.fixture
def service(engine: Any, clock: Clock) -> Any:
    from cleanday.ledger import LedgerService

    return LedgerService(engine, clock=clock)


async def _temporal_answers() -> None:
    return None


@pytest.fixture
def app(service: Any) -> FastAPI:
    app = create_app(settings(), service)
    app.state.temporal_probe = _temporal_answers
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run(behavior: str, run_id: str, *, outcome: str = "succeeded", gate: str | None = None) -> Any:
    finished = REGISTERED_AT + timedelta(hours=1)
    gates = [{"name": "schema", "passed": True}]
    if gate:
        gates.append({"name": gate, "passed": False, "reason": f"{gate} said no"})
    return {
        "behavior": behavior,
        "run_id": run_id,
        "started_at": (finished - timedelta(seconds=5)).isoformat(),
        "finished_at": finished.isoformat(),
        "outcome": outcome,
        "gates": gates,
        "cost_usd": 0.01,
    }


def _bind(engine: Engine, behavior: str, cap: float, spent: float) -> None:
    now = REGISTERED_AT.replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into routing_bindings (behavior, key_ref, cap_usd, cadence, transports, "
                "guardrails, bound_at, updated_at) values (:b, :k, :cap, 'month', '[]', '{}', "
                ":now, :now)"
            ),
            {"b": behavior, "k": f"env:KEY_{behavior.upper()}", "cap": cap, "now": now},
        )
        conn.execute(
            text(
                "insert into key_spend (behavior, at, estimate_usd, cost_usd, status, "
                "tokens_in, tokens_out, transport, model) "
                "values (:b, :at, :c, :c, 'settled', 0, 0, 'openrouter', 'm')"
            ),
            {"b": behavior, "at": now, "c": spent},
        )


def test_metrics_count_runs_gate_failures_tier_changes_spend_and_outbox_from_the_database(
    client: TestClient, service: Any, clock: Clock
) -> None:
    register(client, "alpha")
    register(client, "beta")
    for r in (
        run("alpha", "a1"),
        run("alpha", "a2"),
        run("alpha", "a3", outcome="failed", gate="schema_strict"),
        run("beta", "b1", outcome="blocked"),
    ):
        assert client.post("/api/v1/runs", json=r, headers=AUTH).status_code == 201
    # a report sent again is the same run: counted once
    assert client.post("/api/v1/runs", json=run("alpha", "a1"), headers=AUTH).status_code == 200
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    assert client.post("/api/v1/behaviors/beta/override", json=forced, headers=AUTH).is_success
    _bind(service.engine, "alpha", cap=5.0, spent=1.25)
    with service.engine.begin() as conn:
        write(conn, [Message("probe", "note", "k1", {"text": "x"})], REGISTERED_AT)
        write(conn, [Message("probe", "note", "k2", {"text": "y"})], REGISTERED_AT)
    clock.now = REGISTERED_AT + timedelta(minutes=10)

    m = samples(client)
    assert m[("cleanday_runs_total", (("behavior", "alpha"), ("outcome", "succeeded")))] == 2
    assert m[("cleanday_runs_total", (("behavior", "alpha"), ("outcome", "failed")))] == 1
    assert m[("cleanday_runs_total", (("behavior", "beta"), ("outcome", "blocked")))] == 1
    assert m[("cleanday_gate_failures_total", (("gate", "schema_strict"),))] == 1
    assert m[("cleanday_promoted_total", (("behavior", "beta"),))] >= 1
    key = (("behavior", "alpha"), ("key", "env:KEY_ALPHA"))
    assert m[("cleanday_spend_usd", key)] == pytest.approx(1.25)
    assert m[("cleanday_spend_cap_usd", key)] == 5.0
    assert m[("cleanday_outbox_depth", (("target", "probe"),))] == 2
    assert m[("cleanday_outbox_oldest_age_seconds", (("target", "probe"),))] == 600

    # the fast path's requests are timed under their route's template, not their path
    ingest = (("method", "POST"), ("route", "/api/v1/runs"), ("status", "201"))
    assert m[("cleanday_http_request_duration_seconds_count", ingest)] == 4
    client.get("/api/v1/behaviors/alpha/state")
    client.get("/api/v1/behaviors/alpha")
    m = samples(client)
    state = (("method", "GET"), ("route", "/api/v1/behaviors/{name}/state"), ("status", "200"))
    assert m[("cleanday_http_request_duration_seconds_count", state)] == 1
    one = (("method", "GET"), ("route", "/api/v1/behaviors/{name}"), ("status", "200"))
    assert m[("cleanday_http_request_duration_seconds_count", one)] == 1


def test_metrics_a_demotion_counts_under_its_behavior(client: TestClient) -> None:
    register(client, "gamma")
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    assert client.post("/api/v1/behaviors/gamma/override", json=forced, headers=AUTH).is_success
    failed = run("gamma", "g1", gate="schema_strict")
    assert client.post("/api/v1/runs", json=failed, headers=AUTH).status_code == 201
    assert samples(client)[("cleanday_demoted_total", (("behavior", "gamma"),))] == 1


def test_outbox_depth_drops_when_a_row_is_delivered(client: TestClient, service: Any) -> None:
    with service.engine.begin() as conn:
        write(conn, [Message("notion", "page", "n1", {})], REGISTERED_AT)
    assert samples(client)[("cleanday_outbox_depth", (("target", "notion"),))] == 1
    with service.engine.begin() as conn:
        conn.execute(T_OUTBOX.update().values(delivered_at=datetime.now(UTC)))
    assert ("cleanday_outbox_depth", (("target", "notion"),)) not in samples(client)


def test_healthz_answers_and_readyz_is_ready_when_everything_answers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert set(r.json()["checks"]) == {"database", "schema", "temporal"}


def test_readyz_is_503_naming_temporal_when_it_does_not_answer(client: TestClient) -> None:
    from cleanday.service import readiness

    closed = settings().model_copy(update={"temporal_address": "127.0.0.1:1"})
    client.app.state.temporal_probe = readiness.settings_probe(closed)  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"]["ok"] and checks["schema"]["ok"]
    assert not checks["temporal"]["ok"]
    assert "127.0.0.1:1" in checks["temporal"]["detail"]


def test_readyz_is_503_naming_the_migration_when_the_schema_is_behind(
    client: TestClient, service: Any
) -> None:
    with service.engine.begin() as conn:  # as a database left at the first migration says
        conn.execute(text("update alembic_version set version_num = '0001_ledger'"))
    r = client.get("/readyz")
    assert r.status_code == 503
    schema = r.json()["checks"]["schema"]
    assert not schema["ok"]
    assert "0001_ledger" in schema["detail"] and "cleanday migrate" in schema["detail"]


def test_readyz_is_503_when_the_database_does_not_answer(tmp_path: Any) -> None:
    from cleanday.ledger import LedgerService

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    service = LedgerService.open(settings(), url=url)
    app = create_app(settings(), service)
    app.state.temporal_probe = _temporal_answers
    service.engine.dispose()
    (tmp_path / "ledger.db").unlink()
    (tmp_path / "ledger.db").mkdir()  # the file is now a directory: SQLite cannot open it
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert not r.json()["checks"]["database"]["ok"]
