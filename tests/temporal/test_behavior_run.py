"""The behavior run on the time-skipping server against the ledger service: every tier's path."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from workflows.behavior_run import BehaviorRun

from cleanday.domain import Tier
from cleanday.runtime import relay
from cleanday.runtime.operator import approve_batch, reject_batch, release_item
from tests.temporal.harness import Stack, work_order

pytestmark = pytest.mark.temporal


async def test_c_run_acts_with_a_permit_and_reports_succeeded(stack: Stack) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    handle = await stack.start("notes", {"topic": "rivers"})
    state = await handle.result()
    assert state.outcome == "succeeded" and state.acted
    assert all(g.passed for g in state.gates)
    assert stack.sink_files("notes") == [f"{handle.id}.txt"]


async def test_gate_failure_in_a_c_run_blocks_the_act_and_demotes(stack: Stack) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    handle = await stack.start("notes", {"leak": True})
    state = await handle.result()
    assert state.outcome == "blocked" and not state.acted
    failed = [g for g in state.gates if not g.passed]
    assert [g.name for g in failed] == ["sensitive_info"]
    assert stack.sink_files("notes") == []
    assert (await stack.tier("notes")) == "B"


async def test_step_that_keeps_failing_fails_the_failure_gate_after_its_retries(
    stack: Stack,
) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    state = await (await stack.start("notes", {"crash": True})).result()
    assert state.outcome == "failed" and not state.acted
    failure = next(g for g in state.gates if g.name == "failure")
    assert not failure.passed and "the step crashed" in failure.reason
    assert (await stack.tier("notes")) == "B"


async def test_demotion_during_a_c_run_blocks_its_act(stack: Stack) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    hold = stack.holds["notes"] = asyncio.Event()
    slow = await stack.start("notes", {"topic": "slow"})
    await stack.wait_for_phase(slow, "running step")
    await stack.wait_held("notes")  # its step is in its model call, past reading the binding
    # another run of the same behavior fails a gate while the first is still in its step
    stack.holds.pop("notes")
    leaked = await (await stack.start("notes", {"leak": True})).result()
    assert leaked.outcome == "blocked"
    hold.set()
    state = await slow.result()
    assert state.tier == "C" and not state.acted
    assert state.outcome == "blocked" and state.denied
    assert stack.sink_files("notes") == []


async def test_a_run_proposes_and_acts_only_after_batch_approval(stack: Stack) -> None:
    await stack.register(work_order("notes"))
    handle = await stack.start("notes")
    state = await stack.wait_for(handle, "batch approval")
    assert state.outcome == "proposed" and stack.sink_files("notes") == []
    assert await approve_batch(stack.client, stack.ledger, "notes", [handle.id]) == [handle.id]
    state = await handle.result()
    assert state.acted and state.decision == "approved"
    assert stack.sink_files("notes") == [f"{handle.id}.txt"]


async def test_a_run_rejected_in_its_batch_never_acts(stack: Stack) -> None:
    await stack.register(work_order("notes"))
    handle = await stack.start("notes")
    await stack.wait_for(handle, "batch approval")
    await reject_batch(stack.client, stack.ledger, "notes", "off topic", [handle.id])
    state = await handle.result()
    assert not state.acted and state.decision == "rejected"
    assert stack.sink_files("notes") == []


async def test_b_run_stages_and_acts_when_released(stack: Stack) -> None:
    await stack.register(work_order("notes"), tier=Tier.B)
    handle = await stack.start("notes")
    state = await stack.wait_for(handle, "release")
    assert state.outcome == "staged" and stack.sink_files("notes") == []
    assert await release_item(stack.client, stack.ledger, "notes", handle.id)
    state = await handle.result()
    assert state.acted and stack.sink_files("notes") == [f"{handle.id}.txt"]


async def test_b_staged_item_expires_unreleased_with_no_penalty(stack: Stack) -> None:
    await stack.register(work_order("notes", stage_expiry_hours=6), tier=Tier.B)
    handle = await stack.start("notes")
    await stack.wait_for(handle, "release")
    # the time-skipping server jumps the 6 hours while we wait for the result
    state = await handle.result()
    assert state.outcome == "expired" and not state.acted
    assert stack.sink_files("notes") == []
    assert (await stack.tier("notes")) == "B"


async def test_a_signal_without_the_ledgers_approval_does_not_act(stack: Stack) -> None:
    await stack.register(work_order("notes"))
    handle = await stack.start("notes")
    await stack.wait_for(handle, "batch approval")
    await handle.signal(BehaviorRun.approve)  # nobody recorded an approval in the ledger
    state = await handle.result()
    assert not state.acted and state.denied
    assert stack.sink_files("notes") == []


async def test_sign_offs_through_the_ledger_api_wake_the_waiting_runs(
    stack: Stack, ledger: FastAPI, ts_env: WorkflowEnvironment
) -> None:
    async def client() -> Client:
        return ts_env.client

    relay.install(ledger, client)
    await stack.register(work_order("notes"))
    proposed = [await stack.start("notes") for _ in range(2)]
    for handle in proposed:
        await stack.wait_for(handle, "batch approval")
    await stack.ledger.approve("notes")  # the whole pending batch, as `cleanday review` would
    states = [await h.result() for h in proposed]
    assert all(s.acted and s.decision == "approved" for s in states)

    await stack.ledger.override("notes", "now at B", kind="forced_tier", tier="B")
    staged = await stack.start("notes")
    await stack.wait_for(staged, "release")
    await stack.ledger.release("notes", staged.id)
    assert (await staged.result()).acted
