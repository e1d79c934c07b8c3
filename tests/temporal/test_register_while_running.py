"""Registering while workers run: a run takes the Work Order version the ledger holds, fetched
by the worker, not the files it read at start."""

from __future__ import annotations

import pytest
import yaml

from tests.temporal.harness import Stack, work_order

pytestmark = pytest.mark.temporal


async def test_a_behavior_registered_while_the_worker_runs_is_run_by_its_next_run(
    stack: Stack,
) -> None:
    # the worker was given nothing: it learns the behavior from the ledger on its first run
    v1 = work_order("late", description="v1", gates=[])
    await stack.ledger.register(yaml.safe_dump(v1, sort_keys=False))
    await stack.ledger.override("late", "test starts here", kind="forced_tier", tier="C")
    first = await (await stack.start("late", {"leak": True})).result()
    assert first.outcome == "succeeded" and first.acted  # v1 has no gate that would block
    assert stack.work_orders["late"].description == "v1"

    # a new version registered while the worker runs: the next run uses it, no restart
    v2 = work_order("late", description="v2", gates=[{"name": "sensitive_info", "mode": "block"}])
    result = await stack.ledger.register(yaml.safe_dump(v2, sort_keys=False))
    assert result["status"] == "new_version"
    second = await (await stack.start("late", {"leak": True})).result()
    assert second.outcome == "blocked" and not second.acted
    assert [g.name for g in second.gates if not g.passed] == ["sensitive_info"]
    assert stack.work_orders["late"].description == "v2"
