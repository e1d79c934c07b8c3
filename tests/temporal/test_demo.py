"""`cleanday demo` end to end, one simulated week (the command runs three)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

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


USER_HOOK = """\
name: my_hook
description: a user's own webhook behavior, with step code the demo does not have
trigger: {type: webhook, secret_ref: env:MY_HOOK_SECRET}
reports: what it did
key: {ref: env:MY_HOOK_KEY, cap_usd: 1}
preset: {name: my_hook, model: local/echo}
entry: my_steps:run
"""


def test_the_demo_runs_the_builtins_whatever_behaviors_holds_says_what_it_does_as_the_operator(
    tmp_path: Path,
) -> None:
    (tmp_path / "behaviors").mkdir()
    (tmp_path / "behaviors" / "my_hook.yaml").write_text(USER_HOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEANDAY_")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cleanday"), "demo", "--weeks", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning noise
    assert "my_hook" not in done.stdout
    assert "registered 5 built-in behaviors" in done.stdout
    assert "approved tag_audit's batch as the operator" in done.stdout
    assert "marked" in done.stdout and "Promote in the review, as the operator" in done.stdout
    assert "as the operator: approved 5 batches" in done.stdout
