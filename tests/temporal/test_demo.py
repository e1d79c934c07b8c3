"""`cleanday demo` end to end, one simulated week (the command runs three)."""

from __future__ import annotations

from datetime import date

import pytest

from cleanday.runtime.demo import FAILING_BEHAVIOR, run_demo

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


async def test_demo_week_runs_every_builtin_daily_and_records_the_injected_gate_failure() -> None:
    lines: list[str] = []
    result = await run_demo(weeks=1, out=lines.append)
    rows = {r["name"]: r for r in result.rows}
    assert set(rows) == {
        "content_pipeline",
        "model_roll_call",
        "morning_digest",
        "tag_audit",
        "webhook_logger",
    }
    assert result.runs == 8 * len(rows)  # eight days, Sunday to Sunday, every behavior daily
    failed = rows[FAILING_BEHAVIOR]
    assert failed["last_gate_failure"] is not None
    assert date.fromisoformat(failed["last_gate_failure"]).weekday() == 2  # the Wednesday
    assert failed["tier"] == "A"  # failed at A: logged and alerted, no lower tier
    assert any(line.startswith("— Sunday review") for line in lines)
    assert any("gate sensitive_info failed" in line for line in lines)
    assert lines[-1].endswith("8 simulated days")
