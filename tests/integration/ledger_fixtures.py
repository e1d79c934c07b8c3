"""Helpers for the store and ledger tests: a settable clock, Work Order files, run reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cleanday.ledger import AnomalyIn, GateIn, RunReport


async def noop_step(ctx: Any) -> Any:
    """An importable entry point for test Work Orders."""
    return None


ENTRY = "tests.integration.ledger_fixtures:noop_step"


class FakeClock:
    """A clock the test moves by hand; the service reads it as `clock()`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def work_order(name: str, **overrides: Any) -> dict[str, Any]:
    wo: dict[str, Any] = {
        "name": name,
        "description": f"{name}: a test behavior",
        "trigger": {"type": "cron", "cron": "0 7 * * *", "timezone": "Europe/Berlin"},
        "reports": "what it did",
        "key": {"ref": f"env:TEST_KEY_{name.upper()}", "cap_usd": 5.0},
        "preset": {"name": f"{name}-preset", "model": "local/echo"},
        "gates": [{"name": "budget"}, {"name": "schema"}],
        "output_schema": {"type": "object"},
        "entry": ENTRY,
    }
    wo.update(overrides)
    return wo


def write_work_order(directory: Path, name: str, **overrides: Any) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(work_order(name, **overrides), sort_keys=False))
    return path


def report(
    behavior: str,
    run_id: str,
    finished_at: datetime,
    *,
    failed_gate: str | None = None,
    anomaly: str | None = None,
    outcome: str = "succeeded",
    cost_usd: float = 0.01,
    **kw: Any,
) -> RunReport:
    gates = [GateIn(name="budget", passed=True), GateIn(name="schema", passed=True)]
    if failed_gate:
        gates.append(GateIn(name=failed_gate, passed=False, reason=f"{failed_gate} said no"))
    return RunReport(
        behavior=behavior,
        run_id=run_id,
        workflow_id=f"wf-{run_id}",
        started_at=finished_at - timedelta(seconds=30),
        finished_at=finished_at,
        outcome="failed" if failed_gate and outcome == "succeeded" else outcome,  # type: ignore[arg-type]
        gates=gates,
        anomalies=[AnomalyIn(name=anomaly, detail="3x median")] if anomaly else [],
        cost_usd=cost_usd,
        **kw,
    )


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    """An aware UTC datetime on an ISO date."""
    y, m, d = (int(p) for p in day.split("-"))
    return datetime(y, m, d, hour, minute, tzinfo=UTC)
