"""The ledger service's HTTP API end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cleanday.config import Settings
from cleanday.service import create_app

TOKEN = "test-canary-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def noop_step(ctx: Any) -> Any:
    """Entry point of the test behaviors; the API tests never run it."""
    raise NotImplementedError


def work_order(name: str, key: str | None = None) -> str:
    return f"""\
name: {name}
description: test behavior {name}
trigger: {{type: cron, cron: "0 7 * * *", timezone: UTC}}
reports: what it did, in a sentence
key: {{ref: "env:{key or "KEY_" + name.upper()}", cap_usd: 5}}
preset: {{name: {name}, model: local/echo}}
entry: "tests.e2e.test_api:noop_step"
"""


class Clock:
    """A settable clock for the ledger service; tests move it forward by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# Sunday 2026-10-25; the following Sunday reviews are Nov 1 and Nov 8
REGISTERED_AT = datetime(2026, 10, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(REGISTERED_AT)


@pytest.fixture
def service(engine: Any, clock: Clock) -> Any:
    from cleanday.ledger import LedgerService

    return LedgerService(engine, clock=clock)


def settings(token: str | None = TOKEN) -> Settings:
    return Settings(CLEANDAY_TOKEN=token, CLEANDAY_SCHEDULER=False)


@pytest.fixture
def app(service: Any) -> FastAPI:
    return create_app(settings(), service)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def register(client: TestClient, name: str) -> None:
    r = client.post("/api/v1/behaviors", json={"work_order": work_order(name)}, headers=AUTH)
    assert r.status_code == 201, r.text


def run_report(behavior: str, run_id: str, finished: datetime, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "behavior": behavior,
        "run_id": run_id,
        "started_at": (finished - timedelta(minutes=2)).isoformat(),
        "finished_at": finished.isoformat(),
        "outcome": "succeeded",
        "gates": [{"name": "schema", "passed": True, "reason": ""}],
        "anomalies": [],
        "cost_usd": 0.01,
    }
    return body | over


def row(client: TestClient, name: str) -> dict[str, Any]:
    rows = {r["name"]: r for r in client.get("/api/v1/behaviors").json()}
    return rows[name]


def write_routes(app: FastAPI) -> list[str]:
    """Every POST path the OpenAPI document lists, with its parameters filled in; webhooks are
    signed by their senders, not the operator."""
    paths = []
    for path, ops in app.openapi()["paths"].items():
        if "post" in ops and not path.startswith(("/hooks", "/notion/webhook")):
            paths.append(
                path.replace("{name}", "alpha")
                .replace("{item}", "item-1")
                .replace("{week}", "2026-11-08")
                .replace("{day}", "2026-11-07")
            )
    return paths


def test_every_write_route_refuses_a_missing_or_wrong_token_and_writes_nothing(
    app: FastAPI, client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    before = len(service.history("alpha"))
    paths = write_routes(app)
    assert len(paths) >= 13  # register, runs, permits, pause/resume/retire, override, ...
    for path in paths:
        for headers in ({}, {"Authorization": "Bearer wrong-token-3f9a"}):
            r = client.post(path, json={}, headers=headers)
            assert r.status_code == 401, (path, r.status_code, r.text)
            assert "CLEANDAY_TOKEN" in r.json()["detail"]
    assert len(service.history("alpha")) == before


def test_a_server_without_a_token_refuses_writes_and_says_to_set_one(service: Any) -> None:
    with TestClient(create_app(settings(token=None), service)) as c:
        r = c.post("/api/v1/behaviors", json={"work_order": work_order("alpha")}, headers=AUTH)
    assert r.status_code == 401
    assert "set CLEANDAY_TOKEN" in r.json()["detail"]
    assert service.list_behaviors() == []


def test_a_server_without_a_token_refuses_the_fast_paths_writes_as_the_routes_do(
    service: Any,
) -> None:
    t = REGISTERED_AT + timedelta(hours=1)
    with TestClient(create_app(settings(), service)) as c:
        register(c, "alpha")
    with TestClient(create_app(settings(token=None), service)) as c:
        for path, body in (
            ("/api/v1/runs", run_report("alpha", "r-1", t)),
            ("/api/v1/permits", {"behavior": "alpha", "run_id": "r-1"}),
        ):
            r = c.post(path, json=body, headers=AUTH)
            assert r.status_code == 401, (path, r.text)
            assert "this server has no operator token" in r.json()["detail"]
    assert [e.kind.value for e in service.history("alpha")].count("run_reported") == 0


def test_a_run_report_with_a_naive_timestamp_is_refused_naming_the_field(
    client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    before = len(service.history("alpha"))
    body = run_report("alpha", "run-1", REGISTERED_AT + timedelta(hours=1))
    body["finished_at"] = "2026-10-25T10:00:00"
    r = client.post("/api/v1/runs", json=body, headers=AUTH)
    assert r.status_code == 422
    assert "finished_at" in r.json()["detail"]
    assert len(service.history("alpha")) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("cost_usd", None), ("outcome", "exploded"), ("gates", [{"name": "schema"}])],
)
def test_a_bad_run_report_gets_422_naming_the_field_and_nothing_is_written(
    client: TestClient, service: Any, field: str, value: Any
) -> None:
    register(client, "alpha")
    before = len(service.history("alpha"))
    body = run_report("alpha", "run-1", REGISTERED_AT + timedelta(hours=1))
    if value is None:
        del body[field]
    else:
        body[field] = value
    r = client.post("/api/v1/runs", json=body, headers=AUTH)
    assert r.status_code == 422
    assert field in r.json()["detail"]
    assert len(service.history("alpha")) == before


def test_reporting_the_same_run_twice_counts_it_once(client: TestClient, service: Any) -> None:
    register(client, "alpha")
    body = run_report("alpha", "run-1", REGISTERED_AT + timedelta(hours=1))
    first = client.post("/api/v1/runs", json=body, headers=AUTH)
    again = client.post("/api/v1/runs", json=body, headers=AUTH)
    assert (first.status_code, again.status_code) == (201, 200)
    runs = [e for e in client.get("/api/v1/behaviors/alpha/history").json()
            if e["kind"] == "run_reported"]  # fmt: skip
    assert len(runs) == 1


def test_a_run_for_an_unknown_behavior_is_404(client: TestClient) -> None:
    r = client.post("/api/v1/runs", json=run_report("ghost", "r", REGISTERED_AT), headers=AUTH)
    assert r.status_code == 404
    assert "ghost" in r.json()["detail"]


def test_a_key_already_bound_to_another_behavior_is_refused_with_409(client: TestClient) -> None:
    register(client, "alpha")
    body = {"work_order": work_order("beta", key="KEY_ALPHA")}
    r = client.post("/api/v1/behaviors", json=body, headers=AUTH)
    assert r.status_code == 409
    assert "alpha" in r.json()["detail"]


def test_an_invalid_work_order_is_422_naming_the_field(client: TestClient) -> None:
    text = work_order("alpha").replace('cron: "0 7 * * *"', "every: often")
    r = client.post("/api/v1/behaviors", json={"work_order": text}, headers=AUTH)
    assert r.status_code == 422
    assert "trigger" in r.json()["detail"]
    assert client.get("/api/v1/behaviors").json() == []


def test_reregistering_an_unchanged_work_order_is_200(client: TestClient) -> None:
    register(client, "alpha")
    r = client.post("/api/v1/behaviors", json={"work_order": work_order("alpha")}, headers=AUTH)
    assert r.status_code == 200


def test_a_permit_is_denied_at_a_with_the_reason_and_granted_at_c(
    client: TestClient,
) -> None:
    register(client, "alpha")
    ask = {"behavior": "alpha", "run_id": "run-1"}
    denied = client.post("/api/v1/permits", json=ask, headers=AUTH)
    assert denied.status_code == 403
    assert denied.json()["detail"]
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    assert client.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH).is_success
    granted = client.post("/api/v1/permits", json=ask, headers=AUTH)
    assert granted.status_code == 200, granted.text
    assert granted.json()["granted"] is True


