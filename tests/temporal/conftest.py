"""Fixtures for the Temporal tests: the time-skipping server and the runtime stack on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from cleanday.localprovider import local_provider_in_thread
from cleanday.runtime.binaries import temporal_binary
from tests.temporal.harness import Stack, ledger_app, running_stack


@pytest_asyncio.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def ledger(tmp_path: Path) -> FastAPI:
    """The real ledger service (SQLite in tmp_path), in-process."""
    return ledger_app(tmp_path / "data")


@pytest.fixture(scope="session")
def provider_url() -> Iterator[str]:
    """The local model provider (cleanday.localprovider) on a free port, for the router,
    answering the built-in behaviors from their scripts."""
    scripts = Path(__file__).resolve().parents[2] / "behaviors" / "local_scripts.yaml"
    with local_provider_in_thread(scripts) as server:
        yield server.url + "/v1"


@pytest_asyncio.fixture
async def stack(
    ts_env: WorkflowEnvironment, ledger: FastAPI, tmp_path: Path, provider_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(ts_env.client, ledger, tmp_path / "data", provider_url) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (schedules need one: the time-skipping server has none)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary("temporal"),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()
