"""Guardrails checked before any call: providers, blocked models, zero data retention, image route.

A violation raises PolicyViolation naming what to change; the router never quietly picks
something else that happens to be allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from cleanday.errors import ConfigError, PolicyViolation
from cleanday.router.config import RouterConfig
from cleanday.workorder import Guardrails


@dataclass(frozen=True)
class Route:
    """One transport to try, with the model(s) it will be asked for."""

    transport: str
    model: str  # the model this transport is asked for (its own id on that transport)
    models: tuple[str, ...]  # OpenRouter ids: the primary and the preset's fallbacks
    provider: dict[str, Any]


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


def _provider_of(model: str) -> str | None:
    prefix, sep, _ = model.partition("/")
    return prefix if sep else None


def check_routes(
    behavior: str,
    routes: list[Route],
    guard: Guardrails,
    config: RouterConfig,
    parameters: dict[str, Any],
) -> None:
    where = f"behavior {behavior}"
    if guard.policy:
        where += f" (policy {guard.policy})"
    allowed = set(guard.allowed_providers) if guard.allowed_providers is not None else None
    wants_image = "image" in (parameters.get("modalities") or ())
    for route in routes:
        for model in route.models:
            for pattern in guard.blocked_models:
                if fnmatchcase(model, pattern):
                    raise PolicyViolation(
                        f"{where}: model {model} on {route.transport} is blocked by {pattern!r}; "
                        "change the preset's model or fallback_models"
                    )
        # the local provider never leaves the machine: provider and retention rules do not apply
        if route.transport == "local":
            pass
        elif route.transport == "anthropic":
            if allowed is not None and "anthropic" not in allowed:
                raise PolicyViolation(
                    f"{where}: transport anthropic is not an allowed provider {sorted(allowed)}; "
                    "remove it from transports.order or allow the provider"
                )
            if guard.require_zdr and not config.anthropic_zdr:
                raise PolicyViolation(
                    f"{where}: zero data retention is required but the direct Anthropic account "
                    "is not configured as ZDR (anthropic_zdr in the router config)"
                )
        elif route.transport == "openrouter":
            if allowed is not None:
                for model in route.models:
                    provider = _provider_of(model)
                    if provider is not None and provider not in allowed:
                        raise PolicyViolation(
                            f"{where}: model {model} is from provider {provider}, not in the "
                            f"allowed providers {sorted(allowed)}"
                        )
                only = route.provider.get("only")
                if only and not set(only) <= allowed:
                    raise PolicyViolation(
                        f"{where}: preset provider.only {sorted(only)} names providers outside "
                        f"the allowed {sorted(allowed)}"
                    )
            if guard.require_zdr and route.provider.get("zdr") is False:
                raise PolicyViolation(
                    f"{where}: zero data retention is required but the preset sets provider.zdr "
                    "to false"
                )
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