def test_the_pending_batch_and_each_items_sign_off_are_readable(
    client: TestClient, clock: Clock
) -> None:
    register(client, "alpha")
    for run_id in ("run-1", "run-2"):
        proposed = run_report("alpha", run_id, clock.now, outcome="proposed")
        assert client.post("/api/v1/runs", json=proposed, headers=AUTH).status_code == 201
    pending = client.get("/api/v1/behaviors/alpha/items", params={"status": "pending"})
    assert [i["item_id"] for i in pending.json()] == ["run-1", "run-2"]
    approve = client.post(
        "/api/v1/behaviors/alpha/batch/approve", json={"items": ["run-1"]}, headers=AUTH
    )
    assert approve.is_success
    item = client.get("/api/v1/behaviors/alpha/items/run-1").json()
    assert (item["kind"], item["status"]) == ("proposal", "approved")
    pending = client.get("/api/v1/behaviors/alpha/items", params={"status": "pending"})
    assert [i["item_id"] for i in pending.json()] == ["run-2"]
    missing = client.get("/api/v1/behaviors/alpha/items/run-9")
    assert missing.status_code == 404 and "run-9" in missing.json()["detail"]
    bogus = client.get("/api/v1/behaviors/alpha/items", params={"status": "bogus"})
    assert bogus.status_code == 422


