"""On a real dev server: `cleanday reload` (SIGHUP) makes a worker finish its in-flight run and
re-execute itself in the same process, and the next run has the step code now on disk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from cleanday import entrypoints
from cleanday.entrypoints import EntryRoots
from cleanday.errors import UnknownBehaviorError
from cleanday.ledger_client import LedgerClient
from cleanday.localprovider import ServerThread
from cleanday.runtime.starter import start_run
from tests.temporal.harness import TOKEN, ledger_app, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]

STEP = """from cleanday.steps import Action, StepResult


async def run(ctx):
    done = await ctx.model.complete([{{"role": "user", "content": "one line"}}])
    return StepResult(
        output=done.text,
        summary="{version}",
        actions=[Action("write", f"{{ctx.run_id}}.txt", {{"content": "{version}"}})],
        completions=[done],
    )
"""


async def test_reload_finishes_the_run_in_flight_then_runs_the_new_step_code(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    provider_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, behaviors = tmp_path / "data", tmp_path / "behaviors"
    behaviors.mkdir()
    # the service here checks entry points against the same behaviors directory as the worker
    monkeypatch.setattr(entrypoints, "default_roots", lambda: EntryRoots(behaviors, ("tests",)))
    (behaviors / "reload_step.py").write_text(STEP.format(version="v1"))
    raw = work_order(
        "reload_notes",
        trigger={"type": "webhook", "secret_ref": "env:UNUSED"},
        entry="behaviors.reload_step:run",
    )
    (behaviors / "reload_notes.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    app = ledger_app(data)
    service = ServerThread(app).start()
    provider = provider_url.removesuffix("/v1")
    queue = f"reload-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "CLEANDAY_URL": service.url,
        "CLEANDAY_TOKEN": TOKEN,
        "CLEANDAY_DATA_DIR": str(data),
        "DATABASE_URL": str(app.state.service.engine.url),
        "CLEANDAY_LOCAL_PROVIDER_URL": provider_url,
        "CLEANDAY_BEHAVIORS_DIR": str(behaviors),
        "CLEANDAY_TASK_QUEUE": queue,
    }
    log = tmp_path / "worker.log"
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with LedgerClient(service.url, TOKEN) as ledger:
            deadline = time.monotonic() + 60
            while True:  # the worker registers what its behaviors directory holds
                assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
                try:
                    await ledger.state("reload_notes")
                    break
                except UnknownBehaviorError:
                    await asyncio.sleep(0.2)
            await ledger.override("reload_notes", "runs at C", kind="forced_tier", tier="C")
            first = await (await start_run(dev_env.client, "reload_notes", queue)).result()
            assert first.outcome == "succeeded" and first.summary == "v1"

            httpx.post(
                f"{provider}/_control/faults",
                json={"behavior": "reload_notes", "fault": "slow", "count": 1, "delay_s": 3.0},
            ).raise_for_status()
            before = len(httpx.get(f"{provider}/_control/requests").json())
            in_flight = await start_run(dev_env.client, "reload_notes", queue)
            while len(httpx.get(f"{provider}/_control/requests").json()) == before:
                assert time.monotonic() < deadline + 60, log.read_text()
                await asyncio.sleep(0.05)
            (behaviors / "reload_step.py").write_text(STEP.format(version="v2"))
            told = subprocess.run(
                [sys.executable, "-m", "cleanday.cli", "reload"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert told.returncode == 0 and f"{worker.pid}" in told.stdout, told.stderr

            second = await in_flight.result()
            assert second.outcome == "succeeded" and second.summary == "v1"  # finished, not cut
            third = await (await start_run(dev_env.client, "reload_notes", queue)).result()
            assert third.outcome == "succeeded" and third.summary == "v2"
            assert worker.poll() is None  # the same process, re-executed
            text = log.read_text()
            assert "reloading (SIGHUP): finishing activities in flight" in text
            history = await ledger.history("reload_notes")
            assert sum(e["kind"] == "run_reported" for e in history) == 3
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        service.stop()
