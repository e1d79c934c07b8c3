"""What a transport is: one way to reach a model, behind the interface the router calls.

A transport offers a route for a preset (or none, when it cannot serve the model), checks the
guardrails only it knows about, names the key it sends, builds the request for one route of a
call and parses the answer. Everything else (the budget, fallback, retries, timeouts) is the
router's, the same for every transport.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from cleanday.budget.base import BindingRow
from cleanday.config import Settings
from cleanday.router.call import Answer, Call, Request, Route
from cleanday.router.config import RouterConfig
from cleanday.secrets import Secret
from cleanday.workorder import Guardrails, PresetSpec


class Transport(ABC):
    """One way to reach a model; one instance per router."""

    name: ClassVar[str]
    # a call on it goes out without a key when the key does not resolve (a local server)
    key_optional: ClassVar[bool] = False
    # OpenRouter's model list (router.catalog) is kept fresh while calls go through it
    uses_model_list: ClassVar[bool] = False
    # a provider that charges for calls: an answer whose cost cannot be read (no usage, an
    # unparseable body) is charged the call's estimate, since the provider may have billed it
    bills: ClassVar[bool] = True

    def __init__(self, settings: Settings, config: RouterConfig) -> None:
        self.settings = settings
        self.config = config

    def route(self, spec: PresetSpec) -> Route | None:
        """The route this transport offers for the preset: its model and fallbacks."""
        models = (spec.model, *spec.fallback_models)
        return Route(self.name, spec.model, models, dict(spec.provider))

    @classmethod  # noqa: B027 (not abstract: a transport may add no rule of its own)
    def check(cls, route: Route, guard: Guardrails, config: RouterConfig, where: str) -> None:
        """Raise PolicyViolation for a guardrail this route breaks on this transport (the
        blocked models and the image route are checked for every transport alike)."""

    def key_ref(self, binding: BindingRow) -> str:
        """The reference of the key sent: the routing config's for this transport, else the
        behavior's own. Spend counts against the behavior's cap either way."""
        return self.config.transport_keys.get(self.name, binding.key_ref)

    def estimate(self, call: Call, route: Route) -> float:
        """What the budget reserves before a request: the input's size and the output limit
        at the model's configured price (the default estimate for an unpriced model)."""
        info = self.config.model_info(route.models[0])
        if info.input_per_mtok is None or info.output_per_mtok is None:
            return self.config.default_estimate_usd
        chars = len(call.system_prompt) + sum(
            len(json.dumps(m.get("content", ""))) for m in call.messages
        )
        tokens_in = chars / 4 + 8 * len(call.messages)
        tokens_out = max_tokens(call.params, self.config)
        return (tokens_in * info.input_per_mtok + float(tokens_out) * info.output_per_mtok) / 1e6

    def price(self, model: str, tokens_in: int, tokens_out: int) -> float:
        """Tokens times the routing config's price for `model`; zero when it has none."""
        info = self.config.model_info(model)
        if info.input_per_mtok is None or info.output_per_mtok is None:
            return 0.0
        return (tokens_in * info.input_per_mtok + tokens_out * info.output_per_mtok) / 1e6

    @abstractmethod
    def request(self, call: Call, route: Route, key: Secret | None) -> Request:
        """The POST for `route` of `call`; `key` is None only for a `key_optional` transport."""

    def reported_cost(
        self, reported: Any, model: str, tokens_in: int, tokens_out: int
    ) -> tuple[float, str | None]:
        """The cost a provider reported, when it is one (a finite number, not negative); else
        the price table's, with the doubt that says why."""
        price = self.price(model, tokens_in, tokens_out)
        if reported is None:
            return price, None
        number = isinstance(reported, int | float) and not isinstance(reported, bool)
        if number and math.isfinite(reported) and reported >= 0:
            return float(reported), None
        shown = repr(reported)[:40]
        return price, (
            f"{self.name} reported cost {shown}, which is not a cost; charged the price "
            f"table's ${price:.6f} for {tokens_in}+{tokens_out} tokens instead"
        )

    @abstractmethod
    def parse(self, route: Route, data: Any) -> Answer:
        """A 200's JSON body; raises ValueError (or KeyError, TypeError, IndexError) when it is
        not the shape this transport answers with: the router then charges the call's estimate
        and falls back."""


def obj(value: Any, where: str) -> Mapping[str, Any]:
    """`value` when it is a JSON object; ValueError naming `where` otherwise."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} is {_kind(value)}, not an object")
    return value


def usage_of(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """An answer's `usage`: None when it has none (null or absent), an object, or ValueError."""
    usage = data.get("usage")
    return None if usage is None else obj(usage, "usage")


def count(usage: Mapping[str, Any] | None, name: str) -> int:
    """A token count of `usage` (0 when absent): a whole number, not negative."""
    value = 0 if usage is None else usage.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"usage.{name} is {_kind(value)}, not a token count")
    if value < 0 or value != int(value):
        raise ValueError(f"usage.{name} is {value!r}, not a token count")
    return int(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:40]


def max_tokens(params: dict[str, Any], config: RouterConfig) -> Any:
    """The output limit the preset sets, else the routing config's default."""
    return (
        params.get("max_tokens") or params.get("max_completion_tokens") or config.default_max_tokens
    )
