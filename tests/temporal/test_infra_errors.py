"""Runs the deployment kept from running their step: recorded as infra_error, never the
behavior's fault (no demotion, no quarantine count, no clean day), and the operator is told."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cleanday.domain import Tier
from cleanday.models import T_OUTBOX
from tests.temporal.harness import Stack, work_order

pytestmark = pytest.mark.temporal


def _alerts(ledger: FastAPI, behavior: str) -> list[dict[str, Any]]:
    with ledger.state.service.engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_OUTBOX.c.kind, T_OUTBOX.c.payload).where(T_OUTBOX.c.behavior == behavior)
        ).all()
    return [dict(r.payload) | {"kind": r.kind} for r in rows if r.kind == "infra_error_alert"]


async def _kinds(stack: Stack, behavior: str) -> list[str]:
    return [e["kind"] for e in await stack.ledger.history(behavior)]


async def test_unresolvable_secret_is_an_infra_error_that_never_quarantines(
    stack: Stack, ledger: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLEANDAY_TEST_KEY_NOWHERE", raising=False)
    raw = work_order(
        "keyless",
        key={"ref": "env:CLEANDAY_TEST_KEY_NOWHERE", "cap_usd": 5},
        preset={"name": "keyless", "model": "openai/gpt-4o-mini"},
        transports={"order": ["openrouter"]},
    )
    await stack.register(raw)  # tier A: three gate failures here would quarantine it
    states = [await (await stack.start("keyless", {"topic": f"t{i}"})).result() for i in range(5)]

    assert [s.outcome for s in states] == ["infra_error"] * 5
    assert all(s.infra == "secret" and "CLEANDAY_TEST_KEY_NOWHERE" in s.summary for s in states)
    assert all(s.gates == [] and not s.acted for s in states)
    body = await stack.ledger.behavior("keyless")
    assert body["state"]["status"] == "active" and body["state"]["tier"] == "A"
    kinds = await _kinds(stack, "keyless")
    assert kinds.count("run_reported") == 5 and kinds.count("infra_error") == 5
    assert "gate_failed" not in kinds and "quarantined" not in kinds
    alerts = _alerts(ledger, "keyless")
    assert len(alerts) == 5 and {a["kind"] for a in alerts} == {"infra_error_alert"}
    assert all(a["kind"] == "infra_error_alert" and "secret" in str(a) for a in alerts)


async def test_step_code_that_cannot_be_imported_is_an_infra_error_not_a_failure(
    stack: Stack,
) -> None:
    wo = await stack.register(work_order("lost"), Tier.B)
    # this worker's copy names a module it does not have (code not deployed here)
    stack.work_orders["lost"] = wo.model_copy(update={"entry": "tests.temporal.no_such_module:run"})
    state = await (await stack.start("lost")).result()
    assert state.outcome == "infra_error" and state.infra == "step_code"
    assert "tests.temporal.no_such_module" in state.summary
    assert (await stack.tier("lost")) == "B"
    kinds = await _kinds(stack, "lost")
    assert "gate_failed" not in kinds and "demoted" not in kinds


async def test_a_step_that_ran_and_failed_still_fails_the_failure_gate(stack: Stack) -> None:
    await stack.register(work_order("notes"), tier=Tier.C)
    state = await (await stack.start("notes", {"crash": True})).result()
    assert state.outcome == "failed" and state.infra is None
    assert (await stack.tier("notes")) == "B"
