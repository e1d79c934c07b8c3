"""Guardrails checked before any call: providers, blocked models, zero data retention, image route.

A violation raises PolicyViolation naming what to change; the router never quietly picks
something else that happens to be allowed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from cleanday.errors import ConfigError, PolicyViolation
from cleanday.router.call import Route
from cleanday.router.config import RouterConfig
from cleanday.router.transports import TRANSPORTS
from cleanday.workorder import Guardrails


def effective_guardrails(raw: dict[str, Any], config: RouterConfig) -> Guardrails:
    """A behavior's guardrails on top of the shared policy it names, if any."""
    own = Guardrails.model_validate(raw)
    if own.policy is None:
        return own
    shared = config.policies.get(own.policy)
    if shared is None:
        raise ConfigError(
            f"guardrail policy {own.policy!r} is not defined; add it under `policies:` in the "
            f"router config (known: {sorted(config.policies)})"
        )
    merged = shared.model_dump()
    for name in own.model_fields_set - {"policy"}:
        merged[name] = getattr(own, name)
    merged["policy"] = own.policy
    return Guardrails.model_validate(merged)


def check_routes(
    behavior: str,
    routes: list[Route] | tuple[Route, ...],
    guard: Guardrails,
    config: RouterConfig,
    parameters: dict[str, Any],
) -> None:
    """Every guardrail against every route, before anything is sent: blocked models and the
    image route here, the provider and retention rules by each route's transport."""
    where = f"behavior {behavior}"
    if guard.policy:
        where += f" (policy {guard.policy})"
    wants_image = "image" in (parameters.get("modalities") or ())
    for route in routes:
        for model in route.models:
            for pattern in guard.blocked_models:
                if fnmatchcase(model, pattern):
                    raise PolicyViolation(
                        f"{where}: model {model} on {route.transport} is blocked by {pattern!r}; "
                        "change the preset's model or fallback_models"
                    )
        TRANSPORTS[route.transport].check(route, guard, config, where)
        if wants_image:
            image_route = guard.image_route
            if image_route is None or image_route not in (
                route.transport,
                f"{route.transport}:{route.model}",
            ):
                raise PolicyViolation(
                    f"{where}: image generation through {route.transport}:{route.model} is "
                    f"outside its allowed image route ({image_route or 'none'})"
                )
