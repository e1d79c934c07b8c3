"""The built-in behaviors through the whole path: real step code, router, gates, ledger, sink."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cleanday.domain import Tier
from tests.temporal.harness import Stack

pytestmark = pytest.mark.temporal

BEHAVIORS = Path(__file__).resolve().parents[2] / "behaviors"


@pytest.mark.parametrize(
    "name", ["morning_digest", "tag_audit", "content_pipeline", "model_roll_call"]
)
async def test_builtin_behavior_runs_clean_and_acts_at_c(stack: Stack, name: str) -> None:
    await stack.register(yaml.safe_load((BEHAVIORS / f"{name}.yaml").read_text()), tier=Tier.C)
    state = await (await stack.start(name)).result()
    assert [g for g in state.gates if not g.passed] == []
    assert state.outcome == "succeeded" and state.acted, state
    assert any((stack.data_dir / "sinks" / name).rglob("*"))