def test_a_paused_behavior_gets_no_permit_until_resumed(client: TestClient) -> None:
    register(client, "alpha")
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    client.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH)
    assert client.post("/api/v1/behaviors/alpha/pause", headers=AUTH).json()["status"] == "paused"
    ask = {"behavior": "alpha", "run_id": "run-2"}
    assert client.post("/api/v1/permits", json=ask, headers=AUTH).status_code == 403
    client.post("/api/v1/behaviors/alpha/resume", headers=AUTH)
    assert client.post("/api/v1/permits", json=ask, headers=AUTH).status_code == 200


def test_a_gate_failure_reported_at_c_demotes_to_b_and_shows_on_the_pane(
    client: TestClient,
) -> None:
    register(client, "alpha")
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    client.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH)
    failed = run_report(
        "alpha", "run-9", REGISTERED_AT + timedelta(hours=3), outcome="blocked",
        gates=[{"name": "sensitive_info", "passed": False, "reason": "email in output"}],
    )  # fmt: skip
    assert client.post("/api/v1/runs", json=failed, headers=AUTH).status_code == 201
    r = row(client, "alpha")
    assert (r["tier"], r["clean_days"]) == ("B", 0)
    assert r["last_gate_failure"] == "2026-10-25"
    assert "email in output" in r["last_failure_reason"]
    html = client.get("/").text
    assert "alpha" in html and "email in output" in html


def report_clean_days(client: TestClient, clock: Clock, name: str, days: int) -> None:
    for i in range(1, days + 1):
        finished = REGISTERED_AT + timedelta(days=i)
        clock.now = finished
        body = run_report(name, f"{name}-run-{i}", finished)
        assert client.post("/api/v1/runs", json=body, headers=AUTH).status_code == 201


def test_a_promote_decision_takes_effect_only_at_the_sunday_close(
    client: TestClient, clock: Clock
) -> None:
    register(client, "alpha")
    report_clean_days(client, clock, "alpha", 13)  # Mon Oct 26 .. Sat Nov 7
    sunday = date(2026, 11, 8)
    clock.now = datetime(2026, 11, 8, 10, 0, tzinfo=UTC)
    review = client.get(f"/api/v1/reviews/{sunday}").json()
    assert [c["name"] for c in review["candidates"]] == ["alpha"]
    decision = {"behavior": "alpha", "decision": "promote", "by": "ops"}
    r = client.post(f"/api/v1/reviews/{sunday}/decisions", json=decision, headers=AUTH)
    assert r.status_code == 200, r.text
    assert row(client, "alpha")["tier"] == "A"  # a decision alone promotes nothing

    not_sunday = client.post("/api/v1/reviews/2026-11-09/close", headers=AUTH)
    assert not_sunday.status_code == 422
    assert "Sunday" in not_sunday.json()["detail"]

    clock.now = datetime(2026, 11, 9, 0, 5, tzinfo=UTC)  # just after Sunday ends
    assert client.post(f"/api/v1/reviews/{sunday}/close", headers=AUTH).is_success
    again = client.post(f"/api/v1/reviews/{sunday}/close", headers=AUTH)
    assert again.is_success
    r2 = row(client, "alpha")
    assert (r2["tier"], r2["clean_days"]) == ("B", 0)  # one tier, clock at zero, once


