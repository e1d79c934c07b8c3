"""A sign-off from any door wakes the waiting run through the outbox: the CLI delivers the
wake-up itself right after its commit, and one that could not be delivered then is delivered
by the outbox job later."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cleanday.cli import app as cli_app
from cleanday.domain import Tier
from cleanday.models import T_OUTBOX
from cleanday.runtime import wakeups
from cleanday.scheduler import outbox_job
from tests.temporal.harness import Stack, work_order

pytestmark = pytest.mark.temporal


async def _signaled(handle: WorkflowHandle[Any, Any]) -> bool:
    history = await handle.fetch_history()
    return any(e.HasField("workflow_execution_signaled_event_attributes") for e in history.events)


async def test_a_cli_approval_wakes_the_run_through_the_same_outbox(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment
) -> None:
    await stack.register(work_order("notes"))
    handle = await stack.start("notes")
    await stack.wait_for(handle, "batch approval")
    env = {
        "DATABASE_URL": str(ledger.state.service.engine.url),
        "TEMPORAL_ADDRESS": ts_env.client.service_client.config.target_host,
        "CLEANDAY_DATA_DIR": str(stack.data_dir),
    }
    out = CliRunner().invoke(cli_app, ["batch", "approve", "notes", handle.id], env=env)
    assert out.exit_code == 0, out.output
    assert f"approved {handle.id}" in out.stdout and "note:" not in out.output
    assert await _signaled(handle)  # before the run's own check of the ledger
    state = await handle.result()
    assert state.acted and state.decision == "approved"


async def test_a_wake_up_that_could_not_be_sent_is_delivered_by_the_outbox_job(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment
) -> None:
    reachable = False

    async def connect() -> Client:
        if not reachable:
            raise ConnectionError("Temporal is down")
        return await Client.connect(ts_env.client.service_client.config.target_host)

    # no back-off, so that the next outbox job retries at once (tests/integration/test_outbox
    # has the back-off)
    settings = ledger.state.settings.model_copy(update={"outbox_backoff_s": 0.0})
    delivery = wakeups.attach(ledger, settings, connect)
    await stack.register(work_order("notes"), tier=Tier.B)
    handle = await stack.start("notes")
    await stack.wait_for(handle, "release")
    await stack.ledger.release("notes", handle.id)  # answered although Temporal is down
    assert not await _signaled(handle)
    with ledger.state.service.engine.connect() as conn:
        row = conn.execute(
            sa.select(T_OUTBOX).where(
                T_OUTBOX.c.channel == "temporal", T_OUTBOX.c.kind == "wake_run"
            )
        ).one()
    assert row.delivered_at is None and row.attempts == 1
    assert "Temporal is down" in row.last_error
    reachable = True
    delivered = outbox_job(delivery)
    done = {d.row.kind: d for d in delivered}
    assert done["wake_run"].ok and done["wake_run"].note == "told"
    assert await _signaled(handle)
    assert (await handle.result()).acted
    assert outbox_job(delivery) == []  # delivered once
    delivery.close()
