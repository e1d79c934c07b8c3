"""Run now: `cleanday run NAME [--input] [--wait]`, `POST /api/v1/behaviors/{name}/runs` and the
Pane's Run now start a run through one code path and answer with its run ID and UI link."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from cleanday.cli import app as cli_app
from cleanday.domain import Tier
from cleanday.runtime.starter import TemporalRunStarter
from cleanday.runtime.types import RunState
from tests.temporal.harness import TOKEN, Stack, work_order

pytestmark = pytest.mark.temporal

UI = "https://temporal.example.test/ui"


def _api(ledger: FastAPI, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=ledger), base_url="http://ledger", headers=headers
    )


async def test_post_runs_starts_a_run_now_and_answers_its_id_and_ui_link(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment
) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    ledger.state.run_starter = TemporalRunStarter(ts_env.client, stack.task_queue)
    ledger.state.settings = ledger.state.settings.model_copy(update={"temporal_ui_url": UI})
    async with _api(ledger) as api:
        answer = await api.post("/api/v1/behaviors/notes/runs", json={"input": {"topic": "x"}})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        run_id = body["run_id"]
        assert run_id.startswith("notes-manual-")
        assert body["temporal_ui"] == f"{UI}/namespaces/default/workflows/{run_id}"
        state = await ts_env.client.get_workflow_handle(run_id, result_type=RunState).result()
        assert state.outcome == "succeeded" and state.acted
        assert stack.sink_files("notes") == [f"{run_id}.txt"]

        async with _api(ledger, token=None) as anonymous:
            refused = await anonymous.post("/api/v1/behaviors/notes/runs", json={})
            assert refused.status_code == 401
        await stack.ledger.set_status("notes", "pause")
        paused = await api.post("/api/v1/behaviors/notes/runs", json={})
        assert paused.status_code == 409 and "paused" in paused.json()["detail"]
        unknown = await api.post("/api/v1/behaviors/nobody/runs", json={})
        assert unknown.status_code == 404


def _cli(args: list[str], stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment) -> Result:
    env = {
        "DATABASE_URL": str(ledger.state.service.engine.url),
        "TEMPORAL_ADDRESS": ts_env.client.service_client.config.target_host,
        "CLEANDAY_DATA_DIR": str(stack.data_dir),
        "CLEANDAY_TASK_QUEUE": stack.task_queue,
        "TEMPORAL_UI_URL": UI,
    }
    return CliRunner().invoke(cli_app, args, env=env)


async def test_cli_run_wait_follows_a_c_run_to_its_outcome_and_gates(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    given = tmp_path / "input.json"
    given.write_text(json.dumps({"topic": "rivers"}))
    out = await asyncio.to_thread(
        _cli, ["run", "notes", "--input", f"@{given}", "--wait"], stack, ledger, ts_env
    )
    assert out.exit_code == 0, out.output
    assert "started notes-manual-" in out.output and f"Temporal UI: {UI}/namespaces/" in out.output
    assert "gate sensitive_info: passed" in out.output
    assert "succeeded: 1 note written. (acted)" in out.output
    assert len(stack.sink_files("notes")) == 1


async def test_cli_run_wait_at_a_ends_with_what_the_run_waits_for(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment
) -> None:
    await stack.register(work_order("drafts"))
    out = await asyncio.to_thread(_cli, ["run", "drafts", "--wait"], stack, ledger, ts_env)
    assert out.exit_code == 0, out.output
    assert "proposed: waits for batch approval; cleanday batch approve drafts" in out.output


async def test_cli_run_refuses_bad_input_with_the_way_forward(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment
) -> None:
    await stack.register(work_order("notes"))
    out = await asyncio.to_thread(_cli, ["run", "notes", "--input", "[1]"], stack, ledger, ts_env)
    assert out.exit_code == 1 and "must be a JSON object" in out.output
