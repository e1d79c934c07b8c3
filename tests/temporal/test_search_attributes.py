"""On a real dev server: runs carry CleandayBehavior, CleandayTier and CleandayOutcome, so a
gate-failed run is found with the Temporal UI's filters, and its details say what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from cleanday.domain import Tier
from cleanday.runtime import search
from cleanday.runtime.starter import start_run
from tests.temporal.harness import ledger_app, running_stack, work_order

pytestmark = [pytest.mark.temporal, pytest.mark.asyncio(loop_scope="module")]


async def _listed(dev_env: WorkflowEnvironment, query: str) -> list[str]:
    for _ in range(100):  # visibility follows the run shortly after it closes
        found = [w.id async for w in dev_env.client.list_workflows(query)]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_a_gate_failed_run_is_found_by_its_search_attributes_and_says_why(
    dev_env: WorkflowEnvironment, tmp_path: Path, provider_url: str
) -> None:
    assert await search.ensure(dev_env.client)
    assert await search.ready(dev_env.client)
    app = ledger_app(tmp_path / "data")
    async with running_stack(dev_env.client, app, tmp_path / "data", provider_url) as stack:
        await stack.register(work_order("tagged_notes"), tier=Tier.C)
        # one after the other: the bad run's gate failure demotes the behavior, so a good run
        # still in flight then would be refused its permit
        good = await start_run(dev_env.client, "tagged_notes", stack.task_queue, {"topic": "x"})
        assert (await good.result()).outcome == "succeeded"
        bad = await start_run(dev_env.client, "tagged_notes", stack.task_queue, {"leak": True})
        assert (await bad.result()).outcome == "blocked"

        query = 'CleandayBehavior = "tagged_notes" AND CleandayOutcome = "blocked"'
        assert await _listed(dev_env, query) == [bad.id]
        assert await _listed(dev_env, 'CleandayTier = "C" AND CleandayOutcome = "succeeded"') == [
            good.id
        ]
        meta: Any = await bad.query("__temporal_workflow_metadata")
        details = str(meta)
        assert "blocked" in details and "gate failed: sensitive_info" in details
