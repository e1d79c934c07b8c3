"""The behavior's bound model inside a run: every call goes through the router, by behavior."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cleanday.domain import Tier
from cleanday.router import Completion, Router
from cleanday.runtime.activities import ModelFactory
from cleanday.steps import ModelCaller
from cleanday.workorder import WorkOrder


@dataclass
class BoundModel:
    """What step code sees as `ctx.model`: its key, its preset at its tier, nothing else."""

    router: Router
    behavior: str
    tier: Tier
    run_id: str

    async def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> Completion:
        return await self.router.complete(
            self.behavior,
            self.tier,
            messages,
            response_format=response_format,
            run_id=self.run_id,
        )


def router_models(router: Router) -> ModelFactory:
    """The ModelFactory over one router (shared by every run the worker executes)."""

    def model_for(wo: WorkOrder, tier: Tier, run_id: str) -> ModelCaller:
        return BoundModel(router, wo.name, tier, run_id)

    return model_for


async def bind_all(router: Router, work_orders: list[WorkOrder]) -> None:
    """Bind each behavior's key, cap, transports and preset version in the router."""
    for wo in work_orders:
        await router.bind(wo)
