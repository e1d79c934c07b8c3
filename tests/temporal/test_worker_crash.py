"""On a real dev server: 50 runs in flight, the worker SIGKILLed mid-activity and started again."""

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

from cleanday.ledger_client import LedgerClient
from cleanday.localprovider import ServerThread
from cleanday.runtime.starter import start_run
from tests.temporal.harness import TOKEN, ledger_app, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
RUNS = 50


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", "worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_worker_killed_mid_activity_every_run_finishes_and_is_counted_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, provider_url: str
) -> None:
    data = tmp_path / "data"
    app = ledger_app(data)
    service = ServerThread(app).start()
    provider = provider_url.removesuffix("/v1")
    behaviors = tmp_path / "behaviors"
    behaviors.mkdir()
    raw = work_order("crash_notes", trigger={"type": "webhook", "secret_ref": "env:UNUSED"})
    (behaviors / "crash_notes.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    queue = f"crash-{uuid.uuid4().hex[:8]}"
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
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with LedgerClient(service.url, TOKEN) as ledger:
            await ledger.register(yaml.safe_dump(raw, sort_keys=False))
            await ledger.override("crash_notes", "runs at C", kind="forced_tier", tier="C")
            # every model call takes 2 s, so the kill lands while steps are in flight
            httpx.post(
                f"{provider}/_control/faults",
                json={"behavior": "crash_notes", "fault": "slow", "count": RUNS, "delay_s": 2.0},
            ).raise_for_status()
            before = len(httpx.get(f"{provider}/_control/requests").json())
            handles = [
                await start_run(dev_env.client, "crash_notes", queue, {"topic": f"t{i}"})
                for i in range(RUNS)
            ]
            workers.append(_worker(env, tmp_path / "worker-1.log"))
            deadline = time.monotonic() + 60
            while len(httpx.get(f"{provider}/_control/requests").json()) - before < RUNS // 2:
                assert time.monotonic() < deadline, (tmp_path / "worker-1.log").read_text()
                await asyncio.sleep(0.1)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            history = await ledger.history("crash_notes")
            assert sum(e["kind"] == "run_reported" for e in history) < RUNS  # mid-flight

            workers.append(_worker(env, tmp_path / "worker-2.log"))
            states = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 180)
            assert all(s.outcome == "succeeded" and s.acted for s in states)

            history = await ledger.history("crash_notes")
            reported = [e["key"] for e in history if e["kind"] == "run_reported"]
            assert sorted(reported) == sorted(f"run:{h.id}" for h in handles)
            written = list((data / "sinks" / "crash_notes").glob("*.txt"))
            assert len(written) == RUNS
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(timeout=30)
        service.stop()