def test_a_decision_names_its_door_and_a_saturday_one_is_refused_with_the_next_review(
    client: TestClient, clock: Clock
) -> None:
    register(client, "alpha")
    report_clean_days(client, clock, "alpha", 13)
    clock.now = datetime(2026, 11, 7, 18, 0, tzinfo=UTC)  # the Saturday before the review
    decision = {"behavior": "alpha", "decision": "promote", "by": "ops", "door": "cli"}
    early = client.post("/api/v1/reviews/2026-11-08/decisions", json=decision, headers=AUTH)
    assert early.status_code == 409
    assert "only during the Sunday of its review" in early.json()["detail"]
    assert "Next review: Sunday 2026-11-08 at 08:00" in early.json()["detail"]
    clock.now = datetime(2026, 11, 8, 10, 0, tzinfo=UTC)
    r = client.post("/api/v1/reviews/2026-11-08/decisions", json=decision, headers=AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["by"], r.json()["door"], r.json()["superseded_by"]) == ("ops", "cli", None)
    bad_door = {**decision, "door": "fax"}
    refused = client.post("/api/v1/reviews/2026-11-08/decisions", json=bad_door, headers=AUTH)
    assert refused.status_code == 422 and "door" in refused.text
    (recorded,) = client.get("/api/v1/reviews/2026-11-08").json()["decisions"]
    assert (recorded["by"], recorded["door"], recorded["stands"]) == ("ops", "cli", True)


def test_a_held_candidate_is_not_promoted(client: TestClient, clock: Clock) -> None:
    register(client, "alpha")
    report_clean_days(client, clock, "alpha", 13)
    clock.now = datetime(2026, 11, 8, 10, 0, tzinfo=UTC)
    decision = {"behavior": "alpha", "decision": "hold"}
    client.post("/api/v1/reviews/2026-11-08/decisions", json=decision, headers=AUTH)
    clock.now = datetime(2026, 11, 9, 0, 5, tzinfo=UTC)
    client.post("/api/v1/reviews/2026-11-08/close", headers=AUTH)
    assert row(client, "alpha")["tier"] == "A"


def test_closing_a_day_twice_is_harmless(client: TestClient, clock: Clock) -> None:
    register(client, "alpha")
    report_clean_days(client, clock, "alpha", 2)
    clock.now = datetime(2026, 10, 28, 0, 1, tzinfo=UTC)
    first = client.post("/api/v1/days/2026-10-27/close", headers=AUTH)
    second = client.post("/api/v1/days/2026-10-27/close", headers=AUTH)
    assert first.is_success and second.is_success
    assert row(client, "alpha")["clean_days"] == 2


def test_behavior_detail_history_and_pane_json_agree(client: TestClient) -> None:
    register(client, "alpha")
    detail = client.get("/api/v1/behaviors/alpha").json()
    assert detail["state"]["tier"] == "A"
    assert detail["work_order"]["key_ref"] == "env:KEY_ALPHA"
    assert client.get("/api/v1/behaviors/alpha/history").json()[0]["kind"] == "registered"
    assert client.get("/api/v1/behaviors/ghost").status_code == 404
    pane = row(client, "alpha")
    assert {"name", "tier", "status", "clean_days", "candidate", "last_gate_failure",
            "last_failure_reason"} <= set(pane)  # fmt: skip


