"""The interface between a behavior's step code and the runtime that runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cleanday.domain import Tier
from cleanday.router.types import Completion


class ModelCaller(Protocol):
    """The behavior's bound model: its key, its preset, its tier's parameters."""

    async def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> Completion: ...


@dataclass(frozen=True)
class Action:
    """One thing the act step does to the world, through a sink, only with a permit."""

    kind: str  # e.g. "write", "publish", "append_log"
    target: str  # a sink-relative name: a file, a page title, a log
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    behavior: str
    tier: Tier
    run_id: str
    input: dict[str, Any]
    config: dict[str, Any]
    model: ModelCaller
    data_dir: Path
    now: datetime


@dataclass
class StepResult:
    output: str | dict[str, Any]  # what the gates check
    summary: str  # reported in tiers: "3 posts published. No anomalies."
    actions: list[Action] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    completions: list[Completion] = field(default_factory=list)


def tier_summary(tier: Tier, *, proposed: str, staged: str, done: str) -> str:
    """The run's summary as its tier makes it true: what was proposed (A), staged for release (B),
    or done (C and Wings) — a report, not reassurance."""
    if tier is Tier.A:
        return proposed
    if tier is Tier.B:
        return staged
    return done
