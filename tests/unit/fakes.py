"""Fakes for unit tests: a scripted model, completions and Work Orders built in memory."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cleanday.domain import Tier
from cleanday.router.types import Attempt, Completion
from cleanday.steps import ModelCaller, StepContext
from cleanday.workorder import WorkOrder

BEHAVIORS = Path(__file__).resolve().parents[2] / "behaviors"


def completion(
    text: str = "ok",
    *,
    model: str = "anthropic/claude-haiku-4.5",
    transport: str = "local",
    cost_usd: float = 0.0,
    latency_ms: float = 10.0,
    fell_back: bool = False,
    attempts: Iterable[Attempt] = (),
) -> Completion:
    return Completion(
        text=text,
        model=model,
        transport=transport,
        cost_usd=cost_usd,
        tokens_in=10,
        tokens_out=len(text.split()),
        latency_ms=latency_ms,
        fell_back=fell_back,
        attempts=tuple(attempts),
    )


class FakeModel:
    """A ModelCaller that answers from a script, in order, and records what it was asked."""

    def __init__(self, answers: Iterable[str], model: str = "anthropic/claude-haiku-4.5") -> None:
        self.answers = list(answers)
        self.model = model
        self.calls: list[tuple[list[dict[str, Any]], dict[str, Any] | None]] = []

    async def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> Completion:
        if len(self.calls) >= len(self.answers):
            raise AssertionError(f"FakeModel: unscripted call #{len(self.calls) + 1}")
        self.calls.append((messages, response_format))
        return completion(self.answers[len(self.calls) - 1], model=self.model)


def step_context(
    model: ModelCaller,
    *,
    behavior: str = "test_behavior",
    tier: Tier = Tier.C,
    config: dict[str, Any] | None = None,
    input: dict[str, Any] | None = None,
    data_dir: Path = Path("/nonexistent"),
    now: datetime = datetime(2026, 11, 21, 7, 0, tzinfo=UTC),
    run_id: str = "run-1",
) -> StepContext:
    return StepContext(
        behavior=behavior,
        tier=tier,
        run_id=run_id,
        input=input or {},
        config=config or {},
        model=model,
        data_dir=data_dir,
        now=now,
    )


def work_order(**overrides: Any) -> WorkOrder:
    """A minimal valid Work Order; `overrides` replace top-level fields."""
    base: dict[str, Any] = {
        "name": "test_behavior",
        "description": "a behavior for tests",
        "trigger": {"type": "cron", "cron": "0 7 * * *"},
        "reports": "what it did",
        "key": {"ref": "env:CLEANDAY_KEY_TEST", "cap_usd": 1},
        "preset": {
            "name": "test",
            "model": "anthropic/claude-haiku-4.5",
            "fallback_models": ["openai/gpt-4o-mini"],
        },
        "entry": "behaviors.test:run",
    }
    base.update(overrides)
    return WorkOrder.model_validate(base)


def builtin_work_order(name: str) -> WorkOrder:
    return WorkOrder.model_validate(yaml.safe_load((BEHAVIORS / f"{name}.yaml").read_text()))
