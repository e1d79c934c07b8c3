"""The behavior run on the time-skipping server against the ledger service: every tier's path."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from workflows.behavior_run import BehaviorRun

from cleanday.domain import Tier
from cleanday.errors import LedgerUnavailable
from cleanday.runtime import wakeups
from cleanday.runtime.activities import STEP_TIMEOUT_SECONDS
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
    """No middleware reads the sign-off's URL: the ledger's ItemsSignedOff queues a wake-up
    per run, delivered right after the commit by the service's Temporal client."""

    async def connect() -> Client:
        return await Client.connect(ts_env.client.service_client.config.target_host)

    delivery = wakeups.attach(ledger, ledger.state.settings, connect)
    await stack.register(work_order("notes"))
    proposed = [await stack.start("notes") for _ in range(2)]
    for handle in proposed:
        await stack.wait_for(handle, "batch approval")
    await stack.ledger.approve("notes")  # the whole pending batch, as `cleanday review` would
    states = [await h.result() for h in proposed]
    assert all(s.acted and s.decision == "approved" for s in states)
    # woken by the signal, not by their own check of the ledger
    assert all([await _signaled(h) for h in proposed])

    await stack.ledger.override("notes", "now at B", kind="forced_tier", tier="B")
    staged = await stack.start("notes")
    await stack.wait_for(staged, "release")
    await stack.ledger.release("notes", staged.id)
    assert (await staged.result()).acted
    assert await _signaled(staged)
    delivery.close()


async def _signaled(handle: WorkflowHandle[Any, Any]) -> bool:
    history = await handle.fetch_history()
    return any(e.HasField("workflow_execution_signaled_event_attributes") for e in history.events)


async def test_a_run_whose_wake_up_was_lost_finds_its_approval_in_the_ledger(stack: Stack) -> None:
    await stack.register(work_order("notes"))
    handle = await stack.start("notes")
    await stack.wait_for(handle, "batch approval")
    await stack.ledger.approve("notes", [handle.id])  # recorded; nothing delivers: no signal
    state = await handle.result()  # the time-skipping server jumps to the run's next check
    assert state.acted and state.decision == "approved"
    assert stack.sink_files("notes") == [f"{handle.id}.txt"]
    assert not await _signaled(handle)


async def test_a_rejection_whose_wake_up_was_lost_ends_the_run_without_acting(
    stack: Stack,
) -> None:
    await stack.register(work_order("notes"))
    handle = await stack.start("notes")
    await stack.wait_for(handle, "batch approval")
    await stack.ledger.reject("notes", "off topic", [handle.id])
    state = await handle.result()
    assert not state.acted and state.decision == "rejected"
    assert stack.sink_files("notes") == []


async def test_a_b_release_whose_wake_up_was_lost_is_found_before_expiry(stack: Stack) -> None:
    await stack.register(work_order("notes", stage_expiry_hours=6), tier=Tier.B)
    handle = await stack.start("notes")
    await stack.wait_for(handle, "release")
    await stack.ledger.release("notes", handle.id)
    state = await handle.result()
    assert state.acted and state.decision == "released"
    assert stack.sink_files("notes") == [f"{handle.id}.txt"]