def test_the_openapi_document_describes_the_run_report(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schema = doc["components"]["schemas"]["RunReport"]
    assert {"behavior", "run_id", "started_at", "finished_at", "outcome", "cost_usd"} <= set(
        schema["required"]
    )
    assert set(schema["properties"]["outcome"]["enum"]) >= {"succeeded", "failed", "blocked"}
    assert "bearer" in str(doc["components"]["securitySchemes"]).lower()
    created = doc["paths"]["/api/v1/runs"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/ReportResult")
    pane = doc["paths"]["/api/v1/behaviors"]["get"]["responses"]["200"]
    assert pane["content"]["application/json"]["schema"]["items"]["$ref"].endswith("/BehaviorRow")
    assert "/api/v1/permits" in doc["paths"]


def test_the_app_runs_the_ledger_clocks_in_its_lifespan_when_asked(service: Any) -> None:
    st = Settings(CLEANDAY_TOKEN=TOKEN, CLEANDAY_SCHEDULER=True)
    app = create_app(st, service)
    with TestClient(app):
        scheduler = app.state.scheduler
        assert scheduler.running
        ids = {job.id for job in scheduler.get_jobs()}
        assert {"cleanday.day_close", "cleanday.review_post", "cleanday.sunday_close"} <= ids
    assert not scheduler.running


def test_an_approved_proposal_at_a_gets_a_permit_and_a_rejected_one_does_not(
    client: TestClient,
) -> None:
    register(client, "alpha")
    finished = REGISTERED_AT + timedelta(hours=1)
    proposals = run_report(
        "alpha", "run-1", finished, outcome="proposed", items=[{"id": "p1"}, {"id": "p2"}]
    )
    assert client.post("/api/v1/runs", json=proposals, headers=AUTH).status_code == 201
    approved = client.post(
        "/api/v1/behaviors/alpha/batch/approve", json={"items": ["p1"]}, headers=AUTH
    )
    assert approved.status_code == 200 and approved.json()["items"] == ["p1"]
    rejected = client.post(
        "/api/v1/behaviors/alpha/batch/reject", json={"items": ["p2"], "reason": "off topic"},
        headers=AUTH,
    )  # fmt: skip
    assert rejected.status_code == 200
    ask = {"behavior": "alpha", "run_id": "run-1"}
    assert client.post("/api/v1/permits", json=ask | {"item_id": "p1"}, headers=AUTH).json()[
        "granted"
    ]
    denied = client.post("/api/v1/permits", json=ask | {"item_id": "p2"}, headers=AUTH)
    assert denied.status_code == 403 and "p2" in denied.json()["detail"]
    no_reason = client.post(
        "/api/v1/behaviors/alpha/batch/reject", json={"items": None}, headers=AUTH
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]


def test_a_staged_item_at_b_acts_only_once_released(client: TestClient) -> None:
    register(client, "alpha")
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "B"}
    client.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH)
    staged = run_report(
        "alpha", "run-1", REGISTERED_AT + timedelta(hours=1), outcome="staged",
        items=[{"id": "s1"}],
    )  # fmt: skip
    assert client.post("/api/v1/runs", json=staged, headers=AUTH).status_code == 201
    ask = {"behavior": "alpha", "run_id": "run-1", "item_id": "s1"}
    assert client.post("/api/v1/permits", json=ask, headers=AUTH).status_code == 403
    released = client.post("/api/v1/behaviors/alpha/staged/s1/release", headers=AUTH)
    assert released.status_code == 200, released.text
    assert client.post("/api/v1/permits", json=ask, headers=AUTH).status_code == 200


def test_the_scheduled_closes_run_twice_against_the_ledger_change_nothing_the_second_time(
    client: TestClient, service: Any, clock: Clock
) -> None:
    from zoneinfo import ZoneInfo

    from cleanday.scheduler import day_close_job, sunday_close_job

    register(client, "alpha")
    report_clean_days(client, clock, "alpha", 1)  # a clean run on Monday Oct 26
    clock.now = datetime(2026, 10, 27, 0, 0, 30, tzinfo=UTC)  # just after midnight
    utc = ZoneInfo("UTC")
    first = day_close_job(service, utc, clock)
    again = day_close_job(service, utc, clock)
    assert (first.date, first.already_closed, again.already_closed) == (
        date(2026, 10, 26), False, True,
    )  # fmt: skip
    assert row(client, "alpha")["clean_days"] == 1
    clock.now = datetime(2026, 11, 2, 0, 1, tzinfo=UTC)  # Monday just after Sunday Nov 1
    closed = sunday_close_job(service, utc, clock)
    assert (closed.week, closed.already_closed) == (date(2026, 11, 1), False)
    assert sunday_close_job(service, utc, clock).already_closed


# -- batch ingest and group commit -------------------------------------------------------------


