"""The worker's Temporal SDK metrics, from the SDK's own Prometheus exporter on its own port."""

from __future__ import annotations

import asyncio
import socket
import uuid

import httpx
import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cleanday.config import Settings
from cleanday.runtime.connect import connect, worker_runtime

pytestmark = [pytest.mark.temporal]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@activity.defn
async def nothing() -> None:
    return None


def test_no_port_no_exporter() -> None:
    assert worker_runtime(Settings()) is None


async def test_a_worker_with_a_metrics_port_serves_the_sdks_metrics_there(
    ts_env: WorkflowEnvironment,
) -> None:
    port = _free_port()
    settings = Settings(
        TEMPORAL_ADDRESS=ts_env.client.service_client.config.target_host,
        CLEANDAY_WORKER_METRICS_PORT=port,
    )
    runtime = worker_runtime(settings)
    assert runtime is not None
    client = await connect(settings, runtime=runtime)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, activities=[nothing]):
        text = ""
        async with httpx.AsyncClient() as http:
            for _ in range(50):  # the exporter's first poll reports land within a second
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                if "temporal_" in text:
                    break
                await asyncio.sleep(0.1)
    assert "temporal_worker_start" in text or "temporal_num_pollers" in text, text[:500]
    assert f'task_queue="{queue}"' in text