async def test_a_c_run_whose_report_fails_after_acting_is_reported_once_by_the_workflow(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    report_run, calls = stack.ledger.report_run, []

    finished: list[str] = []

    async def batch_fails(reports: list[dict[str, Any]]) -> Any:
        calls.extend(("batch", r["outcome"]) for r in reports)
        finished.extend(r["finished_at"] for r in reports)
        raise LedgerUnavailable("the ledger went away after the act")

    async def single(report: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        calls.append(("single", report["outcome"]))
        finished.append(report["finished_at"])
        return await report_run(report)

    # the worker's activities share this client: act_and_report's (batched) report fails
    monkeypatch.setattr(stack.ledger, "report_runs", batch_fails)
    monkeypatch.setattr(stack.ledger, "report_run", single)
    handle = await stack.start("notes")
    state = await handle.result()
    assert state.outcome == "succeeded" and state.acted
    # act_and_report's, then the workflow's report_outcome
    assert calls == [("batch", "succeeded"), ("single", "succeeded")]
    assert stack.sink_files("notes") == [f"{handle.id}.txt"]
    history = await stack.ledger.history("notes")
    [entry] = [e for e in history if e["kind"] == "run_reported"]
    assert entry["key"] == f"run:{handle.id}"
    # the second report is later, yet the run still finished when its step did
    assert finished[0] == finished[1]
    assert datetime.fromisoformat(entry["at"]) == datetime.fromisoformat(finished[0])


def _recorded_first(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, change: Any
) -> list[dict[str, Any]]:
    """Before the worker's first report of a run reaches the ledger, record that run with
    `change(report)` applied: what an earlier attempt of its workflow task reported before it
    was lost with its worker (the task then ran again, a moment later, on another worker)."""
    report_runs, earlier = stack.ledger.report_runs, []

    async def lost_attempt_first(reports: list[dict[str, Any]]) -> Any:
        if not earlier:
            earlier.append({**reports[0], **change(reports[0])})
            await report_runs(earlier)
        return await report_runs(reports)

    monkeypatch.setattr(stack.ledger, "report_runs", lost_attempt_first)
    return earlier


async def test_a_report_sent_again_after_a_lost_workflow_task_is_the_run_already_counted(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the clock reading differs (workflow.now() of the lost task): the ledger answers 409
    # naming finished_at alone, and the worker takes the run as recorded
    await stack.register(work_order("notes"), tier=Tier.C)
    earlier = _recorded_first(stack, monkeypatch, lambda r: {"finished_at": r["started_at"]})
    handle = await stack.start("notes")
    state = await handle.result()
    assert state.outcome == "succeeded" and state.acted
    assert stack.sink_files("notes") == [f"{handle.id}.txt"]
    history = await stack.ledger.history("notes")
    [entry] = [e for e in history if e["kind"] == "run_reported"]
    assert datetime.fromisoformat(entry["at"]) == datetime.fromisoformat(earlier[0]["finished_at"])


async def test_a_run_id_recorded_with_other_content_fails_the_run_instead_of_retrying(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    _recorded_first(stack, monkeypatch, lambda r: {"summary": "another run's summary"})
    handle = await stack.start("notes")
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=60)
    assert "summary differ" in str(failed.value.cause)


async def test_a_step_past_its_timeout_class_fails_the_failure_gate(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(STEP_TIMEOUT_SECONDS, "fast", 0.2)
    await stack.register(work_order("notes"), tier=Tier.C)
    stack.holds["notes"] = asyncio.Event()  # never set: every attempt's model call waits
    state = await (await stack.start("notes")).result()
    assert state.outcome == "failed" and not state.acted and state.tier == "C"
    failure = next(g for g in state.gates if g.name == "failure")
    assert not failure.passed and "timed out" in failure.reason and "0.2 s" in failure.reason
    assert stack.sink_files("notes") == []


async def test_a_paused_behavior_skips_its_run_without_a_step(stack: Stack) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    await stack.ledger.set_status("notes", "pause")
    hold = stack.holds["notes"] = asyncio.Event()  # a step that ran would set `held`
    state = await (await stack.start("notes")).result()
    assert state.outcome == "skipped" and not state.acted
    assert not stack.held.get("notes", asyncio.Event()).is_set() and not hold.is_set()
    assert stack.sink_files("notes") == []


async def test_finished_runs_replay_deterministically(stack: Stack) -> None:
    # a C run (act and report in one) and an A run woken by its approval's signal: a change to
    # the workflow's commands that these histories no longer match fails here (contracts §7)
    await stack.register(work_order("notes"), tier=Tier.C)
    await stack.register(work_order("drafts"))
    acted = await stack.start("notes")
    await acted.result()
    proposed = await stack.start("drafts")
    await stack.wait_for(proposed, "batch approval")
    await approve_batch(stack.client, stack.ledger, "drafts", [proposed.id])
    assert (await proposed.result()).acted
    for handle in (acted, proposed):
        history = await handle.fetch_history()
        # as the `cleanday worker` runs it (unsandboxed) and as the tests run it (sandboxed)
        for runner in (UnsandboxedWorkflowRunner(), SandboxedWorkflowRunner()):
            await Replayer(workflows=[BehaviorRun], workflow_runner=runner).replay_workflow(history)