def test_a_batch_of_runs_is_recorded_in_one_request_idempotently_by_run_id(
    client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    register(client, "beta")
    t = REGISTERED_AT + timedelta(hours=1)
    batch = [
        run_report("alpha", "a-1", t),
        run_report("beta", "b-1", t),
        run_report("alpha", "a-1", t),  # repeated within the batch
        run_report("alpha", "a-2", t + timedelta(minutes=5)),
    ]
    r = client.post("/api/v1/runs/batch", json=batch, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["recorded"], body["unchanged"]) == (3, 1)
    assert [x["recorded"] for x in body["results"]] == [True, True, False, True]
    assert [x["run_id"] for x in body["results"]] == ["a-1", "b-1", "a-1", "a-2"]
    again = client.post("/api/v1/runs/batch", json=batch, headers=AUTH).json()
    assert (again["recorded"], again["unchanged"]) == (0, 4)
    kinds = [e["kind"] for e in client.get("/api/v1/behaviors/alpha/history").json()]
    assert kinds.count("run_reported") == 2
    assert service.verify().ok


@pytest.mark.parametrize(
    ("bad", "status", "named"),
    [
        ({"cost_usd": -1}, 422, "2.cost_usd"),
        ({"finished_at": "2026-10-25T10:00:00"}, 422, "2.finished_at"),
        ({"behavior": "ghost"}, 404, "report 2 (r-2)"),
    ],
)
def test_a_batch_with_a_bad_item_names_its_index_and_writes_nothing(
    client: TestClient, service: Any, bad: dict[str, Any], status: int, named: str
) -> None:
    register(client, "alpha")
    before = len(service.history("alpha"))
    t = REGISTERED_AT + timedelta(hours=1)
    batch = [run_report("alpha", f"r-{i}", t) for i in range(4)]
    batch[2] |= bad
    r = client.post("/api/v1/runs/batch", json=batch, headers=AUTH)
    assert r.status_code == status, r.text
    assert named in r.json()["detail"]
    assert len(service.history("alpha")) == before


def test_a_batch_larger_than_the_limit_or_empty_is_refused(client: TestClient) -> None:
    from cleanday.service.group_commit import MAX_BATCH

    register(client, "alpha")
    t = REGISTERED_AT + timedelta(hours=1)
    too_many = [run_report("alpha", f"r-{i}", t) for i in range(MAX_BATCH + 1)]
    assert client.post("/api/v1/runs/batch", json=too_many, headers=AUTH).status_code == 422
    assert client.post("/api/v1/runs/batch", json=[], headers=AUTH).status_code == 422
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/api/v1/runs/batch"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == MAX_BATCH
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/RunBatchResult")


def test_concurrent_single_reports_are_committed_together_and_a_bad_one_fails_alone(
    app: FastAPI, client: TestClient, service: Any
) -> None:
    import asyncio

    import httpx

    from cleanday.service.group_commit import GroupCommit

    register(client, "alpha")
    register(client, "beta")
    groups: list[int] = []
    real = service.report_runs

    def spy(reports: list[Any]) -> list[Any]:
        groups.append(len(reports))
        return real(reports)

    service.report_runs = spy
    t = REGISTERED_AT + timedelta(hours=1)
    bodies = [run_report("alpha" if i % 2 else "beta", f"g-{i}", t) for i in range(10)]
    bodies[4]["behavior"] = "ghost"  # passes validation, fails in the ledger
    bodies.append(run_report("beta", "g-0", t))  # a repeat of a report in the same group

    async def post_all() -> list[httpx.Response]:
        # a long window, so that the test sees one group whatever the machine's load
        app.state.run_group_commit = GroupCommit(service, asyncio.get_running_loop(), 0.5)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as ac:
            return await asyncio.gather(
                *(ac.post("/api/v1/runs", json=b, headers=AUTH) for b in bodies)
            )

    responses = asyncio.run(post_all())
    codes = [r.status_code for r in responses]
    assert codes == [201] * 4 + [404] + [201] * 5 + [200]
    assert "ghost" in responses[4].json()["detail"]
    assert groups[0] == len(bodies)  # one transaction for all, failed by the ghost...
    assert groups[1:] == [1] * len(bodies)  # ...then each on its own
    answered = [r.json()["run_id"] for r in responses if r.status_code != 404]
    assert answered == [b["run_id"] for b in bodies if b["behavior"] != "ghost"]
    assert service.verify().ok
    assert len([e for e in service.history("beta") if e.kind.value == "run_reported"]) == 4


def _without_fast_paths(app: FastAPI) -> FastAPI:
    """The same app with its fast paths taken out: every request goes to its route."""
    from cleanday.service.fastpath import FastPath

    app.user_middleware = [m for m in app.user_middleware if not issubclass(m.cls, FastPath)]
    return app


@pytest.mark.parametrize("tier", ["A", "C"])
def test_a_permit_is_answered_by_the_fast_path_as_by_the_route(
    app: FastAPI, service: Any, tier: str
) -> None:
    routed_app = _without_fast_paths(create_app(settings(), service))
    with TestClient(app) as fast, TestClient(routed_app) as routed:
        register(fast, "alpha")
        if tier == "C":
            forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
            assert fast.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH)
        ask = {"behavior": "alpha", "run_id": "run-1"}
        a = fast.post("/api/v1/permits", json=ask, headers=AUTH)
        b = routed.post("/api/v1/permits", json=ask, headers=AUTH)
    assert a.status_code == b.status_code == (200 if tier == "C" else 403)
    drop = {"granted_at"}  # the ledger's clock is the test's, but read at each request
    assert {k: v for k, v in a.json().items() if k not in drop} == {
        k: v for k, v in b.json().items() if k not in drop
    }


