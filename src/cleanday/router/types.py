"""What a model call returns, shared by the router, step code and the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attempt:
    transport: str
    model: str
    status: int | None  # HTTP status, None for a timeout or connection error
    error: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    transport: str
    cost_usd: float
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    fell_back: bool = False
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    # what the router did not take as the provider sent it (a cost replaced by the price table
    # or the estimate, a malformed answer it fell back from): each one an anomaly of the run
    doubts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def budget_refused(self) -> bool:
        """A provider answered 402: the budget gate failed even if a fallback answered."""
        return any(a.status == 402 for a in self.attempts)
