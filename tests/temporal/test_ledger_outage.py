"""On a real dev server: the ledger service SIGKILLed for 30 s in the middle of 80 runs at
tier C, then started again. The runs wait the outage out: each is reported exactly once, acts
once, and the behavior is neither demoted nor quarantined."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from cleanday.db import make_engine, migrate
from cleanday.ledger_client import LedgerClient
from cleanday.runtime.starter import start_run
from tests.temporal.harness import TOKEN, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
RUNS = 80
OUTAGE_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cleanday.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _until_up(url: str, service: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            assert service.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if (await http.get(f"{url}/api/v1/behaviors")).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)


async def _reported(ledger: LedgerClient, behavior: str) -> int:
    return sum(e["kind"] == "run_reported" for e in await ledger.history(behavior))


async def test_ledger_killed_for_30s_mid_runs_every_run_counted_once_nothing_demoted(
    dev_env: WorkflowEnvironment, tmp_path: Path, provider_url: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db_url = f"sqlite:///{data / 'ledger.db'}"
    migrate(make_engine(db_url))
    behaviors = tmp_path / "behaviors"
    behaviors.mkdir()
    raw = work_order("outage_notes", trigger={"type": "webhook", "secret_ref": "env:UNUSED"})
    (behaviors / "outage_notes.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "CLEANDAY_URL": url,
        "CLEANDAY_TOKEN": TOKEN,
        "CLEANDAY_DATA_DIR": str(data),
        "DATABASE_URL": db_url,
        "CLEANDAY_LOCAL_PROVIDER_URL": provider_url,
        "CLEANDAY_BEHAVIORS_DIR": str(behaviors),
        "CLEANDAY_TASK_QUEUE": queue,
        "CLEANDAY_SCHEDULER": "false",
        "CLEANDAY_LEDGER_RETRY_SECONDS": "180",
    }
    serve = ["serve", "--port", str(port), "--no-scheduler"]
    service_log = tmp_path / "service.log"
    procs: list[subprocess.Popen[bytes]] = [_spawn(serve, env, service_log)]
    provider = provider_url.removesuffix("/v1")
    try:
        await _until_up(url, procs[0], service_log)
        async with LedgerClient(url, TOKEN) as ledger:
            await ledger.register(yaml.safe_dump(raw, sort_keys=False))
            await ledger.override("outage_notes", "runs at C", kind="forced_tier", tier="C")
            # each model call takes 1 s, so the outage lands while runs are in flight
            httpx.post(
                f"{provider}/_control/faults",
                json={"behavior": "outage_notes", "fault": "slow", "count": RUNS, "delay_s": 1.0},
            ).raise_for_status()
            procs.append(_spawn(["worker"], env, tmp_path / "worker.log"))
            half = RUNS // 2
            handles = [
                await start_run(dev_env.client, "outage_notes", queue, {"topic": f"t{i}"})
                for i in range(half)
            ]
            deadline = time.monotonic() + 120
            while await _reported(ledger, "outage_notes") < 5:
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                await asyncio.sleep(0.2)

            procs[0].send_signal(signal.SIGKILL)  # no graceful stop: the process is gone
            procs[0].wait()
            down_since = time.monotonic()
            # the other half starts during the outage: their steps read the ledger, which is gone
            for i in range(half, RUNS):
                handles.append(
                    await start_run(dev_env.client, "outage_notes", queue, {"topic": f"t{i}"})
                )
            await asyncio.sleep(OUTAGE_S - (time.monotonic() - down_since))
            procs[0] = _spawn(serve, env, service_log)
            await _until_up(url, procs[0], service_log)

            states = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 300)
            assert [s.outcome for s in states] == ["succeeded"] * RUNS
            assert all(s.acted for s in states)

            history = await ledger.history("outage_notes")
            reported = [e["key"] for e in history if e["kind"] == "run_reported"]
            assert sorted(reported) == sorted(f"run:{h.id}" for h in handles)  # once each
            kinds = {e["kind"] for e in history}
            assert not kinds & {"demoted", "quarantined", "gate_failed", "infra_error"}
            body = await ledger.state("outage_notes")
            state = body.get("state", body)
            assert state["tier"] == "C" and state["status"] == "active"
            written = list((data / "sinks" / "outage_notes").glob("*.txt"))
            assert len(written) == RUNS  # acted once each
            worker_log = (tmp_path / "worker.log").read_text()
            assert "ledger unavailable, retrying" in worker_log  # the outage was met mid-run
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