def test_a_permit_the_fast_path_cannot_take_is_answered_by_the_route(client: TestClient) -> None:
    register(client, "alpha")
    no_run = client.post("/api/v1/permits", json={"behavior": "alpha"}, headers=AUTH)
    assert no_run.status_code == 422 and "run_id" in no_run.json()["detail"]
    ask = {"behavior": "alpha", "run_id": "run-1"}
    wrong = client.post("/api/v1/permits", json=ask, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    ghost = client.post("/api/v1/permits", json=ask | {"behavior": "ghost"}, headers=AUTH)
    assert ghost.status_code == 404 and "ghost" in ghost.json()["detail"]


def test_a_behaviors_state_reads_as_in_its_detail_from_the_fast_path_and_the_route(
    client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    forced = {"reason": "trusted by hand", "kind": "forced_tier", "tier": "C"}
    assert client.post("/api/v1/behaviors/alpha/override", json=forced, headers=AUTH)
    detail = client.get("/api/v1/behaviors/alpha").json()["state"]
    assert detail["tier"] == "C"
    assert client.get("/api/v1/behaviors/alpha/state").json() == detail
    with TestClient(_without_fast_paths(create_app(settings(), service))) as routed:
        assert routed.get("/api/v1/behaviors/alpha/state").json() == detail
        assert routed.get("/api/v1/behaviors/ghost/state").status_code == 404
    ghost = client.get("/api/v1/behaviors/ghost/state")
    assert ghost.status_code == 404 and "ghost" in ghost.json()["detail"]


def test_a_run_report_the_fast_path_passes_on_is_answered_by_the_route_the_same_way(
    client: TestClient, service: Any
) -> None:
    register(client, "alpha")
    t = REGISTERED_AT + timedelta(hours=1)
    fast = client.post("/api/v1/runs", json=run_report("alpha", "f-1", t), headers=AUTH)
    # a lower-case scheme skips the fast path; the route accepts it
    routed = client.post(
        "/api/v1/runs",
        json=run_report("alpha", "f-2", t),
        headers={"Authorization": f"bearer {TOKEN}"},
    )
    assert (fast.status_code, routed.status_code) == (201, 201)
    assert set(fast.json()) == set(routed.json())
    assert fast.json()["state"] == routed.json()["state"] | {
        "updated_at": fast.json()["state"]["updated_at"]
    }
    wrong = client.post(
        "/api/v1/runs", json=run_report("alpha", "f-3", t), headers={"Authorization": "Bearer no"}
    )
    assert wrong.status_code == 401
    assert [e.kind.value for e in service.history("alpha")].count("run_reported") == 2
