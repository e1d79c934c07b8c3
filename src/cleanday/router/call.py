"""One model call as the router plans it (`Call`, its `Route`s) and what a transport makes of it
(`Request` out, `Answer` back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cleanday.budget.base import BindingRow
from cleanday.domain import Tier
from cleanday.presets import PresetVersion


@dataclass(frozen=True)
class Route:
    """One transport to try, with the model(s) it will be asked for."""

    transport: str
    model: str  # the model this transport is asked for (its own id on that transport)
    models: tuple[str, ...]  # OpenRouter ids: the primary and the preset's fallbacks
    provider: dict[str, Any]


@dataclass(frozen=True)
class Call:
    """What one call needs, fixed before its first request: who asks, what, with which preset
    version and parameters for the tier, along which routes, within which timeout."""

    behavior: str
    tier: Tier
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    run_id: str | None
    binding: BindingRow
    version: PresetVersion
    params: dict[str, Any]  # the preset's parameters with the tier's overrides
    require_zdr: bool
    routes: tuple[Route, ...]
    timeout: float  # seconds, from the preset's timeout class

    @property
    def system_prompt(self) -> str:
        return self.version.spec.system_prompt


@dataclass(frozen=True)
class Request:
    """An HTTP POST a transport built for one route of a call."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """A provider's 200, parsed: what the model said and what it cost.

    `cost_usd` is None when the answer does not say (no usage in it): the router then charges
    the call's estimate. `doubt` says why a cost the provider reported was not taken as sent
    (negative, not finite, not a number), the price table's cost standing in for it."""

    text: str
    model: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    doubt: str | None = None
